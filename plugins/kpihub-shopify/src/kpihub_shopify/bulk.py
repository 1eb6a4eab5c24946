"""Shopify bulk operations: a whole connection read as one asynchronous query, for backfills.

What Shopify documents (shopify.dev/docs/api/usage/bulk-operations/queries, the
``bulkOperationRunQuery`` mutation, the ``BulkOperation`` object and its enums):

* ``bulkOperationRunQuery(query:)`` starts the operation and answers ``bulkOperation { id status }``
  or ``userErrors``. Before API version 2026-01 an app runs **one** bulk query at a time per shop;
  from 2026-01 up to five. A second one is refused with ``OPERATION_IN_PROGRESS`` ("A bulk query
  operation for this app and shop is already in progress: gid://…", the words Airbyte's
  source-shopify matches in ``bulk/job.py``), the sixth with ``LIMIT_REACHED`` ("try again
  later"). That operation may be another client's (another sync of this app, or this sync's other
  stream): :meth:`BulkRunner.start` waits for a free slot and tries again, up to the timeout.
  It never cancels an operation that is not its own.
* Polling: ``status`` goes ``CREATED`` → ``RUNNING`` → ``COMPLETED``, or ends ``FAILED`` (with
  ``errorCode`` ACCESS_DENIED, INTERNAL_SERVER_ERROR or TIMEOUT), ``CANCELED`` or ``EXPIRED``
  (its URL expired). The operation is asked for by its id: ``bulkOperation(id:)`` from 2026-01
  (``currentBulkOperation`` is deprecated there, and with several operations "current" is
  ambiguous), ``node(id:)`` before. A poll costs one point of the query budget; the waits
  between polls grow from ``poll_seconds`` to 30 s, through the requester's sleep.
* ``COMPLETED`` gives ``url`` (a JSONL file, ``null`` when nothing matched), ``objectCount``,
  ``rootObjectCount`` and ``fileSize``; the URL expires seven days after completion. A failed
  operation may have a ``partialDataUrl``: partial data is never read as a complete backfill.
* An operation must finish within 10 days. This runner gives up sooner, at ``timeout_seconds``,
  cancels its own operation (``bulkOperationCancel``) so the shop's slot is free again, and fails
  the stream naming the operation.
* Shopify can also announce completion with the ``bulk_operations/finish`` webhook. A sync has
  no endpoint to receive it, so it polls.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kpihub import SourceError
from kpihub_shopify import queries
from kpihub_shopify.graphql import GraphQL

log = logging.getLogger("kpihub.source.shopify")

#: The longest wait between two polls (seconds).
MAX_POLL_SECONDS = 30.0
#: userErrors codes that mean "no free slot now": wait and try again.
BUSY = frozenset({"OPERATION_IN_PROGRESS", "LIMIT_REACHED"})
RUNNING = frozenset({"CREATED", "RUNNING", "CANCELING"})
#: What each errorCode means, for the stream's error (shopify.dev, BulkOperationErrorCode).
ERROR_CODES = {
    "ACCESS_DENIED": "the access token lacks a scope the query needs (send it as a normal query to see which)",
    "INTERNAL_SERVER_ERROR": "Shopify's servers failed while running it; the next sync runs it again",
    "TIMEOUT": "the query timed out on Shopify's side; a later start_date makes it smaller",
}


def polls_by_id(version: str) -> str:
    """The poll document for an API version: ``bulkOperation(id:)`` from 2026-01, else ``node(id:)``."""
    return queries.POLL_BULK if version == "unstable" or version >= "2026-01" else queries.POLL_BULK_NODE


@dataclass(frozen=True)
class Operation:
    """A ``BulkOperation`` as a poll answers it."""

    id: str
    status: str
    created_at: dt.datetime
    error_code: str | None = None
    object_count: int = 0
    root_object_count: int | None = None
    file_size: int | None = None
    url: str | None = None
    partial_data_url: str | None = None

    @classmethod
    def parse(cls, node: Mapping[str, Any], where: str) -> Operation:
        try:
            created = dt.datetime.fromisoformat(str(node["createdAt"]).replace("Z", "+00:00"))
            return cls(
                id=str(node["id"]),
                status=str(node["status"]),
                created_at=created,
                error_code=node.get("errorCode"),
                # UnsignedInt64 is a string on the wire.
                object_count=int(node.get("objectCount") or 0),
                root_object_count=None if node.get("rootObjectCount") is None else int(node["rootObjectCount"]),
                file_size=None if node.get("fileSize") is None else int(node["fileSize"]),
                url=node.get("url"),
                partial_data_url=node.get("partialDataUrl"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{where}: Shopify's bulk operation has no {exc} ({dict(node)!r:.200})") from None


class BulkFailed(SourceError):
    """A bulk operation ended FAILED, CANCELED or EXPIRED (``operation`` is its last poll)."""

    def __init__(self, message: str, *, source: str, stream: str, operation: Operation) -> None:
        super().__init__(message, source=source, stream=stream)
        self.operation = operation


@dataclass
class BulkRunner:
    """Starts one stream's bulk query and polls it until it ends (module docstring)."""

    gql: GraphQL
    poll_seconds: float = 2.0
    timeout_seconds: float = 4 * 3600.0

    @property
    def where(self) -> str:
        return f"{self.gql.http.source_id}/{self.gql.stream}"

    def error(self, message: str) -> SourceError:
        return SourceError(f"{self.where}: {message}", source=self.gql.http.source_id, stream=self.gql.stream)

    def run(self, query: str) -> Operation:
        """The completed operation of ``query`` (started, then polled).

        :raises SourceError: the operation failed, was canceled or expired (naming it and its
            ``errorCode``), Shopify refused the query, or it did not end within the timeout.
        """
        return self.wait(self.start(query))

    def start(self, query: str) -> Operation:
        waited, delay = 0.0, self.poll_seconds
        while True:
            data = self.gql.execute(queries.RUN_BULK, {"query": query})
            payload = data.get("bulkOperationRunQuery") or {}
            errors = [e for e in payload.get("userErrors") or [] if isinstance(e, Mapping)]
            if not errors and isinstance(payload.get("bulkOperation"), Mapping):
                op = Operation.parse(payload["bulkOperation"], self.where)
                log.info("%s: bulk operation %s started", self.where, op.id)
                return op
            text = "; ".join(" ".join(str(e.get("message", "")).split()) for e in errors) or "no bulkOperation"
            if not any(_busy(e) for e in errors):
                raise self.error(f"Shopify refused the bulk query: {text}")
            if waited >= self.timeout_seconds:
                raise self.error(
                    f"no free bulk operation slot after {waited:.0f}s (bulk_timeout_seconds): {text}. "
                    "Another client of this app is running bulk queries on the shop"
                )
            log.info("%s: %s; trying again in %.1fs", self.where, text, delay)
            self.gql.http.wait(delay)
            waited, delay = waited + delay, min(delay * 2, MAX_POLL_SECONDS)

    def wait(self, op: Operation) -> Operation:
        waited, delay = 0.0, self.poll_seconds
        poll = polls_by_id(self.gql.version)
        while True:
            data = self.gql.execute(poll, {"id": op.id})
            node = data.get("bulkOperation", data.get("node"))
            if not isinstance(node, Mapping):
                raise self.error(f"Shopify does not know bulk operation {op.id}")
            op = Operation.parse(node, self.where)
            if op.status == "COMPLETED":
                return op
            if op.status not in RUNNING:
                source, stream = self.gql.http.source_id, self.gql.stream
                raise BulkFailed(f"{self.where}: {self._ended(op)}", source=source, stream=stream, operation=op)
            if waited >= self.timeout_seconds:
                raise self.error(self._cancel(op, waited))
            self.gql.http.wait(delay)
            waited, delay = waited + delay, min(delay * 1.5, MAX_POLL_SECONDS)

    @staticmethod
    def _ended(op: Operation) -> str:
        code = op.error_code or "none"
        why = ERROR_CODES.get(op.error_code or "", "")
        if op.status == "CANCELED":
            why = "someone canceled it (bulkOperationCancel)"
        elif op.status == "EXPIRED":
            why = "its result URL expired (seven days after it completed)"
        partial = "; its partialDataUrl is not read: partial data is not a complete backfill" * bool(
            op.partial_data_url
        )
        return (
            f"bulk operation {op.id} ended {op.status} (errorCode {code}) after {op.object_count} objects"
            f"{': ' + why if why else ''}{partial}"
        )

    def _cancel(self, op: Operation, waited: float) -> str:
        text = (
            f"bulk operation {op.id} still {op.status} after {waited:.0f}s (bulk_timeout_seconds) "
            f"with {op.object_count} objects"
        )
        try:
            data = self.gql.execute(queries.CANCEL_BULK, {"id": op.id})
            refused = (data.get("bulkOperationCancel") or {}).get("userErrors") or []
        except SourceError as exc:
            return f"{text}; canceling it failed too: {exc}"
        if refused:
            return f"{text}; Shopify refused to cancel it: {refused[0].get('message')}"
        return f"{text}; canceled it. A later start_date or a longer bulk_timeout_seconds lets it finish"


def _busy(error: Mapping[str, Any]) -> bool:
    # Versions whose userErrors carry no code say it in words (Airbyte's source-shopify matches them).
    return error.get("code") in BUSY or "already in progress" in str(error.get("message", ""))
