"""The Stripe connector: customers, charges, refunds, invoices and subscriptions.

List endpoints return newest first and page with ``starting_after=<last id>``
while ``has_more``; they can filter on ``created`` only, so an object that changes
later (a charge refunded, a subscription canceled, an invoice paid) is found through
Stripe's events instead. An incremental sync of a stream (see :meth:`ListStream.read`):

1. checks that ``GET /v1/events`` still reaches back to the cursor (events are kept
   30 days); if not, the stream is read in full again, and the summary says so;
2. reads the events of the stream's object since the cursor, newest first, and keeps
   each object's newest version (``data.object``) — for objects created before the
   cursor; newer ones come from step 3;
3. reads the list with ``created[gte]=<cursor>``: new objects, in their current state.

The cursor is the stream's ``_changed_at`` column: when the stored version was current
(the event's ``created``, or the object's ``created`` from the list), capped at the newest
event read, so it never passes a change the events have not shown yet. Records arrive
newest first, so the cursor is committed when a stream completes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr

from kpihub import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    HTTPError,
    MalformedResponseError,
    PlanContext,
    Requests,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
)
from kpihub.http import BearerAuth, CursorPaginator, Requester, RetryDecision
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


#: The cursor of every stream: when the stored version of the object was current (see the module
#: docstring). Bookkeeping like ``_loaded_at``: a full and an incremental sync may stamp one object
#: differently (its ``created``, or the time of the event that changed it).
CHANGED_AT = _ts("_changed_at")
#: True for an object deleted in Stripe (kept, as an incremental sync saw its ``*.deleted`` event).
DELETED = pa.field("deleted", pa.bool_())


CUSTOMERS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("name", pa.string()),
        pa.field("currency", pa.string()),
        _ts("created"),
        pa.field("delinquent", pa.bool_()),
        pa.field("livemode", pa.bool_()),
        DELETED,
        CHANGED_AT,
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
        CHANGED_AT,
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
        CHANGED_AT,
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
        DELETED,
        CHANGED_AT,
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
        CHANGED_AT,
    ]
)


def _last_id(body: Mapping[str, Any], records: list[dict[str, Any]]) -> str | None:
    """Stripe's cursor: the last object's id while ``has_more``."""
    if not body.get("has_more"):
        return None
    if not records:
        raise MalformedResponseError("Stripe sent has_more with no objects: nothing to page on from")
    return str(records[-1]["id"])


@dataclass(frozen=True)
class Changes:
    """Which events tell of changes to a stream's objects (docs.stripe.com/api/events/types).

    :param object: ``data.object.object`` of the stream's objects; other objects are skipped
        (``charge.refund.updated`` carries a refund, ``charge.dispute.*`` a dispute).
    :param types: the event types, at most 20 (``types[]`` takes up to 20 names).
    :param deletions: the types that mean the object is gone: it is kept, marked ``deleted``.
    """

    object: str
    types: tuple[str, ...]
    deletions: frozenset[str] = frozenset()


# The lists follow Stripe's event types page; Airbyte's source-stripe reads the same types for
# these objects (airbytehq/airbyte airbyte-integrations/connectors/source-stripe/manifest.yaml).
CUSTOMER_CHANGES = Changes(
    "customer", ("customer.created", "customer.updated", "customer.deleted"), frozenset({"customer.deleted"})
)
CHARGE_CHANGES = Changes(
    "charge",
    (
        "charge.captured",
        "charge.expired",
        "charge.failed",
        "charge.pending",
        "charge.refunded",  # "including partial refunds"
        "charge.succeeded",
        "charge.updated",
    ),
)
REFUND_CHANGES = Changes("refund", ("refund.created", "refund.updated", "charge.refund.updated"))
INVOICE_CHANGES = Changes(
    "invoice",
    (
        "invoice.created",
        "invoice.deleted",  # only drafts can be deleted
        "invoice.finalization_failed",
        "invoice.finalized",
        "invoice.marked_uncollectible",
        "invoice.overdue",
        "invoice.paid",
        "invoice.payment_action_required",
        "invoice.payment_failed",
        "invoice.payment_succeeded",
        "invoice.sent",
        "invoice.updated",
        "invoice.voided",
        "invoice.will_be_due",
    ),
    frozenset({"invoice.deleted"}),
)
# customer.subscription.deleted means the subscription ended: it stays listed (status=all) as canceled.
SUBSCRIPTION_CHANGES = Changes(
    "subscription",
    tuple(
        f"customer.subscription.{t}"
        for t in (
            "created",
            "deleted",
            "paused",
            "pending_update_applied",
            "pending_update_expired",
            "resumed",
            "trial_will_end",
            "updated",
        )
    ),
)


def _unix(value: dt.datetime) -> int:
    return int(value.timestamp())


class ListStream(Stream[StripeSettings]):
    """A Stripe list endpoint, incremental through ``created`` and the events (module docstring)."""

    def read(
        self, ctx: StreamContext[StripeSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        settings = ctx.settings
        cursor = dt.datetime.fromisoformat(state["cursor"]) if state and state.get("cursor") else None
        changes: Changes | None = self.extra.get("changes")
        if cursor is not None and changes is not None and not self._events_reach(ctx, cursor):
            ctx.note(
                f"the last sync ({cursor:%Y-%m-%d %H:%M} UTC) is beyond Stripe's 30-day event retention:"
                " changes since then cannot be listed, so the stream was read in full again"
                " (objects deleted meanwhile are not marked deleted)"
            )
            cursor = None
        watermark = None
        if cursor is not None and changes is not None:
            newest = [_unix(cursor)]
            yield from self._changed(ctx, changes, _unix(cursor), newest)
            watermark = newest[0]
        since = cursor
        if since is None and settings.start_date is not None:
            since = dt.datetime.combine(settings.start_date, dt.time(), dt.timezone.utc)
        params: dict[str, Any] = {"limit": settings.page_size, **self.extra.get("params", {})}
        if since is not None:
            params["created[gte]"] = _unix(since)
        paginator = CursorPaginator("data", cursor_from=_last_id, param="starting_after")
        for _, records in ctx.pages(paginator, "GET", f"/v1/{self.extra['endpoint']}", params=params):
            # Stamped no later than the newest event read: a change to an old object made while this
            # list was read is after the cursor, so the next sync's events bring it.
            yield [
                {**r, "_changed_at": r.get("created") if watermark is None else min(r["created"], watermark)}
                for r in self.prepare(records)
            ]

    def estimate(self, plan: PlanContext[StripeSettings]) -> Estimate:
        """The list's pages; since a cursor also the events' reach check and their pages (the records
        expected are the changes since the cursor, counted once in each: an upper bound)."""
        settings = plan.settings
        mode, since = plan.read_from(self)
        records, basis = plan.expected_records(self)
        if mode == "incremental" and plan.now - since > dt.timedelta(days=30):  # what read() finds out by asking
            mode, since, records = "full", settings.start_date, plan.last_full_read
            basis = "the cursor is older than Stripe's 30 days of events: read in full again"
            basis += "" if records is None else f", as many as its last full read ({records:,})"
        pages, at_least = plan.pages(records, settings.page_size)
        requests = [Requests(pages, f"/v1/{self.extra['endpoint']}")]
        if mode == "incremental" and self.extra.get("changes") is not None:
            requests = [Requests(1, "/v1/events"), Requests(pages, "/v1/events"), *requests]
        return Estimate(mode, since, None, tuple(requests), records, at_least, basis)

    @staticmethod
    def _events_reach(ctx: StreamContext[StripeSettings], cursor: dt.datetime) -> bool:
        """Whether the events still reach back to ``cursor``: an event at or before it is still listed.

        Stripe lists "events, going back up to 30 days" (docs.stripe.com/api/events/list), oldest
        dropping out first, so while one at or before the cursor is listed every later one is too.
        Asked of Stripe rather than of this machine's clock. None listed (also: no event before the
        cursor at all) means a full read: safe, only slower.
        """
        body = ctx.http.json("GET", "/v1/events", stream=ctx.stream, params={"limit": 1, "created[lte]": _unix(cursor)})
        return bool((body or {}).get("data"))

    def _changed(
        self, ctx: StreamContext[StripeSettings], changes: Changes, since: int, newest: list[int]
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of the objects created before ``since`` that events since then changed, each in its
        newest version; ``newest[0]`` follows the newest event time read.

        Events come newest first (docs.stripe.com/api/events/list), so an object's first event is its
        newest. ``data.object`` is the object at that time, rendered in the API version of the event
        (its ``api_version``), not the request's ``Stripe-Version`` (…/api/events/object): the streams
        read both shapes. Objects created since ``since`` are left to the list, which has them in their
        current state (and a deleted one, which the list no longer has, comes from here).
        """
        settings = ctx.settings
        params = {"limit": settings.page_size, "types[]": list(changes.types), "created[gte]": since}
        paginator = CursorPaginator("data", cursor_from=_last_id, param="starting_after")
        seen: set[str] = set()
        for _, events in ctx.pages(paginator, "GET", "/v1/events", params=params):
            objects, stamps = [], []
            for event in events:
                created = event.get("created")
                if not isinstance(created, int):
                    raise MalformedResponseError(
                        f"stream {self.name!r}: event {event.get('id')!r} has no integer 'created' ({created!r})"
                    )
                newest[0] = max(newest[0], created)
                obj = (event.get("data") or {}).get("object") or {}
                oid = obj.get("id")
                if obj.get("object") != changes.object or not oid or oid in seen:
                    continue
                seen.add(oid)
                deleted = event.get("type") in changes.deletions
                if deleted:
                    ctx.note(f"{changes.object}s deleted in Stripe, kept with deleted = true")
                    obj = {**obj, "deleted": True}
                elif int(obj.get("created") or 0) >= since:
                    continue  # the list reads it
                objects.append(obj)
                stamps.append(created)
            if objects:
                ctx.note(f"{changes.object}s changed since the last sync, read from Stripe's events", len(objects))
                yield [{**r, "_changed_at": t} for r, t in zip(self.prepare(objects), stamps, strict=True)]

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
    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[StripeSettings]) -> pa.RecordBatch:
        return mapping.charges_to_orders(batch)


