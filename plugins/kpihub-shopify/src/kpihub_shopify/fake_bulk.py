"""Bulk operations in the fake Shopify: the mutation, the polls, the JSONL file and the ways they fail.

Follows shopify.dev/docs/api/usage/bulk-operations/queries and the BulkOperation object (see
:mod:`kpihub_shopify.bulk` for what it says). An operation is a scan through the connection's
nodes in id order, a part of it at each bulk request (a poll or a mutation, of any operation: time
passes for all of them), so it is ``RUNNING`` for about :attr:`BulkOperations.bulk_polls` polls.
Each node is written as it is when the scan reaches it: a node edited after that is in the file
as it was, one edited before as it is now, and an order placed during the run may be in it. That
is the snapshot a real operation gives, which is why the connector pages after it.

The file is served at ``/bulk-results/<n>.jsonl?X-Goog-Signature=…`` on the fake's own address
(Shopify's are signed storage.googleapis.com URLs), without the access token, with ``Range``
requests answered 206. Failure modes: :attr:`bulk_outcome` ends the next operation ``FAILED``
(with an ``errorCode`` and maybe a ``partialDataUrl``), ``CANCELED`` or ``EXPIRED``; a missing
scope ends it ``FAILED`` with ``ACCESS_DENIED``; :attr:`bulk_busy` refuses the next mutations as
if another client's operation were running; :attr:`bulk_file_status` answers the file with 403 or
404 (an expired or wrong URL); :attr:`bulk_lose_lines` cuts lines off a file that still says
how many nodes it has. Before API version 2026-01 one bulk query runs at a time per shop,
from 2026-01 five.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from kpihub.testing import FakeRequest, FakeResponse
from kpihub_shopify._gql import GraphQLSyntaxError, Selection, parse, project
from kpihub_shopify.data import ShopifyData, iso

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
IN_PROGRESS = "A bulk query operation for this app and shop is already in progress: {gid}."
LIMIT = "Bulk operations limit reached. Please try again later."
EXPIRED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    b"<Message>The provided token has expired.</Message></Error>"
)


@dataclass
class FakeOperation:
    number: int
    connection: Selection
    created_at: str
    version: str
    status: str = "CREATED"
    error_code: str | None = None
    scanned: int = 0  # the last GID number the scan passed
    chunk: int = 1
    lines: list[bytes] = field(default_factory=list)
    outcome: dict[str, Any] | None = None

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"


class BulkOperations:
    """The bulk part of :class:`kpihub_shopify.fake.FakeShopify` (module docstring)."""

    data: ShopifyData
    scopes: set[str]
    rng: random.Random
    #: Polls an operation is RUNNING for (the scan takes this many steps).
    bulk_polls: int = 3
    #: How the next operation ends instead of COMPLETED: ``{"status": "FAILED", "errorCode":
    #: "TIMEOUT", "partial": True}``, ``{"status": "CANCELED"}``, ``{"status": "EXPIRED"}``.
    bulk_outcome: dict[str, Any] | None = None
    #: The next this many mutations are refused: another client's operation is running.
    bulk_busy: int = 0
    #: The file answers this status (403: expired URL, 404) instead of its bytes.
    bulk_file_status: int | None = None
    #: The next file misses this many of its last lines (the operation still counts them).
    bulk_lose_lines: int = 0
    #: Called at each bulk request before the scans move on (to change data during a run).
    on_bulk_request: Callable[[], None] | None = None

    if TYPE_CHECKING:  # FakeAPIServer's

        @property
        def url(self) -> str: ...

    def _bulk_init(self) -> None:
        self.operations: dict[int, FakeOperation] = {}
        self._bulk_files: dict[int, bytes] = {}
        self._signature = f"{self.rng.getrandbits(128):032x}"

    # -- the GraphQL fields ------------------------------------------------------------------

    def bulk_field(self, sel: Selection, version: str, scopes: dict[str, str]) -> Any:
        """The answer of a bulk root field, or ``None`` if ``sel`` is not one."""
        self._advance(scopes)
        if sel.name == "bulkOperationRunQuery":
            return project(self._run(sel, version), sel.selections)
        if sel.name == "bulkOperationCancel":
            op = self._find(str(sel.args.get("id")))
            errors = []
            if op is None or op.status not in ("CREATED", "RUNNING"):
                errors = [{"field": ["id"], "message": "Bulk operation cannot be canceled."}]
            else:
                op.status = "CANCELING"
            return project({"bulkOperation": self._node(op) if op else None, "userErrors": errors}, sel.selections)
        op = self._find(str(sel.args.get("id")))
        if sel.name == "currentBulkOperation":
            op = max(self.operations.values(), key=lambda o: o.number, default=None)
        return None if op is None else project(self._node(op), sel.selections)

    def _run(self, sel: Selection, version: str) -> dict[str, Any]:
        running = [o for o in self.operations.values() if o.status in ("CREATED", "RUNNING", "CANCELING")]
        if self.bulk_busy > 0:
            self.bulk_busy -= 1
            return _refused(IN_PROGRESS.format(gid="gid://shopify/BulkOperation/999"), "OPERATION_IN_PROGRESS")
        if running and (version != "unstable" and version < "2026-01"):
            return _refused(IN_PROGRESS.format(gid=running[0].gid), "OPERATION_IN_PROGRESS")
        if len(running) >= 5:
            return _refused(LIMIT, "LIMIT_REACHED")
        try:
            (connection,) = parse(str(sel.args.get("query") or ""))
        except (GraphQLSyntaxError, ValueError) as exc:
            return _refused(f"Invalid bulk query: {exc}", "INVALID")
        if connection.name not in ("orders", "customers") or _nodes(connection) is None:
            return _refused("Bulk queries must contain at least one connection.", "INVALID")
        number = 4000 + len(self.operations) + 1
        items = self.data.orders if connection.name == "orders" else self.data.customers
        op = FakeOperation(
            number,
            connection,
            iso(self.data.now),
            version,
            chunk=max(1, math.ceil(len(items) / max(1, self.bulk_polls))),
            outcome=self.bulk_outcome,
        )
        self.bulk_outcome = None
        self.operations[number] = op
        return {"bulkOperation": self._node(op), "userErrors": []}

    def _find(self, gid: str) -> FakeOperation | None:
        number = gid.rsplit("/", 1)[-1]
        return self.operations.get(int(number)) if number.isdigit() else None

    def _node(self, op: FakeOperation) -> dict[str, Any]:
        done = op.status == "COMPLETED"
        body = self._bulk_files.get(op.number, b"")
        signed = f"{self.url}/bulk-results/{op.number}.jsonl?X-Goog-Signature={self._signature}&X-Goog-Expires=604800"
        partial = op.status == "FAILED" and bool((op.outcome or {}).get("partial")) and op.lines
        return {
            "__typename": "BulkOperation",
            "id": op.gid,
            "status": op.status,
            "errorCode": op.error_code,
            "createdAt": op.created_at,
            "completedAt": iso(self.data.now) if done else None,
            "objectCount": str(len(op.lines)),
            "rootObjectCount": str(len(op.lines)),
            "fileSize": str(len(body)) if done and op.lines else None,
            "url": signed if done and op.lines else None,  # null when the query matched nothing
            "partialDataUrl": signed.replace(".jsonl", ".partial.jsonl") if partial else None,
            "query": "…",
            "type": "QUERY",
        }

    # -- time passing ------------------------------------------------------------------------

    def _advance(self, scopes: dict[str, str]) -> None:
        if self.on_bulk_request is not None:
            self.on_bulk_request()
        for op in list(self.operations.values()):
            if op.status == "CANCELING":
                op.status = "CANCELED"
            elif op.status in ("CREATED", "RUNNING"):
                self._scan(op, scopes)

    def _scan(self, op: FakeOperation, scopes: dict[str, str]) -> None:
        if op.status == "CREATED":
            op.status = "RUNNING"
            return
        name = op.connection.name
        if scopes[name] not in self.scopes:
            op.status, op.error_code = "FAILED", "ACCESS_DENIED"
            return
        matching = {o["id"]: o for o in self.data.search(name, op.connection.args.get("query"))}
        items = sorted(
            (o for o in (self.data.orders if name == "orders" else self.data.customers).values()),
            key=lambda o: _number(o["id"]),
        )
        ahead = [o for o in items if _number(o["id"]) > op.scanned]
        selections = _nodes(op.connection) or []
        for item in ahead[: op.chunk]:
            op.scanned = _number(item["id"])
            if item["id"] in matching:
                op.lines.append(orjson.dumps(project(item, selections)))
        if len(ahead) > op.chunk:
            return
        outcome = op.outcome or {}
        op.status, op.error_code = outcome.get("status", "COMPLETED"), outcome.get("errorCode")
        if op.status == "COMPLETED":
            kept, self.bulk_lose_lines = op.lines[: len(op.lines) - self.bulk_lose_lines], 0
            self._bulk_files[op.number] = b"".join(line + b"\n" for line in kept)

    # -- the file ----------------------------------------------------------------------------

    def bulk_file(self, request: FakeRequest) -> FakeResponse:
        number = int(request.params["number"])
        if self.bulk_file_status is not None:
            return FakeResponse(self.bulk_file_status, EXPIRED_XML, {"Content-Type": "application/xml"})
        if request.query.get("X-Goog-Signature") != self._signature or number not in self._bulk_files:
            return FakeResponse(403, EXPIRED_XML.replace(b"ExpiredToken", b"AccessDenied"))
        body = self._bulk_files[number]
        match = _RANGE.fullmatch(request.header("range") or "")
        if match is None:
            return FakeResponse(200, body, {"Content-Type": "application/jsonl"})
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else len(body) - 1, len(body) - 1)
        if start >= len(body):
            return FakeResponse(416, b"", {"Content-Range": f"bytes */{len(body)}"})
        headers = {"Content-Type": "application/jsonl", "Content-Range": f"bytes {start}-{end}/{len(body)}"}
        return FakeResponse(206, body[start : end + 1], headers)


def _refused(message: str, code: str) -> dict[str, Any]:
    return {"bulkOperation": None, "userErrors": [{"field": None, "message": message, "code": code}]}


def _nodes(connection: Selection) -> list[Selection] | None:
    edges = connection.child("edges")
    node = edges.child("node") if edges is not None else connection.child("nodes")
    return node.selections if node is not None else None


def _number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[-1])


__all__ = ["BulkOperations", "FakeOperation"]
