"""A fake Shopify Admin GraphQL API on 127.0.0.1, in the wire format the real one answers in.

What it follows, and where that was read (the fixtures are this plugin's own, none copied):

* ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``
  (shopify.dev/api/admin/getting-started); a bad token is HTTP 401 with
  ``{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}``
  (the body quoted in Shopify/shopify_app#1587 and Shopify/shopify-cli#263).
* ``orders`` / ``customers`` connections with ``first``, ``after``, ``sortKey``, ``reverse`` and the
  ``query`` search filter (``updated_at:>='…'``, as Airbyte's source-shopify sends it), answering
  ``nodes`` / ``edges`` and ``pageInfo { hasNextPage endCursor }``
  (shopify.dev/docs/api/usage/pagination-graphql). Cursors are opaque; this fake's encode the last
  node's sort value and id, so a node edited mid-walk moves to the end, as under ``UPDATED_AT``.
* IDs are GIDs (``gid://shopify/Order/…``); money is a MoneyBag of decimal strings
  (``shopMoney``/``presentmentMoney``); times are ISO 8601 in UTC.
* A field the token's scopes do not cover is a 200 with ``errors[]``: "Access denied for orders
  field. Required access: `read_orders` access scope." and ``extensions {code: ACCESS_DENIED,
  documentation, requiredAccess}`` (shopify.dev changelog, "New error messages for GraphQL
  operations without necessary access scopes").
* Cost: every answer carries ``extensions.cost`` (requested, actual, ``throttleStatus``). Fields
  are priced as shopify.dev's rate-limits page says (object 1, connection 2 + objects, scalars 0);
  a query over 1,000 points is refused (``MAX_COST_EXCEEDED``, this fake's wording); a leaky bucket
  of ``maximumAvailable`` points refilling at ``restoreRate`` a second holds the requested cost
  and refunds the unused part. A query that does not fit is HTTP 200 with
  ``{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", …}}]}`` and
  ``actualQueryCost: null`` (the answers quoted on community.shopify.com t/…/8456 and in
  gist lacom/56e3834834e250270062583f425274b9).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from kpihub.http import get_path
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub_shopify._gql import GraphQLSyntaxError, Selection, cost, parse_operation, project
from kpihub_shopify.data import ShopifyData
from kpihub_shopify.fake_bulk import BulkOperations

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
SCOPES = {"orders": "read_orders", "customers": "read_customers"}
MAX_QUERY_COST = 1000
DOCS = "https://shopify.dev/api/usage/rate-limits"
REST_429 = "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."


class GraphQLPaging(Paging):
    """Paging of a connection aliased ``page``: the cursor is ``variables.after`` in the JSON body,
    the next one ``pageInfo.endCursor`` while ``hasNextPage``."""

    def cursor_in(self, request: FakeRequest) -> str | None:
        body = request.json()
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        return variables.get(self.param) or None

    def with_cursor(self, request: FakeRequest, cursor: str | None) -> FakeRequest:
        body = dict(request.json() or {})
        body["variables"] = {**(body.get("variables") or {}), self.param: cursor}
        return replace(request, body=orjson.dumps(body))

    def cursor_out(self, request: FakeRequest, body: Any) -> str | None:
        info = get_path(body, "data.page.pageInfo") or {}
        return info.get("endCursor") if info.get("hasNextPage") else None

    def can_alias(self) -> bool:
        return True

    def set_cursor_out(self, body: dict[str, Any], cursor: str, request: FakeRequest, base_url: str) -> None:
        page = (body.get("data") or {}).get("page")
        if isinstance(page, dict):
            page["pageInfo"] = {**(page.get("pageInfo") or {}), "endCursor": cursor, "hasNextPage": True}


class Bucket:
    """Shopify's leaky bucket of query cost points (per app and shop)."""

    def __init__(self, maximum: float, restore: float, clock: Callable[[], float]) -> None:
        self.maximum, self.restore, self.clock = maximum, restore, clock
        self._available, self._at = maximum, clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore)
        self._at = now

    def take(self, points: float) -> bool:
        with self._lock:
            self._refill()
            if points > self._available:
                return False
            self._available -= points
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._available = min(self.maximum, self._available + points)

    def status(self) -> dict[str, Any]:
        with self._lock:
            self._refill()
            return {
                "maximumAvailable": float(self.maximum),
                "currentlyAvailable": int(self._available),
                "restoreRate": float(self.restore),
            }