class RefundsStream(ListStream):
    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[StripeSettings]) -> pa.RecordBatch:
        return mapping.refunds_to_orders(batch)


class SubscriptionsStream(ListStream):
    """Subscriptions of every status (``status=all``: the list leaves canceled ones out by default)."""

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

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[StripeSettings]) -> pa.RecordBatch:
        return mapping.subscriptions(batch)


class StripeSource(Source[StripeSettings]):
    """Stripe billing (secret or restricted key)."""

    name = "stripe"
    title = "Stripe"
    settings_class = StripeSettings

    def streams(self, settings: StripeSettings) -> list[Stream[StripeSettings]]:
        # Stripe objects carry dozens of fields; the streams keep the documented subset.
        keyed: dict[str, Any] = {"primary_key": ("id",), "cursor_field": "_changed_at", "on_new_field": "ignore"}
        return [
            ListStream("customers", CUSTOMERS, extra={"endpoint": "customers", "changes": CUSTOMER_CHANGES}, **keyed),
            ChargesStream(
                "charges",
                CHARGES,
                canonical_table="orders",
                canonical_scope={"kind": "charge"},
                extra={"endpoint": "charges", "changes": CHARGE_CHANGES},
                **keyed,
            ),
            RefundsStream(
                "refunds",
                REFUNDS,
                canonical_table="orders",
                canonical_scope={"kind": "refund"},
                extra={"endpoint": "refunds", "changes": REFUND_CHANGES},
                **keyed,
            ),
            InvoicesStream("invoices", INVOICES, extra={"endpoint": "invoices", "changes": INVOICE_CHANGES}, **keyed),
            SubscriptionsStream(
                "subscriptions",
                SUBSCRIPTIONS,
                canonical_table="subscriptions",
                extra={"endpoint": "subscriptions", "params": {"status": "all"}, "changes": SUBSCRIPTION_CHANGES},
                **keyed,
            ),
        ]

    def auth(self, settings: StripeSettings) -> httpx.Auth:
        return BearerAuth(settings.api_key)

    def headers(self, settings: StripeSettings) -> dict[str, str]:
        return {"Stripe-Version": settings.stripe_version}

    @staticmethod
    def classify(response: httpx.Response) -> RetryDecision | None:
        # Stripe says explicitly whether a failed request may be retried.
        should = response.headers.get("Stripe-Should-Retry")
        if should is None:
            return None
        return RetryDecision(should == "true")  # the requester adds Retry-After

    def check(self, settings: StripeSettings, http: Requester) -> CheckResult:
        try:
            http.json("GET", "/v1/customers", stream="check", params={"limit": 1})
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, "connected to Stripe")

    def diagnose(self, settings: StripeSettings, http: Requester | None) -> list[Diagnosis]:
        """Is ``stripe_version`` a real version of a release the streams read (and does Stripe accept it)?"""
        from kpihub_stripe.versions import diagnose

        return [diagnose(settings.stripe_version, dt.date.today(), http)]

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_stripe.fake import FakeStripe, StripeData

        data = StripeData(
            seed=seed,
            customers=DEMO_BUSINESS.billed_customers * scale,
            currencies=(DEMO_BUSINESS.currency.lower(),),
            email=DEMO_BUSINESS.customer_email,
        )
        server = FakeStripe(seed=seed, data=data)
        return DemoSpec(
            server=server, settings={"api_key": server.api_key, "requests_per_second": None}, targets=DEMO_TARGETS
        )


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline. Only KPIs of
#: Stripe's own tables: the order KPIs add its web shop's orders (the business's targets file has them).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "new_subscriptions", "period": "2026-Q2", "baseline": 90, "target": 100},
]
