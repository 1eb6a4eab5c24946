"""The Shopify connector: orders, refunds, customers and the shop, from the Admin GraphQL API.

Every stream but ``shop`` walks a connection sorted by ``UPDATED_AT`` and filtered with
``updated_at:>='<cursor − overlap>'`` (:func:`kpihub_shopify.graphql.walk`). An order edited while
the walk runs moves to its end and is read twice: the newer copy wins, by ``id``. Because of
that, and because Shopify does not document the order as a guarantee, the cursor is committed
only when a stream's walk has ended (``sorted_by_cursor`` is off), and each sync re-reads
``overlap_seconds`` before it. Deleted orders leave no trace in the API (``deletionEvents`` covers
products and collections only): a ``--full-refresh`` replaces the tables with what exists.

A read that reaches back further than ``bulk_after_days`` (or to the beginning: a first sync
without ``start_date``, a ``--full-refresh``) runs as a bulk operation instead
(:mod:`kpihub_shopify.bulk`): one asynchronous query over the whole filtered connection, its JSONL
file read line by line. The file is a snapshot, taken while the operation runs, so the stream
then pages from the operation's ``createdAt`` less the overlap: whatever changed during the
operation is read in the same sync, and the cursor is the newest ``updatedAt`` of both reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator, Mapping
from dataclasses import replace
from itertools import islice
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr, model_validator

from kpihub import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    HTTPError,
    PlanContext,
    Requests,
    Source,
    SourceError,
    SourceSettings,
    Stream,
    StreamContext,
    decode_cursor,
)
from kpihub.http import Limit, Observation, Requester
from kpihub_shopify import mapping, queries
from kpihub_shopify.bulk import BulkFailed, BulkRunner
from kpihub_shopify.graphql import POINTS, GraphQL, api_path, dedupe, observe_cost, since_filter, walk
from kpihub_shopify.jsonl import assemble, download_requester, lines

TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(38, 9)


class ShopifySettings(SourceSettings):
    """``[sources.shopify]``: the shop and an Admin API access token (``shpat_…``)."""

    #: ``my-store`` or ``my-store.myshopify.com``; gives ``base_url`` unless that is set.
    shop: str | None = None
    base_url: str = ""
    #: A custom app's Admin API access token with ``read_orders`` and ``read_customers``
    #: (``read_all_orders`` for orders older than 60 days); best as KPIHUB_SHOPIFY_ACCESS_TOKEN.
    access_token: SecretStr
    #: The Admin API version in the URL (quarterly releases, each supported for a year).
    api_version: str = Field(default="2026-10", pattern=r"^(\d{4}-(01|04|07|10)|unstable)$")
    #: Nodes per page. A query may cost at most 1,000 points (shopify.dev …/graphql-admin/rate-limits);
    #: an order as the stream selects it costs 10 (the order 1, its customer 1, each of its four
    #: MoneyBags 2), so 80 a page is 2 + 800 + 1 (pageInfo) = 803, leaving room in a 1,000-point bucket.
    page_size: int = Field(default=80, ge=1, le=250)
    #: Each incremental sync re-reads this much before its cursor (Shopify's search index lags writes).
    overlap_seconds: int = Field(default=300, ge=0)
    #: A walk restarts from the newest updatedAt after this many nodes (Shopify stops paging at 25,000).
    restart_after: int = Field(default=20_000, ge=1, le=25_000)
    #: Backfills as bulk operations (shopify.dev/docs/api/usage/bulk-operations/queries); off: always page.
    bulk: bool = True
    #: A read starting more than this many days ago (or at the beginning) is a backfill: bulk.
    bulk_after_days: int = Field(default=30, ge=0)
    #: The first wait between polls of a bulk operation; each wait is longer, up to 30 s.
    bulk_poll_seconds: float = Field(default=2.0, gt=0)
    #: A bulk operation not done after this many seconds is canceled and the stream fails.
    bulk_timeout_seconds: float = Field(default=4 * 3600.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _base_url_from_shop(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("base_url"):
            shop = str(data.get("shop") or "").strip().removeprefix("https://").rstrip("/")
            if not shop:
                raise ValueError("set shop (my-store.myshopify.com) or base_url")
            host = shop if "." in shop else f"{shop}.myshopify.com"
            data = {**data, "base_url": f"https://{host}"}
        return data


def _ts(name: str, path: str) -> pa.Field:
    return pa.field(name, TS, metadata={"path": path})


def _money(name: str, path: str) -> pa.Field:
    # Shopify's Decimal scalar is a string ("199.00"): read as a decimal, never through a float.
    return pa.field(name, MONEY, metadata={"path": path, "wire": "string"})


ORDERS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # a GID: gid://shopify/Order/4507
        pa.field("name", pa.string()),  # "#1001"
        _ts("created_at", "createdAt"),
        _ts("processed_at", "processedAt"),
        _ts("updated_at", "updatedAt"),
        _ts("cancelled_at", "cancelledAt"),
        pa.field("cancel_reason", pa.string(), metadata={"path": "cancelReason"}),
        pa.field("financial_status", pa.string(), metadata={"path": "displayFinancialStatus"}),
        pa.field("customer_id", pa.string(), metadata={"path": "customer.id"}),
        _money("total_price", "totalPriceSet.shopMoney.amount"),
        _money("total_received", "totalReceivedSet.shopMoney.amount"),
        _money("total_refunded", "totalRefundedSet.shopMoney.amount"),
        _money("total_tax", "totalTaxSet.shopMoney.amount"),
        pa.field("currency", pa.string(), metadata={"path": "totalPriceSet.shopMoney.currencyCode"}),
    ]
)
REFUNDS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("order_id", pa.string()),
        pa.field("customer_id", pa.string()),
        _ts("created_at", "createdAt"),
        _ts("updated_at", "updatedAt"),
        _money("amount", "totalRefundedSet.shopMoney.amount"),
        pa.field("currency", pa.string(), metadata={"path": "totalRefundedSet.shopMoney.currencyCode"}),
        _ts("order_updated_at", "orderUpdatedAt"),  # the cursor: refunds are found through their order
    ]
)
CUSTOMERS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("email", pa.string(), metadata={"path": "defaultEmailAddress.emailAddress"}),
        _ts("created_at", "createdAt"),
        _ts("updated_at", "updatedAt"),
        pa.field("number_of_orders", pa.int64(), metadata={"path": "numberOfOrders", "wire": "string"}),
        _money("amount_spent", "amountSpent.amount"),
        pa.field("currency", pa.string(), metadata={"path": "amountSpent.currencyCode"}),
    ]
)
SHOP = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("myshopify_domain", pa.string(), metadata={"path": "myshopifyDomain"}),
        pa.field("currency", pa.string(), metadata={"path": "currencyCode"}),
        pa.field("iana_timezone", pa.string(), metadata={"path": "ianaTimezone"}),
    ]
)


def _since(settings: ShopifySettings, state: Mapping[str, Any] | None) -> str | None:
    """Where the walk starts: the cursor less the overlap; a first sync at ``start_date`` (UTC)."""
    cursor = decode_cursor(state) if state else None
    if isinstance(cursor, dt.datetime):
        start = cursor - dt.timedelta(seconds=settings.overlap_seconds)
    elif settings.start_date is not None:
        start = dt.datetime.combine(settings.start_date, dt.time(), dt.timezone.utc)
    else:
        return None
    return start.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _backfill(settings: ShopifySettings, since: str | None, now: dt.datetime | None = None) -> bool:
    """The read is a backfill, for a bulk operation: from the beginning, or from longer ago than
    ``bulk_after_days``."""
    if not settings.bulk:
        return False
    if since is None:
        return True
    age = (now or dt.datetime.now(dt.timezone.utc)) - dt.datetime.fromisoformat(since)
    return age > dt.timedelta(days=settings.bulk_after_days)


def _why_denied(gql: GraphQL, read: queries.Read, failed: BulkFailed) -> None:
    """Shopify's advice for ACCESS_DENIED: send the query as a normal one to see which scope it needs.

    :raises SourceError: the bulk error with the normal query's (naming the scope).
    """
    try:
        gql.execute(read.page, {"first": 1, "after": None, "query": None})
    except SourceError as exc:
        detail = str(exc).split(": ", 1)[-1]
        message = f"{failed}; as a normal query: {detail}"
        raise SourceError(message, source=failed.source, stream=failed.stream) from None


#: Root nodes per page handed on from a bulk file (the engine gathers pages into chunks).
BULK_PAGE = 1000


class ConnectionStream(Stream[ShopifySettings]):
    """A connection sorted by ``UPDATED_AT``, read incrementally (module docstring)."""

    def read(
        self, ctx: StreamContext[ShopifySettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        gql = GraphQL(ctx.http, s.api_version, self.name, s.max_attempts)
        read: queries.Read = self.extra["read"]
        since = _since(s, state)
        if _backfill(s, since):
            since = yield from self._bulk(ctx, gql, read, since)
        pages = walk(gql, read.page, first=s.page_size, since=since, restart_after=s.restart_after)
        for nodes in dedupe(pages):
            records = self.records(ctx, nodes)
            if records:
                yield records

    def _bulk(
        self, ctx: StreamContext[ShopifySettings], gql: GraphQL, read: queries.Read, since: str | None
    ) -> Generator[list[dict[str, Any]], None, str]:
        """The bulk operation's nodes, in pages; returns where the paged read after it starts.

        :raises SourceError: the operation did not complete, or its file holds another number of
            nodes than its ``rootObjectCount`` (a partial file is never a complete backfill).
        """
        s = ctx.settings
        try:
            op = BulkRunner(gql, s.bulk_poll_seconds, s.bulk_timeout_seconds).run(read.bulk(since_filter(since)))
        except BulkFailed as exc:
            if exc.operation.error_code == "ACCESS_DENIED":
                _why_denied(gql, read, exc)
            raise
        where = f"{ctx.source_id}/{self.name}"
        read_nodes = 0
        if op.url:
            with download_requester(
                op.url, source_id=ctx.source_id, like=ctx.http, timeout=s.timeout, max_attempts=s.max_attempts
            ) as http:
                nodes = assemble(lines(http, op.url, stream=self.name, size=op.file_size), where=where)
                while page := list(islice(nodes, BULK_PAGE)):
                    read_nodes += len(page)
                    records = self.records(ctx, page)
                    if records:
                        yield records
        expected = op.root_object_count if op.root_object_count is not None else op.object_count
        if read_nodes != expected:
            raise SourceError(
                f"{where}: bulk operation {op.id} completed with rootObjectCount {expected}, but its file "
                f"holds {read_nodes} nodes: not a complete backfill (the state is not moved)",
                source=ctx.source_id,
                stream=self.name,
            )
        # How it was read, not what the data says: a log line, not a note on the scorecard.
        ctx.log.info("backfilled by bulk operation %s, then paged from the operation's start", op.id)
        resume = op.created_at - dt.timedelta(seconds=s.overlap_seconds)
        return resume.astimezone(dt.timezone.utc).isoformat(timespec="seconds")

    def records(self, ctx: StreamContext[ShopifySettings], nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return nodes

    def estimate(self, plan: PlanContext[ShopifySettings]) -> Estimate:
        """The default (pages of ``page_size``), except that a backfill is a bulk operation: a
        mutation, polls and the file's ranges, as many as its run time and size make (unknown)."""
        paged = super().estimate(plan)
        if not _backfill(plan.settings, _since(plan.settings, plan.state), plan.now):
            return paged
        path = api_path(plan.settings.api_version)
        basis = (
            f"{paged.basis}; a backfill: one bulk operation (its polls and file ranges are not known before it runs)"
        )
        return replace(paged, requests=(Requests(2, path, "POST"),), at_least=True, basis=basis)


