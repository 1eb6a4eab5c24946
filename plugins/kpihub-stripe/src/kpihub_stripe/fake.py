"""A fake Stripe on 127.0.0.1 speaking the v1 list API, with seeded billing data.

Shapes (docs.stripe.com/api and kpihub's shared API notes):

* ``GET /v1/{customers|charges|refunds|subscriptions}?limit=1..100&starting_after=<id>
  &created[gte]=<unix>`` answers ``{"object": "list", "data": [...], "has_more": bool,
  "url": "/v1/charges"}``, newest first; ``/v1/subscriptions`` leaves out canceled
  subscriptions unless ``status=all``.
* Amounts are integers in minor units (``amount``, ``amount_captured``,
  ``amount_refunded``, ``unit_amount``); zero-decimal currencies (JPY) are whole
  units; ``currency`` is lower case; ``created`` is unix seconds.
* Objects come in the shape of the request's API version: the ``Stripe-Version``
  header when sent, else the account's default version (docs.stripe.com/api-versions,
  "How a version is chosen for each request": the request's Stripe-Version header if
  set, else an SDK's pinned version, else the account default). A malformed version
  is 400 ``Invalid Stripe API version: …`` (the message quoted in stripe/stripe-java#682). From 2025-03-31.basil on, an invoice names its
  subscription in ``parent.subscription_details.subscription`` and the top-level
  ``subscription``/``subscription_details`` are gone
  (docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects),
  and ``current_period_start``/``_end`` live on subscription items instead of the
  subscription (…/basil/2025-03-31/deprecate-subscription-current-period-start-and-end).
  The fake keeps basil shapes and renders older versions from them.
* ``GET /v1/events?limit=&starting_after=&created[gt|gte|lt|lte]=&types[]=…`` (or ``type=``
  with ``*`` wildcards, not both) lists events newest first, "going back up to 30 days"; each
  event's ``data.object`` is the object as it was when the event happened, rendered in the API
  version the account had then (the event's ``api_version``), "not according to your current
  Stripe API version or Stripe-Version header"; ``data.previous_attributes`` on ``*.updated``
  events holds the changed attributes' old values (docs.stripe.com/api/events/list,
  docs.stripe.com/api/events/object). The data's mutators (:meth:`StripeData.refund`,
  :meth:`StripeData.cancel_subscription`, …) emit the events Stripe sends for them.
* Auth: ``Authorization: Bearer sk_…`` (or HTTP basic with the key as user name).
  A bad key answers 401 ``{"error": {"message": "Invalid API Key provided:
  sk_test_****abcd", "type": "invalid_request_error"}}`` — Stripe masks the key.
* 429: ``{"error": {"code": "rate_limit", "doc_url": …, "message": "Request rate
  limit exceeded. …", "type": "invalid_request_error"}}``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import fnmatch
import operator
import random
import re
from collections.abc import Callable
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

__all__ = ["FakeStripe", "StripeData"]

START = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp())
END = int(dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc).timestamp())
#: The first API version with invoice ``parent`` and item-level billing periods.
BASIL = "2025-03-31"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
#: "List events, going back up to 30 days" (docs.stripe.com/api/events/list).
RETENTION = 30 * 86400
#: Event ``data.object.object`` -> the list endpoint (and ``in_version`` kind) of that object.
KINDS = {
    "customer": "customers",
    "charge": "charges",
    "refund": "refunds",
    "subscription": "subscriptions",
    "invoice": "invoices",
}
#: Invoices created this many days before END are still open (paid or voided later).
OPEN_DAYS = 30
PRICES = {"eur": [(2900, "month"), (29000, "year"), (9900, "month")], "jpy": [(3500, "month")]}


class StripeData:
    """Deterministic customers, charges, refunds and subscriptions."""

    def __init__(
        self,
        *,
        seed: int = 7,
        customers: int = 500,
        currencies: tuple[str, ...] = ("eur",) * 9 + ("jpy",),
        email: Callable[[int], str] | None = None,
        api_version: str = "2025-03-31.basil",
    ) -> None:
        self.rng = random.Random(seed)
        self.currencies = currencies
        self.email = email
        #: "Now" on the fake: new activity is dated from here; events older than RETENTION are gone.
        self.clock = END
        #: The account's API version: events are rendered in the version the account had when they happened.
        self.api_version = api_version
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            k: {} for k in ("customers", "charges", "refunds", "subscriptions", "invoices")
        }
        #: ``(created, sequence, event)``; the sequence orders events of one second as they happened.
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        self._n = 0
        self._seq = 0  # event ids come from their own counter: object ids and amounts keep their seeds
        for _ in range(customers):
            self._customer()

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:014d}{self.rng.choice('ABCDEFGH')}"

    def _customer(self, at: int | None = None) -> None:
        rng = self.rng
        created = at or START + int((END - START) * rng.random() ** 0.7)
        currency = rng.choice(self.currencies)
        index = len(self.objects["customers"])
        cid = self._id("cus")
        self.objects["customers"][cid] = {
            "id": cid,
            "object": "customer",
            "created": created,
            "email": self.email(index) if self.email else f"{cid.lower()}@example.com",
            "name": f"Customer {self._n}",
            "currency": currency,
            "delinquent": False,
            "livemode": False,
        }
        self.emit("customer.created", self.objects["customers"][cid], created)
        t = created
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            t += rng.randint(0, 40 * 86400)
            if t >= END:
                break
            self._charge(cid, currency, t)
        if rng.random() < 0.35:
            self._subscription(cid, currency, created)
            self._invoice(cid, currency, created, next(reversed(self.objects["subscriptions"])))

    def _charge(self, customer: str, currency: str, at: int) -> dict[str, Any]:
        rng = self.rng
        amount = rng.randint(5, 400) * (100 if currency == "jpy" else 100) + rng.choice([0, 50, 99])
        failed = rng.random() < 0.04
        chid = self._id("ch")
        charge = {
            "id": chid,
            "object": "charge",
            "amount": amount,
            "amount_captured": 0 if failed else amount,
            "amount_refunded": 0,
            "balance_transaction": None if failed else self._id("txn"),
            "captured": not failed,
            "created": at,
            "currency": currency,
            "customer": customer,
            "description": None,
            "disputed": False,
            "failure_code": "card_declined" if failed else None,
            "invoice": None,
            "livemode": False,
            "paid": not failed,
            "payment_intent": self._id("pi"),
            "refunded": False,
            "status": "failed" if failed else "succeeded",
        }
        self.objects["charges"][chid] = charge
        self.emit("charge.failed" if failed else "charge.succeeded", charge, at)
        if not failed and rng.random() < 0.06:
            refund_at = min(END - 1, at + rng.randint(3600, 30 * 86400))
            part = amount if rng.random() < 0.6 else amount // 2
            self._refund(charge, part, refund_at)
        return charge

    def _refund(self, charge: dict[str, Any], amount: int, at: int) -> None:
        rid = self._id("re")
        self.objects["refunds"][rid] = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "balance_transaction": self._id("txn"),
            "charge": charge["id"],
            "created": at,
            "currency": charge["currency"],
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "requested_by_customer",
            "receipt_number": None,
            "status": "succeeded",
        }
        before = {k: charge[k] for k in ("amount_refunded", "refunded")}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        # A refund sends refund.created (the refund) and charge.refunded (the charge, "including
        # partial refunds"): docs.stripe.com/api/events/types.
        self.emit("refund.created", self.objects["refunds"][rid], at)
        self.emit("charge.refunded", charge, at, previous=before)

    def _subscription(self, customer: str, currency: str, at: int) -> None:
        rng = self.rng
        unit, interval = rng.choice(PRICES[currency])
        sid = self._id("sub")
        quantity = rng.choice([1, 1, 2, 5])
        canceled = rng.random() < 0.3
        canceled_at = min(END - 1, at + rng.randint(30, 300) * 86400) if canceled else None
        period = 30 * 86400 if interval == "month" else 365 * 86400
        sub = self.objects["subscriptions"][sid] = {
            "id": sid,
            "object": "subscription",
            "customer": customer,
            "created": at,
            "start_date": at,
            "status": "active",
            "canceled_at": None,
            "ended_at": None,
            "cancel_at_period_end": False,
            "currency": currency,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": self._id("si"),
                        "object": "subscription_item",
                        "created": at,
                        "current_period_start": END - period,
                        "current_period_end": END,
                        "quantity": quantity,
                        "price": {
                            "id": self._id("price"),
                            "object": "price",
                            "currency": currency,
                            "unit_amount": unit,
                            "unit_amount_decimal": str(unit),
                            "recurring": {"interval": interval, "interval_count": 1},
                        },
                    }
                ],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sid}",
            },
            "livemode": False,
        }
        self.emit("customer.subscription.created", sub, at)
        if canceled_at is not None and canceled_at > at:  # (new activity after END is not canceled)
            self._cancel(sub, canceled_at)

    def _cancel(self, sub: dict[str, Any], at: int) -> None:
        """End ``sub`` now: "customer.subscription.deleted: Occurs whenever a customer's subscription
        ends" (docs.stripe.com/api/events/types); the subscription stays listed with ``status=all``."""
        before = {k: sub[k] for k in ("status", "canceled_at", "ended_at")}
        sub.update(status="canceled", canceled_at=at, ended_at=at)
        self.emit("customer.subscription.deleted", sub, at, previous=before)

    def _invoice(self, customer: str, currency: str, at: int, subscription: str) -> None:
        sub = self.objects["subscriptions"][subscription]
        amount = sub["items"]["data"][0]["price"]["unit_amount"] * sub["items"]["data"][0]["quantity"]
        iid = self._id("in")
        # Invoices of the last few days are still open (paid by pay_invoice), older ones paid.
        paid = at < END - OPEN_DAYS * 86400
        invoice = self.objects["invoices"][iid] = {
            "id": iid,
            "object": "invoice",
            "customer": customer,
            "status": "paid" if paid else "open",
            "created": at,
            "currency": currency,
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "total": amount,
            "subtotal": amount,
            "billing_reason": "subscription_create",
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription},
            },
            "livemode": False,
        }
        self.emit("invoice.created", invoice, at)

    # -- events ---------------------------------------------------------------------------

    def emit(self, type_: str, obj: dict[str, Any], at: int, previous: dict[str, Any] | None = None) -> None:
        """Record event ``type_`` about ``obj`` at ``at``: a snapshot of the object as it is now,
        rendered in the account's current API version (events never change afterwards)."""
        if at < self.clock - RETENTION:
            return  # seeded history older than the retention: no list would ever show it
        self._seq += 1
        data: dict[str, Any] = {"object": in_version(KINDS[obj["object"]], copy.deepcopy(obj), self.api_version)}
        if type_.endswith(".updated") or previous is not None:
            # "previous_attributes: … the updated attributes and their values prior to the event"
            data["previous_attributes"] = copy.deepcopy(previous or {})
        event = {
            "id": f"evt_{self._seq:014d}EVT",
            "object": "event",
            "api_version": self.api_version,
            "created": at,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        self.events.append((at, self._seq, event))

    def live_events(self) -> list[dict[str, Any]]:
        """The events Stripe still lists (the last RETENTION seconds), newest first."""
        horizon = self.clock - RETENTION
        return [e for at, _, e in sorted(self.events, key=lambda t: t[:2], reverse=True) if at >= horizon]

    # -- changes (incremental tests) --------------------------------------------------------

    def tick(self, seconds: int = 60) -> int:
        """Move the clock on; the new "now"."""
        self.clock += seconds
        return self.clock

    def advance(self, days: float) -> None:
        """Let ``days`` pass with no activity (events older than 30 days drop out of the list)."""
        self.tick(int(days * 86400))

    def refund(self, charge_id: str, amount: int | None = None) -> None:
        """Refund ``amount`` (default: what is left) of a charge now."""
        charge = self.objects["charges"][charge_id]
        self._refund(charge, charge["amount"] - charge["amount_refunded"] if amount is None else amount, self.tick())

    def cancel_subscription(self, subscription_id: str) -> None:
        self._cancel(self.objects["subscriptions"][subscription_id], self.tick())

    def change_quantity(self, subscription_id: str, quantity: int) -> None:
        """Change a subscription's seats now (its MRR changes): customer.subscription.updated."""
        sub = self.objects["subscriptions"][subscription_id]
        before = {"items": copy.deepcopy(sub["items"])}  # an updated array is sent whole
        sub["items"]["data"][0]["quantity"] = quantity
        self.emit("customer.subscription.updated", sub, self.tick(), previous=before)

    def update_customer(self, customer_id: str, **fields: Any) -> None:
        customer = self.objects["customers"][customer_id]
        before = {k: customer.get(k) for k in fields}
        customer.update(fields)
        self.emit("customer.updated", customer, self.tick(), previous=before)

    def delete_customer(self, customer_id: str) -> None:
        """Delete a customer now: its live subscriptions end first, and it leaves the customer list
        ("Deleting a customer … cancels any active subscriptions", docs.stripe.com/api/customers/delete)."""
        for sub in self.objects["subscriptions"].values():
            if sub["customer"] == customer_id and sub["status"] != "canceled":
                self._cancel(sub, self.tick())
        customer = self.objects["customers"].pop(customer_id)
        self.emit("customer.deleted", customer, self.tick())

    def pay_invoice(self, invoice_id: str) -> None:
        invoice = self.objects["invoices"][invoice_id]
        before = {k: invoice[k] for k in ("status", "amount_paid")}
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        self.emit("invoice.paid", invoice, self.tick(), previous=before)

    def void_invoice(self, invoice_id: str) -> None:
        """Void an open invoice now (only open or uncollectible invoices can be voided)."""
        invoice = self.objects["invoices"][invoice_id]
        if invoice["status"] not in ("open", "uncollectible"):
            raise ValueError(f"invoice {invoice_id} is {invoice['status']}: only open invoices can be voided")
        before = {"status": invoice["status"]}
        invoice["status"] = "void"
        self.emit("invoice.voided", invoice, self.tick(), previous=before)

    def add_activity(self, customers: int = 10, refunds: int = 5) -> None:
        """New customers with charges, and refunds of older charges, all dated now."""
        for _ in range(customers):
            self._customer(at=self.tick())
        succeeded = [c for c in self.objects["charges"].values() if c["status"] == "succeeded" and not c["refunded"]]
        for charge in self.rng.sample(succeeded, min(refunds, len(succeeded))):
            self.refund(charge["id"])

    def change_existing(self, subscriptions: int = 3) -> None:
        """Changes to objects created long ago: cancellations, seat changes, paid invoices, a renamed customer."""
        live = [s for s in self.objects["subscriptions"].values() if s["status"] == "active"]
        for sub in live[:subscriptions]:
            self.cancel_subscription(sub["id"])
        for sub in live[subscriptions : 2 * subscriptions]:
            self.change_quantity(sub["id"], sub["items"]["data"][0]["quantity"] + 3)
        for invoice in [i for i in self.objects["invoices"].values() if i["status"] == "open"][:subscriptions]:
            self.pay_invoice(invoice["id"])
        oldest = min(self.objects["customers"].values(), key=lambda c: c["created"])
        self.update_customer(oldest["id"], name=f"{oldest['name']} (renamed)")


class FakeStripe(FakeAPIServer):
    """Fake Stripe; ``api_key`` is the only secret key accepted."""

    # ``starting_after`` is the last object's id while ``has_more`` (no cursor in the body to alias).
    paging = (Paging(r"/v1/\w+", records="data", param="starting_after", last_record="id", more="has_more"),)

    def __init__(
        self,
        *,
        seed: int = 7,
        customers: int = 500,
        api_key: str = "sk_test_51FakeKpihubKey0000abcd",
        data: StripeData | None = None,
        api_version: str = "2025-03-31.basil",
    ) -> None:
        super().__init__(seed=seed)
        self.api_key = api_key
        #: The account's default API version: answers to requests without ``Stripe-Version``.
        self.api_version = api_version
        self.data = data or StripeData(seed=seed, customers=customers, api_version=api_version)

    def live_changes(self, *, delete: bool = True, seed: int = 13) -> Callable[[FakeRequest], None]:
        """A function for :meth:`between_pages`: each call makes one change, as a live account would
        while a sync pages — a refund of an old charge, a subscription canceled or re-seated, an
        invoice paid, a customer renamed, added or (``delete``) deleted — with its events."""
        rng = random.Random(seed)
        data = self.data

        def change(request: FakeRequest) -> None:
            kinds = ["refund", "cancel", "seats", "pay", "rename", "add"] + (["delete"] if delete else [])
            kind = rng.choice(kinds)
            subs = sorted(s["id"] for s in data.objects["subscriptions"].values() if s["status"] == "active")
            if kind == "refund":
                open_charges = [c for c in data.objects["charges"].values() if c["paid"] and not c["refunded"]]
                if open_charges:
                    data.refund(rng.choice(sorted(c["id"] for c in open_charges)))
            elif kind in ("cancel", "seats") and subs:
                sid = rng.choice(subs)
                if kind == "cancel":
                    data.cancel_subscription(sid)
                else:
                    data.change_quantity(sid, rng.randint(1, 9))
            elif kind == "pay":
                unpaid = sorted(i["id"] for i in data.objects["invoices"].values() if i["status"] == "open")
                if unpaid:
                    data.pay_invoice(rng.choice(unpaid))
            elif kind in ("rename", "delete"):
                cid = rng.choice(sorted(data.objects["customers"]))
                if kind == "rename":
                    data.update_customer(cid, name=f"Customer {cid} renamed")
                else:
                    data.delete_customer(cid)
            else:
                data.add_activity(customers=1, refunds=0)

        return change

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return {
                "error": {
                    "code": "rate_limit",
                    "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
                    "message": "Request rate limit exceeded. You can learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    "type": "invalid_request_error",
                }
            }
        kind = "invalid_request_error" if status < 500 else "api_error"
        return {"error": {"message": message, "type": kind}}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        header = request.header("authorization") or ""
        key = header[7:] if header.startswith("Bearer ") else ""
        if header.startswith("Basic "):
            key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        if key == self.api_key:
            return None
        masked = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
        message = f"Invalid API Key provided: {masked}" if key else "You did not provide an API key."
        return self.json(self.error_body(401, message), 401)

    def _list_request(self, request: FakeRequest) -> tuple[str, int, FakeResponse | None]:
        """A list request's API version and ``limit``, or Stripe's 400 when either is invalid."""
        version = request.header("stripe-version") or self.api_version
        if not _VERSION.fullmatch(version):
            return version, 0, self.json(self.error_body(400, f"Invalid Stripe API version: {version}"), 400)
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            message = "Invalid integer: limit must be between 1 and 100"
            return version, limit, self.json(self.error_body(400, message), 400)
        return version, limit, None

    @route("GET", r"/v1/(?P<kind>customers|charges|refunds|subscriptions|invoices)")
    def list_objects(self, request: FakeRequest) -> FakeResponse:
        kind = request.params["kind"]
        version, limit, refused = self._list_request(request)
        if refused is not None:
            return refused
        rows = list(self.data.objects[kind].values())
        if kind == "subscriptions" and request.query.get("status", "") != "all":
            rows = [r for r in rows if r["status"] != "canceled"]
        compare = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
        for op, test in compare.items():
            bound = request.query.get(f"created[{op}]")
            if bound is not None:
                rows = [r for r in rows if test(r["created"], int(bound))]
        rows.sort(key=lambda r: (r["created"], r["id"]), reverse=True)  # newest first
        after = request.query.get("starting_after")
        if after:
            ids = [r["id"] for r in rows]
            if after not in ids:
                return self.json(self.error_body(400, f"No such {kind[:-1]}: '{after}'"), 400)
            rows = rows[ids.index(after) + 1 :]
        page = [in_version(kind, r, version) for r in rows[:limit]]
        return self.json({"object": "list", "data": page, "has_more": len(rows) > limit, "url": f"/v1/{kind}"})

    @route("GET", r"/v1/events")
    def list_events(self, request: FakeRequest) -> FakeResponse:
        """``GET /v1/events`` (docs.stripe.com/api/events/list): newest first, the last 30 days,
        filtered by ``created[…]`` and ``types[]`` (up to 20 exact names) or ``type`` (``*``
        wildcards), "but not both". Events keep the version they were rendered in: the request's
        ``Stripe-Version`` is checked, not applied. (The 400 messages are the fake's own wording.)"""
        version, limit, refused = self._list_request(request)
        if refused is not None:
            return refused
        # Arrays arrive as types[]=a&types[]=b (or types[0]=a&types[1]=b, as Stripe's libraries send them).
        types = [v for k, vs in request.query_lists.items() if re.fullmatch(r"types\[\d*\]", k) for v in vs]
        pattern = request.query.get("type")
        if types and pattern:
            return self.json(self.error_body(400, "You may pass either type or types, but not both."), 400)
        if len(types) > 20:
            return self.json(self.error_body(400, "types: at most 20 event types may be given."), 400)
        rows = self.data.live_events()
        if types:
            rows = [e for e in rows if e["type"] in types]
        elif pattern:
            rows = [e for e in rows if fnmatch.fnmatchcase(e["type"], pattern)]
        compare = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
        for op, test in compare.items():
            bound = request.query.get(f"created[{op}]")
            if bound is not None:
                rows = [e for e in rows if test(e["created"], int(bound))]
        after = request.query.get("starting_after")
        if after:
            ids = [e["id"] for e in rows]
            if after not in ids:
                return self.json(self.error_body(400, f"No such event: '{after}'"), 400)
            rows = rows[ids.index(after) + 1 :]
        return self.json({"object": "list", "data": rows[:limit], "has_more": len(rows) > limit, "url": "/v1/events"})


def in_version(kind: str, obj: dict[str, Any], version: str) -> dict[str, Any]:
    """``obj`` (kept in the basil shape) as API ``version`` shows it: before basil the invoice
    names its subscription at the top level and the subscription carries the billing period."""
    if version[:10] >= BASIL:
        return obj
    if kind == "invoices":
        old = {k: v for k, v in obj.items() if k != "parent"}
        details = ((obj.get("parent") or {}).get("subscription_details")) or {}
        old["subscription"] = details.get("subscription")
        old["subscription_details"] = {"metadata": details.get("metadata") or {}}
        old["quote"] = None
        return old
    if kind == "subscriptions":
        items = obj["items"]["data"]
        periods = ("current_period_start", "current_period_end")
        old = {**obj, **{k: items[0][k] for k in periods if items}}
        stripped = [{k: v for k, v in item.items() if k not in periods} for item in items]
        old["items"] = {**obj["items"], "data": stripped}
        return old
    return obj
