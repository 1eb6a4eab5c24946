"""Shopify's Admin GraphQL API on kpihub's HTTP toolkit: one POST endpoint, cost-based throttling.

Every request is ``POST /admin/api/{version}/graphql.json`` with ``{"query", "variables"}``
and the ``X-Shopify-Access-Token`` header (shopify.dev/api/admin/getting-started). Each answer
carries ``extensions.cost`` (shopify.dev/docs/apps/build/graphql-admin/rate-limits)::

    {"requestedQueryCost": 502, "actualQueryCost": 402,
     "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1598, "restoreRate": 100.0}}

The limit is a leaky bucket per app and shop: a query needs ``requestedQueryCost`` points free,
the unused part is refunded after it ran, the bucket refills at ``restoreRate`` points a second.
:func:`observe_cost` reads it into the source's rate budget as a rolling window of
``maximumAvailable`` points per ``maximumAvailable / restoreRate`` seconds (the same sustained
rate; a bucket allows a burst of one more bucketful on top), so streams wait *before* sending
instead of being refused.

A refused query is ``THROTTLED``, in the body — with HTTP 200 (community.shopify.com
t/graphql-admin-api-example-throttled-requests-response/8456, and a gist of a real answer with
``errors[0].extensions.code == "THROTTLED"``), so a status check alone would read an empty page.
Its wait, (requested − available) ÷ restoreRate, goes into the budget the same way, and
:meth:`GraphQL.execute` sends the query again once the budget lets it. Every other ``errors[]``
entry is an error naming the stream and Shopify's message: a 200 with errors is never data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from kpihub import MalformedResponseError, PaginationError, SourceError
from kpihub.http import Observation, Requester

log = logging.getLogger("kpihub.source.shopify")

#: The rate budget's window of query cost points (one per source: the limit is per app and shop).
POINTS = "points"
#: How many times a page that leads back (a cursor seen before, the previous page again) is asked for again.
REPEATS = 3


def api_path(version: str) -> str:
    """The GraphQL endpoint of an API version (``2026-10``)."""
    return f"/admin/api/{version}/graphql.json"


def _cost(body: Any) -> Mapping[str, Any] | None:
    cost = ((body.get("extensions") or {}) if isinstance(body, Mapping) else {}).get("cost")
    return cost if isinstance(cost, Mapping) else None


def throttled(body: Any) -> bool:
    """The answer is Shopify's ``THROTTLED`` error (the query did not run)."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return False
    return any(isinstance(e, Mapping) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)


def throttle_wait(cost: Mapping[str, Any]) -> float | None:
    """Seconds until the bucket holds the query's requested cost: (requested − available) ÷ restoreRate."""
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, requested - available) / rate if rate > 0 else None