def _live(ctx: StreamContext[ShopifySettings], nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes without test orders (``test: true``: placed with a test gateway, no money moved)."""
    live = [n for n in nodes if n.get("test") is not True]
    if len(live) < len(nodes):  # Shopify's own reports leave them out too: nothing to note on the numbers
        ctx.log.info("%d test orders (test: true) skipped", len(nodes) - len(live))
    return live


class OrdersStream(ConnectionStream):
    def records(self, ctx: StreamContext[ShopifySettings], nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _live(ctx, nodes)

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[ShopifySettings]) -> pa.RecordBatch:
        out = mapping.orders_to_orders(batch)
        ctx.note(
            "partly paid orders: tax_amount left null (Shopify reports the order's tax, not the part paid)",
            mapping.partly_paid(batch),
        )
        return out


class RefundsStream(ConnectionStream):
    """Each refund of each order the walk meets: one row per refund, cursor its order's ``updatedAt``."""

    def records(self, ctx: StreamContext[ShopifySettings], nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for order in _live(ctx, nodes):
            customer = (order.get("customer") or {}).get("id")
            for refund in order.get("refunds") or []:
                if not refund.get("createdAt"):
                    ctx.note("refunds without createdAt dated by their updatedAt")
                    refund = {**refund, "createdAt": refund.get("updatedAt")}
                out.append(
                    {**refund, "order_id": order["id"], "customer_id": customer, "orderUpdatedAt": order["updatedAt"]}
                )
        return out

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[ShopifySettings]) -> pa.RecordBatch:
        return mapping.refunds_to_orders(batch)


class ShopStream(Stream[ShopifySettings]):
    """The shop's own record: its currency and the IANA time zone its days are cut in."""

    def read(
        self, ctx: StreamContext[ShopifySettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        shop = GraphQL(ctx.http, ctx.settings.api_version, self.name, ctx.settings.max_attempts).execute(
            queries.SHOP, {}
        )
        if not isinstance(shop.get("shop"), dict):
            raise SourceError(
                f"{ctx.source_id}/{self.name}: Shopify's answer has no shop", source=ctx.source_id, stream=self.name
            )
        yield [shop["shop"]]


class ShopifySource(Source[ShopifySettings]):
    """Shopify (Admin GraphQL API, a custom app's access token)."""

    name = "shopify"
    title = "Shopify"
    settings_class = ShopifySettings

    def streams(self, settings: ShopifySettings) -> list[Stream[ShopifySettings]]:
        keyed: dict[str, Any] = {"primary_key": ("id",), "on_new_field": "ignore", "page_size": settings.page_size}
        return [
            OrdersStream(
                "orders",
                ORDERS,
                cursor_field="updated_at",
                canonical_table="orders",
                canonical_scope={"kind": "charge"},
                extra={"read": queries.ORDERS},
                **keyed,
            ),
            RefundsStream(
                "refunds",
                REFUNDS,
                cursor_field="order_updated_at",
                canonical_table="orders",
                canonical_scope={"kind": "refund"},
                extra={"read": queries.REFUNDS},
                **keyed,
            ),
            ConnectionStream(
                "customers", CUSTOMERS, cursor_field="updated_at", extra={"read": queries.CUSTOMERS}, **keyed
            ),
            ShopStream("shop", SHOP, primary_key=("id",), on_new_field="ignore"),
        ]

    def headers(self, settings: ShopifySettings) -> dict[str, str]:
        # shopify.dev/api/admin/getting-started: "Include the access token as a X-Shopify-Access-Token header".
        return {"X-Shopify-Access-Token": settings.access_token.get_secret_value()}

    def rate_limits(self, settings: ShopifySettings) -> list[Limit]:
        # The size is learnt from the first answer's throttleStatus (it depends on the shop's plan).
        return [Limit(POINTS, None, 20.0, title="Shopify query cost points")]

    @staticmethod
    def observe_rate(response: httpx.Response) -> list[Observation]:
        return observe_cost(response)

    def check(self, settings: ShopifySettings, http: Requester) -> CheckResult:
        try:
            data = GraphQL(http, settings.api_version, "check", settings.max_attempts).execute(queries.SHOP, {})
        except (HTTPError, SourceError) as exc:
            return CheckResult(False, str(exc))
        shop = data.get("shop") or {}
        return CheckResult(
            True,
            f"connected to Shopify shop {shop.get('name')!r} ({shop.get('currencyCode')}, {shop.get('ianaTimezone')})",
        )

    def diagnose(self, settings: ShopifySettings, http: Requester | None) -> list[Diagnosis]:
        """The shop's time zone: KPI periods are cut in ``[project] timezone``, which should be it."""
        if http is None:
            return []
        try:
            shop = GraphQL(http, settings.api_version, "doctor", settings.max_attempts).execute(queries.SHOP, {})[
                "shop"
            ]
        except (HTTPError, SourceError) as exc:
            return [Diagnosis("error", str(exc))]
        return [
            Diagnosis(
                "ok",
                f"shop {shop.get('name')!r} sells in {shop.get('currencyCode')} and keeps its days in "
                f'{shop.get("ianaTimezone")}: set [project] timezone = "{shop.get("ianaTimezone")}" '
                "so KPI days are the shop's",
            )
        ]

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        """The demo business's web shop (:mod:`kpihub_shopify.demo`)."""
        from kpihub_shopify.demo import demo_spec

        return demo_spec(seed=seed, scale=scale)
