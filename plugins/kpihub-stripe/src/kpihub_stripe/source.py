"""The Stripe connector: customers, charges, refunds (incremental on ``created``) and subscriptions.

List endpoints return newest first and page with ``starting_after=<last id>``
while ``has_more``; incremental reads ask for ``created[gte]=<cursor>``. Since
records arrive newest first, the cursor is committed when a stream completes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr

from kpihub import (
    CheckResult,
    DemoSpec,
    HTTPError,
    MalformedResponseError,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
)
from kpihub.http import BearerAuth, CursorPaginator, RetryDecision
from kpihub_stripe import mapping
from kpihub_stripe.currencies import exponent

TS = pa.timestamp("us", tz="UTC")
#: Months per billing interval, to normalize recurring prices to MRR.
MONTHS = {
    "day": Decimal(12) / Decimal(365),
    "week": Decimal(12) / Decimal(52),
    "month": Decimal(1),
    "year": Decimal(12),
}


class StripeSettings(SourceSettings):
    """``[sources.stripe]``: a secret (or restricted read-only) API key."""

    base_url: str = "https://api.stripe.com"
    #: ``sk_live_…`` / ``rk_live_…``; better set as KPIHUB_STRIPE_API_KEY.
    api_key: SecretStr
    #: ``Stripe-Version`` sent on every request, so that objects come in the shape the streams
    #: read whatever the account's default version is (docs.stripe.com/api-versions: the header
    #: wins over the account default). Older versions are read too (invoices' top-level subscription).
    stripe_version: str = Field(default="2025-03-31.basil", pattern=r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
    page_size: int = Field(default=100, ge=1, le=100)
    #: Live mode allows 100 read requests/s, test mode 25/s; stay under the lower.
    requests_per_second: float | None = 20.0


def _ts(name: str) -> pa.Field:
    return pa.field(name, TS, metadata={"wire": "int"})  # unix seconds


CUSTOMERS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("name", pa.string()),
        pa.field("currency", pa.string()),
        _ts("created"),
        pa.field("delinquent", pa.bool_()),
        pa.field("livemode", pa.bool_()),
    ]
)
CHARGES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), metadata={"minimum": "0"}),  # minor units; refunds are positive too
        pa.field("amount_captured", pa.int64()),
        pa.field("amount_refunded", pa.int64()),
        pa.field("currency", pa.string()),
        pa.field("customer", pa.string()),
        _ts("created"),
        pa.field("status", pa.string()),
        pa.field("paid", pa.bool_()),
        pa.field("captured", pa.bool_()),
        pa.field("refunded", pa.bool_()),
        pa.field("payment_intent", pa.string()),
        pa.field("invoice", pa.string()),
        pa.field("failure_code", pa.string()),
        pa.field("livemode", pa.bool_()),
    ]
)
REFUNDS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), metadata={"minimum": "0"}),  # minor units; refunds are positive too
        pa.field("charge", pa.string()),
        pa.field("currency", pa.string()),
        _ts("created"),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("payment_intent", pa.string()),
    ]
)
INVOICES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("customer", pa.string()),
        pa.field("status", pa.string()),
        _ts("created"),
        pa.field("currency", pa.string()),
        pa.field("amount_due", pa.int64()),
        pa.field("amount_paid", pa.int64()),
        pa.field("total", pa.int64()),
        pa.field("subtotal", pa.int64()),
        pa.field("billing_reason", pa.string()),
        pa.field("subscription", pa.string()),  # from either version's place (InvoicesStream)
    ]
)
SUBSCRIPTIONS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("customer", pa.string()),
        pa.field("status", pa.string()),
        _ts("created"),
        _ts("start_date"),
        _ts("canceled_at"),
        _ts("ended_at"),
        pa.field("currency", pa.string()),
        pa.field("items", pa.int64()),
        pa.field("mrr", pa.decimal128(38, 9), metadata={"wire": "string"}),
    ]
)


def _last_id(body: Mapping[str, Any], records: list[dict[str, Any]]) -> str | None:
    """Stripe's cursor: the last object's id while ``has_more``."""
    if not body.get("has_more"):
        return None
    if not records:
        raise MalformedResponseError("Stripe sent has_more with no objects: nothing to page on from")
    return str(records[-1]["id"])


class ListStream(Stream):
    """A Stripe list endpoint, incremental on ``created``."""

    def read(self, ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        settings: StripeSettings = ctx.settings  # type: ignore[assignment]
        params: dict[str, Any] = {"limit": settings.page_size, **self.extra.get("params", {})}
        since = dt.datetime.fromisoformat(state["cursor"]) if state and state.get("cursor") else None
        if since is None and settings.start_date is not None:
            since = dt.datetime.combine(settings.start_date, dt.time(), dt.timezone.utc)
        if since is not None and self.incremental:
            params["created[gte]"] = int(since.timestamp())
        paginator = CursorPaginator("data", cursor_from=_last_id, param="starting_after")
        for _, records in ctx.pages(paginator, "GET", f"/v1/{self.extra['endpoint']}", params=params):
            yield self.prepare(records)

    def prepare(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return records


def invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The invoice's subscription id in either shape: ``parent.subscription_details.subscription``
    since 2025-03-31.basil, the top-level ``subscription`` before it
    (docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects).
    Either may be an expanded object rather than an id."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    value = details.get("subscription") or invoice.get("subscription")
    return value.get("id") if isinstance(value, Mapping) else value


class InvoicesStream(ListStream):
    def prepare(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**inv, "subscription": invoice_subscription(inv)} for inv in records]


class ChargesStream(ListStream):
    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        return mapping.charges_to_orders(batch)


class RefundsStream(ListStream):
    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        return mapping.refunds_to_orders(batch)


class SubscriptionsStream(ListStream):
    """Every subscription (``status=all``) on every sync: statuses change after creation."""

    def prepare(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Items are a nested list: MRR = Σ unit_amount × quantity per month, in major units.
        out = []
        for sub in records:
            items = (sub.get("items") or {}).get("data") or []
            mrr = Decimal(0)
            for item in items:
                price = item.get("price") or {}
                recurring = price.get("recurring") or {}
                unit = Decimal(price.get("unit_amount_decimal") or price.get("unit_amount") or 0)
                per = MONTHS.get(recurring.get("interval", "month"), Decimal(1)) * int(
                    recurring.get("interval_count") or 1
                )
                mrr += unit * int(item.get("quantity") or 1) / per
            scale = Decimal(10) ** exponent(sub.get("currency") or "usd")
            out.append({**sub, "items": len(items), "mrr": str((mrr / scale).quantize(Decimal("0.000000001")))})
        return out

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        return mapping.subscriptions(batch)


class StripeSource(Source):
    """Stripe billing (secret or restricted key)."""

    name = "stripe"
    title = "Stripe"
    settings_class = StripeSettings

    def streams(self, settings: SourceSettings) -> list[Stream]:
        # Stripe objects carry dozens of fields; the streams keep the documented subset.
        keyed: dict[str, Any] = {"primary_key": ("id",), "on_new_field": "ignore"}
        return [
            ListStream("customers", CUSTOMERS, cursor_field="created", extra={"endpoint": "customers"}, **keyed),
            ChargesStream(
                "charges",
                CHARGES,
                cursor_field="created",
                canonical_table="orders",
                canonical_scope={"kind": "charge"},
                extra={"endpoint": "charges"},
                **keyed,
            ),
            RefundsStream(
                "refunds",
                REFUNDS,
                cursor_field="created",
                canonical_table="orders",
                canonical_scope={"kind": "refund"},
                extra={"endpoint": "refunds"},
                **keyed,
            ),
            InvoicesStream("invoices", INVOICES, cursor_field="created", extra={"endpoint": "invoices"}, **keyed),
            SubscriptionsStream(
                "subscriptions",
                SUBSCRIPTIONS,
                canonical_table="subscriptions",
                extra={"endpoint": "subscriptions", "params": {"status": "all"}},
                **keyed,
            ),
        ]

    def auth(self, settings: SourceSettings) -> httpx.Auth:
        return BearerAuth(settings.api_key)  # type: ignore[attr-defined]

    def headers(self, settings: SourceSettings) -> dict[str, str]:
        return {"Stripe-Version": settings.stripe_version}  # type: ignore[attr-defined]

    @staticmethod
    def classify(response: httpx.Response) -> RetryDecision | None:
        # Stripe says explicitly whether a failed request may be retried.
        should = response.headers.get("Stripe-Should-Retry")
        if should is None:
            return None
        return RetryDecision(should == "true")  # the requester adds Retry-After

    def check(self, settings: SourceSettings, http: Any) -> CheckResult:
        try:
            http.json("GET", "/v1/customers", stream="check", params={"limit": 1})
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, "connected to Stripe")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub.testing.business import DEMO_BUSINESS
        from kpihub_stripe.fake import FakeStripe, StripeData

        data = StripeData(
            seed=seed,
            customers=1_200 * scale,
            currencies=(DEMO_BUSINESS.currency.lower(),),
            email=DEMO_BUSINESS.customer_email,
        )
        server = FakeStripe(seed=seed, data=data)
        return DemoSpec(
            server=server, settings={"api_key": server.api_key, "requests_per_second": None}, targets=DEMO_TARGETS
        )


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "sales", "period": "2026-Q2", "baseline": 106700, "target": 115000},
    {"kpi": "aov", "period": "2026-Q2", "baseline": 200, "target": 210},
    {"kpi": "arpu", "period": "2026-Q2", "baseline": 324, "target": 340},
    {"kpi": "refund_rate", "period": "2026-Q2", "baseline": 4.3, "target": 3.5},
    {"kpi": "new_subscriptions", "period": "2026-Q2", "baseline": 90, "target": 100},
]