def observe_cost(response: httpx.Response) -> list[Observation]:
    """``extensions.cost`` of a GraphQL answer as observations of the ``points`` window.

    Called for every response, from several threads: cheap, and silent on bodies that are not
    GraphQL answers (a 502 page, a truncated body).
    """
    if not response.content or b'"cost"' not in response.content:
        return []
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    cost = _cost(body)
    status = (cost or {}).get("throttleStatus")
    if cost is None or not isinstance(status, Mapping):
        return []
    try:
        limit = float(status["maximumAvailable"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return []
    seconds = limit / rate if rate > 0 else None
    # Shopify admits a query only with its requested cost free, and refunds what it did not spend.
    requested = cost.get("requestedQueryCost")
    needs = float(requested) if isinstance(requested, int | float) else None
    if throttled(body):
        # Nothing ran and nothing was charged; the bucket has room again after the wait.
        return [Observation(POINTS, limit=limit, seconds=seconds, refused=True, wait=throttle_wait(cost), needs=needs)]
    actual = cost.get("actualQueryCost")
    spent = float(actual) if isinstance(actual, int | float) else None
    return [Observation(POINTS, limit=limit, seconds=seconds, remaining=available, cost=spent, needs=needs)]


def describe_errors(errors: Any) -> str:
    """Shopify's ``errors[]`` in one line: each message, its code and the scope it needs."""
    if isinstance(errors, str):
        return errors
    parts = []
    for error in errors if isinstance(errors, list) else [errors]:
        if not isinstance(error, Mapping):
            parts.append(str(error))
            continue
        text = " ".join(str(error.get("message", "")).split())
        ext = error.get("extensions") or {}
        if ext.get("code"):
            text += f" [{ext['code']}]"
        if ext.get("requiredAccess"):
            text += f" (the access token needs {' '.join(str(ext['requiredAccess']).split())})"
        parts.append(text)
    return "; ".join(parts)[:600]


@dataclass
class GraphQL:
    """Queries for one stream: the toolkit's retries and budget, Shopify's body-level errors."""

    http: Requester
    version: str
    stream: str
    max_attempts: int = 6

    def execute(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` of the answer; a throttled query is sent again once the budget has room for it.

        :raises SourceError: GraphQL errors (naming the stream), or still throttled after
            ``max_attempts`` tries.
        """
        where = f"{self.http.source_id}/{self.stream}"
        for attempt in range(1, self.max_attempts + 1):
            body = self.http.json(
                "POST", api_path(self.version), stream=self.stream, json={"query": query, "variables": dict(variables)}
            )
            if not isinstance(body, Mapping):
                raise MalformedResponseError(
                    f"{where}: Shopify sent a {type(body).__name__}, not a GraphQL answer",
                    source=self.http.source_id,
                    stream=self.stream,
                )
            if throttled(body):
                wait = throttle_wait(_cost(body) or {})
                log.info("%s: Shopify throttled the query (attempt %d), waiting %.1fs", where, attempt, wait or 0.0)
                if self.http.budget is None:  # no budget to hold the wait observe_cost read
                    self.http.wait(wait if wait is not None else 2.0**attempt)
                continue
            if body.get("errors"):
                raise SourceError(
                    f"{where}: Shopify answered with errors: {describe_errors(body['errors'])}",
                    source=self.http.source_id,
                    stream=self.stream,
                )
            data = body.get("data")
            if not isinstance(data, dict):
                raise MalformedResponseError(
                    f"{where}: Shopify's answer has no data object", source=self.http.source_id, stream=self.stream
                )
            return data
        raise SourceError(
            f"{where}: Shopify still throttled the query after {self.max_attempts} attempts "
            "(another app or sync may be spending the shop's query cost budget)",
            source=self.http.source_id,
            stream=self.stream,
        )


def since_filter(since: str | None) -> str | None:
    """Shopify's search syntax for "updated at or after": ``updated_at:>='2024-06-01T00:00:00+00:00'``
    (the form Airbyte's source-shopify sends, airbytehq/airbyte …/shopify_graphql/bulk/query.py)."""
    return None if since is None else f"updated_at:>='{since}'"


def walk(
    gql: GraphQL,
    query: str,
    *,
    first: int,
    since: str | None,
    restart_after: int,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of nodes of the connection the query aliases ``page``, sorted by ``UPDATED_AT``.

    ``pageInfo { hasNextPage endCursor }`` leads on (shopify.dev/docs/api/usage/pagination-graphql).
    A page that leads back — a cursor handed out before, or the previous page's nodes again — is
    asked for again, up to :data:`REPEATS` times, then :class:`PaginationError` stops the stream
    rather than return partial data. Shopify stops paging at 25,000 objects
    (shopify.dev/docs/api/usage/limits): after ``restart_after`` nodes the walk starts again from
    the newest ``updatedAt`` read (keyset paging; the instant itself is read again and merged).
    """
    where = f"{gql.http.source_id}/{gql.stream}"
    after: str | None = None
    seen: set[str] = set()
    previous: list[dict[str, Any]] | None = None
    repeats = read = 0
    while True:
        data = gql.execute(query, {"first": first, "after": after, "query": since_filter(since)})
        nodes, has_next, cursor = _connection(data, where, gql)
        problem = None
        if has_next and (not cursor or cursor in seen):
            problem = f"the cursor {str(cursor)[:60]!r} again (a pagination loop)"
        elif nodes and nodes == previous:
            problem = "the previous page again"
        if problem is not None:
            repeats += 1
            if repeats > REPEATS:
                raise PaginationError(
                    f"{where}: Shopify returned {problem} {REPEATS + 1} times; "
                    "stopping instead of returning partial data",
                    source=gql.http.source_id,
                    stream=gql.stream,
                )
            log.warning("%s: Shopify returned %s; asking for that page again", where, problem)
            continue
        repeats, previous = 0, nodes
        yield nodes
        if not has_next:
            return
        read += len(nodes)
        newest = max((str(n.get("updatedAt") or "") for n in nodes), default="")
        if read >= restart_after and newest and newest != since:
            since, after, read = newest, None, 0
            seen.clear()
            continue
        seen.add(str(cursor))
        after = cursor


def _connection(data: Mapping[str, Any], where: str, gql: GraphQL) -> tuple[list[dict[str, Any]], bool, str | None]:
    page = data.get("page")
    info = page.get("pageInfo") if isinstance(page, Mapping) else None
    nodes = page.get("nodes") if isinstance(page, Mapping) else None
    if not isinstance(nodes, list) or not isinstance(info, Mapping):
        raise MalformedResponseError(
            f"{where}: Shopify's answer has no connection with nodes and pageInfo",
            source=gql.http.source_id,
            stream=gql.stream,
        )
    cursor = info.get("endCursor")
    return nodes, info.get("hasNextPage") is True, cursor if isinstance(cursor, str) else None


def dedupe(pages: Iterator[Sequence[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """Each page without the nodes an earlier copy (this page or the one before) already has, by
    ``id`` and newest ``updatedAt``.

    Under ``sortKey: UPDATED_AT`` a node edited while the walk runs is read again further on (newer:
    kept, the destination merges it over the old copy); a page that repeats part of the one before
    must not bring an older copy after a newer one. Two pages of ids are kept, not the whole run's.
    """
    before: dict[str, str] = {}
    for page in pages:
        here: dict[str, str] = {}
        out = []
        for node in page:
            key, stamp = str(node.get("id")), str(node.get("updatedAt") or "")
            known = max(before.get(key, ""), here.get(key, ""))
            here[key] = max(known, stamp)
            if not (known and known >= stamp):
                out.append(node)
        before = here
        yield out