def encode_cursor(value: str, number: int) -> str:
    return base64.b64encode(orjson.dumps({"last_id": number, "last_value": value})).decode()


def decode_cursor(cursor: str) -> tuple[str, int]:
    raw = orjson.loads(base64.b64decode(cursor))
    return str(raw["last_value"]), int(raw["last_id"])


#: Root fields of bulk operations (kpihub_shopify.fake_bulk), by the operation type they belong to.
BULK_FIELDS = {
    "bulkOperationRunQuery": "mutation",
    "bulkOperationCancel": "mutation",
    "bulkOperation": "query",
    "currentBulkOperation": "query",
    "node": "query",
}


class FakeShopify(FakeAPIServer, BulkOperations):
    """Shopify's Admin GraphQL endpoint over :class:`ShopifyData` (orders, refunds, customers, shop),
    with bulk operations (:mod:`kpihub_shopify.fake_bulk`).

    :param bucket: ``(maximumAvailable, restoreRate)`` of the cost bucket; ``clock`` drives its refill
        (a :class:`kpihub.http.SimulatedClock` in tests that throttle on purpose).
    """

    paging = (
        GraphQLPaging(
            r"/admin/api/[^/]+/graphql\.json", records="data.page.nodes", param="after", method="POST", where="body"
        ),
    )

    def __init__(
        self,
        *,
        seed: int = 0,
        data: ShopifyData | None = None,
        orders: int = 300,
        customers: int = 120,
        bucket: tuple[float, float] = (2000.0, 100.0),
        clock: Callable[[], float] = time.monotonic,
        scopes: frozenset[str] = frozenset(SCOPES.values()),
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.data = data or ShopifyData(seed=seed, orders=orders, customers=customers)
        self.token = f"shpat_{seed:04d}fake{self.rng.getrandbits(64):016x}"
        self.bucket = Bucket(*bucket, clock)
        self.scopes = set(scopes)
        #: Queries answered THROTTLED, and the points the others actually cost (for tests).
        self.throttled = 0
        self.spent = 0
        self._bulk_init()

    # -- errors ----------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        if status == 401:
            return {"errors": INVALID_TOKEN}
        if status == 429:  # the REST Admin API's words; the GraphQL one throttles in the body
            return {"errors": REST_429}
        return {"errors": "Not Found" if status == 404 else "Internal Server Error"}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.path.startswith("/bulk-results/"):  # a signed URL: its signature is the credential
            return None
        if request.header("x-shopify-access-token") != self.token:
            return self.json(
                self.error_body(401, ""), 401, {"WWW-Authenticate": 'Basic Realm="Shopify API Authentication"'}
            )
        return None

    # -- the endpoint --------------------------------------------------------------------

    @route("GET", r"/bulk-results/(?P<number>\d+)\.jsonl")
    def bulk_results(self, request: FakeRequest) -> FakeResponse:
        return self.bulk_file(request)

    @route("POST", r"/admin/api/(?P<version>[^/]+)/graphql\.json")
    def graphql(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        try:
            kind, selections = parse_operation(str(body.get("query") or ""), body.get("variables") or {})
        except GraphQLSyntaxError as exc:
            return self.json({"errors": [{"message": f"Parse error: {exc}", "extensions": {"code": "PARSE_ERROR"}}]})
        requested = cost(selections)
        if requested > MAX_QUERY_COST:
            message = f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."
            ext = {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST, "documentation": DOCS}
            return self.json({"errors": [{"message": message, "extensions": ext}]})
        if not self.bucket.take(requested):
            self.throttled += 1
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": DOCS}}
            return self.json({"errors": [error], "extensions": self._cost(requested, None)})
        data, errors, sizes = self._execute(selections, kind, request.params["version"])
        actual = cost(selections, sizes)
        self.bucket.refund(requested - actual)
        self.spent += actual
        answer: dict[str, Any] = {"data": data}
        if errors:
            answer = {"errors": errors, **answer}
        return self.json({**answer, "extensions": self._cost(requested, actual)})

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        status = self.bucket.status()
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}

    def _execute(
        self, selections: list[Selection], kind: str, version: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[int, int]]:
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        sizes: dict[int, int] = {}
        for i, sel in enumerate(selections):
            exists = BULK_FIELDS.get(sel.name) == kind and (sel.name != "bulkOperation" or version >= "2026-01")
            if sel.name in BULK_FIELDS and exists:
                data[sel.key] = self.bulk_field(sel, version, SCOPES)
            elif kind == "mutation" or sel.name in BULK_FIELDS:
                data[sel.key] = None
                root = "Mutation" if kind == "mutation" else "QueryRoot"
                errors.append(
                    {
                        "message": f"Field '{sel.name}' doesn't exist on type '{root}'",
                        "path": [kind, sel.name],
                        "extensions": {"code": "undefinedField"},
                    }
                )
            elif sel.name == "shop":
                data[sel.key] = project(self.data.shop, sel.selections)
            elif sel.name in SCOPES and SCOPES[sel.name] not in self.scopes:
                data[sel.key] = None
                errors.append(_access_denied(sel, i))
            elif sel.name in SCOPES:
                data[sel.key], sizes[id(sel)] = self._connection(sel)
            else:
                data[sel.key] = None
                message = f"Field '{sel.name}' doesn't exist on type 'QueryRoot'"
                errors.append(
                    {"message": message, "path": ["query", sel.name], "extensions": {"code": "undefinedField"}}
                )
        return data, errors, sizes

    def _connection(self, sel: Selection) -> tuple[dict[str, Any], int]:
        args = sel.args
        first = int(args.get("first") or 0)
        key = (
            "updatedAt"
            if args.get("sortKey") == "UPDATED_AT"
            else "createdAt"
            if args.get("sortKey") == "CREATED_AT"
            else None
        )
        items = self.data.search(sel.name, args.get("query"))
        items.sort(key=lambda o: (o[key] if key else "", _number(o["id"])), reverse=bool(args.get("reverse")))
        if args.get("after"):
            value, number = decode_cursor(str(args["after"]))
            after = (value if key else "", number)
            position = {o["id"]: (o[key] if key else "", _number(o["id"])) for o in items}
            if args.get("reverse"):
                items = [o for o in items if position[o["id"]] < after]
            else:
                items = [o for o in items if position[o["id"]] > after]
        page, more = items[:first], len(items) > first
        cursors = [encode_cursor(o[key] if key else "", _number(o["id"])) for o in page]
        nodes_sel, edges_sel, info_sel = sel.child("nodes"), sel.child("edges"), sel.child("pageInfo")
        out: dict[str, Any] = {}
        for s in sel.selections:
            if s is nodes_sel:
                out[s.key] = project(page, s.selections)
            elif s is edges_sel:
                out[s.key] = project(
                    [{"cursor": c, "node": o} for c, o in zip(cursors, page, strict=True)], s.selections
                )
            elif s is info_sel:
                info = {
                    "hasNextPage": more,
                    "hasPreviousPage": bool(args.get("after")),
                    "startCursor": cursors[0] if cursors else None,
                    "endCursor": cursors[-1] if cursors else None,
                }
                out[s.key] = project(info, s.selections)
        return out, len(page)

    # -- live data -----------------------------------------------------------------------

    def live_changes(self) -> Callable[[FakeRequest], None]:
        """Between pages: a refund, a payment, a new order, a deleted order or an edited customer."""

        def change(request: FakeRequest) -> None:
            self.data.random_change()

        return change


def _number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[-1])


def _access_denied(sel: Selection, index: int) -> dict[str, Any]:
    scope = SCOPES[sel.name]
    return {
        "message": f"Access denied for {sel.name} field. Required access: `{scope}` access scope.",
        "locations": [{"line": 2 + index, "column": 3}],
        "path": [sel.key],
        "extensions": {
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": f"`{scope}` access scope.",
        },
    }


__all__ = ["Bucket", "FakeShopify", "GraphQLPaging", "ShopifyData"]
