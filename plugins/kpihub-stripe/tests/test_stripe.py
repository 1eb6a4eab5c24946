"""The Stripe connector against a fake Stripe on 127.0.0.1 speaking the v1 list API."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow as pa
from kpihub_stripe import StripeSource, mapping
from kpihub_stripe.currencies import exponent, to_major
from kpihub_stripe.fake import FakeStripe
from kpihub_stripe.source import CHARGES, StripeSettings, SubscriptionsStream

from kpihub.testing import Normalizer
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
UTC = dt.timezone.utc


class TestStripeConformance(SourceConformance):
    source = StripeSource()

    def make_server(self) -> FakeStripe:
        return FakeStripe(seed=5, customers=250)

    def settings(self, server) -> dict:
        return {"base_url": server.url, "api_key": server.api_key, "requests_per_second": None}

    def fault_settings(self, server) -> dict:
        return {**self.settings(server), "page_size": 20}

    def change_data(self, server) -> None:
        server.data.add_activity(customers=12, refunds=6)  # new objects, and refunds of old charges
        server.data.change_existing(subscriptions=3)  # cancellations, seat changes, paid invoices, a renamed customer

    def live_changes(self, server):
        # Between pages: one refund, cancellation, seat change, payment, rename, new or deleted customer.
        return server.live_changes()


def conformance() -> TestStripeConformance:
    return TestStripeConformance()


def test_currency_exponents_follow_stripes_list():
    assert [exponent(c) for c in ("usd", "EUR", "jpy", "krw", "kwd", "bhd", "isk")] == [2, 2, 0, 0, 3, 3, 2]
    amounts = to_major(pa.array([1999, 500, 5124, None]), pa.array(["usd", "jpy", "kwd", "usd"]))
    assert amounts.to_pylist() == [Decimal("19.99"), Decimal("500"), Decimal("5.124"), None]


def test_fixture_charges_map_to_orders():
    page = json.loads((FIXTURES / "charges_page.json").read_text())
    batch = Normalizer("charges", CHARGES, primary_key=("id",), on_new_field="ignore").to_batch(page["data"])
    assert batch.column("created")[0].as_py() == dt.datetime(2024, 6, 1, 10, tzinfo=UTC)
    orders = mapping.charges_to_orders(batch).to_pylist()
    kwd, jpy, failed = orders
    assert (kwd["gross_amount"], kwd["net_amount"], kwd["currency"]) == (Decimal("5.124"), Decimal("5.124"), "KWD")
    # The JPY charge was refunded: the refund is its own row on its own date; the charge keeps its revenue.
    assert (jpy["gross_amount"], jpy["net_amount"], jpy["refunded_amount"]) == (Decimal(500), Decimal(500), 0)
    assert (failed["gross_amount"], failed["net_amount"], failed["status"]) == (0, 0, "failed")


def test_refunds_are_negative_rows_on_their_own_date():
    ts = pa.array([dt.datetime(2024, 7, 3, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC"))
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ["re_1", "re_2"],
            "amount": [250, 300],
            "charge": ["ch_1", "ch_2"],
            "currency": ["eur", "jpy"],
            "created": ts,
            "status": ["succeeded", "pending"],
            "reason": [None, None],
            "payment_intent": [None, None],
        }
    )
    rows = mapping.refunds_to_orders(batch).to_pylist()
    assert [(r["kind"], r["parent_order_id"], r["net_amount"]) for r in rows] == [
        ("refund", "ch_1", Decimal("-2.50")),
        ("refund", "ch_2", Decimal(0)),
    ]
    assert rows[0]["ordered_at"] == dt.datetime(2024, 7, 3, tzinfo=UTC)


def test_subscription_mrr_normalizes_intervals_and_quantities():
    def sub(unit: int, interval: str, quantity: int, currency: str = "eur") -> dict:
        return {
            "id": "sub_1",
            "currency": currency,
            "items": {
                "data": [
                    {
                        "quantity": quantity,
                        "price": {"unit_amount": unit, "recurring": {"interval": interval, "interval_count": 1}},
                    }
                ]
            },
        }

    stream = SubscriptionsStream("subscriptions", pa.schema([]))
    mrr = [
        r["mrr"] for r in stream.prepare([sub(2900, "month", 2), sub(29000, "year", 1), sub(3500, "month", 1, "jpy")])
    ]
    assert [Decimal(m) for m in mrr] == [Decimal("58"), Decimal("24.166666667"), Decimal("3500")]


def test_full_sync_orders_and_incremental_refunds(tmp_path):
    c = conformance()
    with FakeStripe(seed=9, customers=200) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        charges = server.data.objects["charges"]
        refunds = server.data.objects["refunds"]
        server.data.add_activity(customers=5, refunds=4)
        server.requests.clear()
        second = {r.stream: r for r in c.sync(p).streams}
        gte = [r.query.get("created[gte]") for r in server.requests if r.path == "/v1/refunds"]
        sub_params = [r.query for r in server.requests if r.path == "/v1/subscriptions"]
    assert gte and all(v is not None for v in gte)
    assert sub_params[0]["status"] == "all"
    assert second["refunds"].records >= 4
    with p.open_destination(read_only=True) as session:
        orders = {r["order_id"]: r for r in session.read_table("orders").to_pylist()}
    assert len(orders) == len(charges) + len(refunds)
    for rid, refund in refunds.items():
        row = orders[rid]
        assert row["kind"] == "refund" and row["parent_order_id"] == refund["charge"]
        scale = Decimal(10) ** exponent(refund["currency"])
        assert row["net_amount"] == -Decimal(refund["amount"]) / scale
        assert row["ordered_at"] == dt.datetime.fromtimestamp(refund["created"], UTC)
    for cid, charge in charges.items():
        scale = Decimal(10) ** exponent(charge["currency"])
        assert orders[cid]["gross_amount"] == Decimal(charge["amount_captured"]) / scale


def test_bad_key_gets_stripes_masked_message(tmp_path):
    c = conformance()
    with FakeStripe(customers=10) as server:
        result = c.pipeline(tmp_path, {**c.settings(server), "api_key": "sk_test_wrongwrongwrong9876"}).sync()
    error = result.streams[0].error
    assert "HTTP 401: Invalid API Key provided: sk_test_****9876" in error
    assert "sk_test_wrongwrongwrong9876" not in error


def test_rate_limit_body_is_retried(tmp_path):
    c = conformance()
    with FakeStripe(customers=30) as server:
        fault = server.fail(status=429, path="/v1/charges", times=2)
        slept: list[float] = []
        assert c.pipeline(tmp_path, c.settings(server), sleep=slept.append).sync().ok
        body = server.error_body(429, "")
    assert fault.hits == 2 and len(slept) == 2
    assert body["error"]["code"] == "rate_limit" and body["error"]["type"] == "invalid_request_error"


def test_invoices_read_the_basil_parent_subscription(tmp_path):
    c = conformance()
    with FakeStripe(seed=3, customers=80) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        invoices = server.data.objects["invoices"]
    with p.open_destination(read_only=True) as session:
        rows = {r["id"]: r for r in session.read_table("stripe_invoices").to_pylist()}
    assert len(rows) == len(invoices) > 0
    for iid, inv in invoices.items():
        assert rows[iid]["subscription"] == inv["parent"]["subscription_details"]["subscription"]
        assert rows[iid]["amount_paid"] == inv["amount_paid"]


def _invoice_subscriptions(tmp_path, server, **overrides) -> dict:
    c = conformance()
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides})
    assert c.sync(p).ok
    with p.open_destination(read_only=True) as session:
        return {r["id"]: r["subscription"] for r in session.read_table("stripe_invoices").to_pylist()}


def test_an_account_on_a_pre_basil_version_keeps_invoice_subscriptions(tmp_path):
    # The account's default version predates basil; the connector pins its own version on every request.
    with FakeStripe(seed=3, customers=80, api_version="2024-06-20") as server:
        rows = _invoice_subscriptions(tmp_path, server)
        versions = {r.header("stripe-version") for r in server.requests}
        invoices = server.data.objects["invoices"]
    assert versions == {StripeSettings.model_fields["stripe_version"].default}
    assert rows == {iid: inv["parent"]["subscription_details"]["subscription"] for iid, inv in invoices.items()}


def test_invoices_pinned_to_a_pre_basil_version_read_the_top_level_subscription(tmp_path):
    with FakeStripe(seed=3, customers=80) as server:
        rows = _invoice_subscriptions(tmp_path, server, stripe_version="2024-06-20")
        versions = {r.header("stripe-version") for r in server.requests}
        invoices = server.data.objects["invoices"]
    assert versions == {"2024-06-20"}
    assert len(rows) == len(invoices) > 0
    assert rows == {iid: inv["parent"]["subscription_details"]["subscription"] for iid, inv in invoices.items()}


def test_the_fake_answers_in_the_requested_version():
    from kpihub_stripe.fake import in_version

    with FakeStripe(seed=3, customers=40, api_version="2024-06-20") as server:
        sub = next(iter(server.data.objects["subscriptions"].values()))
        old = in_version("subscriptions", sub, "2024-06-20")
        inv = next(iter(server.data.objects["invoices"].values()))
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"})
        default = http.get("/v1/invoices", params={"limit": 1}).json()["data"][0]
        basil = http.get("/v1/invoices", params={"limit": 1}, headers={"Stripe-Version": "2025-03-31.basil"}).json()
        bad = http.get("/v1/invoices", headers={"Stripe-Version": "2025-3-31"})
        http.close()
    assert "parent" not in default and default["subscription"].startswith("sub_")
    assert basil["data"][0]["parent"]["subscription_details"]["subscription"].startswith("sub_")
    assert "subscription" not in basil["data"][0]
    assert old["current_period_end"] == sub["items"]["data"][0]["current_period_end"]
    assert "current_period_end" not in old["items"]["data"][0]
    assert in_version("invoices", inv, "2025-09-30.clover") is inv
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Invalid Stripe API version: 2025-3-31"


# -- objects changed after they were created (issue 13): Stripe's events ------------------------


def _two_syncs(tmp_path, server, change, **overrides):
    """Sync, ``change(server.data)``, sync again; the second sync's results and the requests it made."""
    c = conformance()
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides})
    first = {r.stream: r for r in c.sync(p).streams}
    change(server.data)
    server.requests.clear()
    second = {r.stream: r for r in c.sync(p).streams}
    return p, first, second, list(server.requests)


def _rows(p, table: str, key: str = "id") -> dict:
    with p.open_destination(read_only=True) as session:
        return {r[key]: r for r in session.read_table(table).to_pylist()}


def _old_charge(data, *, refunded: bool = False) -> dict:
    """The oldest succeeded charge: created long before any cursor."""
    charges = [c for c in data.objects["charges"].values() if c["status"] == "succeeded" and c["refunded"] == refunded]
    return min(charges, key=lambda c: c["created"])


def test_a_charge_refunded_between_syncs_arrives(tmp_path):
    with FakeStripe(seed=5, customers=250) as server:
        charge = _old_charge(server.data)
        p, _, second, requests = _two_syncs(tmp_path, server, lambda d: d.refund(charge["id"]))
    rows = _rows(p, "stripe_charges")
    assert (rows[charge["id"]]["amount_refunded"], rows[charge["id"]]["refunded"]) == (charge["amount"], True)
    events = [r for r in requests if r.path == "/v1/events" and r.query_lists.get("types[]")]
    assert any("charge.refunded" in r.query_lists["types[]"] for r in events)
    # The change came from the events, not from reading every charge again.
    assert second["charges"].records < 10


def test_a_subscription_canceled_between_syncs_arrives_without_a_full_read(tmp_path):
    with FakeStripe(seed=5, customers=250) as server:
        subs = server.data.objects["subscriptions"]
        sub = min((s for s in subs.values() if s["status"] == "active"), key=lambda s: s["created"])
        p, first, second, requests = _two_syncs(tmp_path, server, lambda d: d.cancel_subscription(sub["id"]))
        canceled_at = dt.datetime.fromtimestamp(subs[sub["id"]]["canceled_at"], UTC)
    row = _rows(p, "subscriptions", key="subscription_id")[sub["id"]]
    assert (row["status"], row["canceled_at"], row["ended_at"]) == ("canceled", canceled_at, canceled_at)
    # Not a full read: the new subscriptions and the changed ones (seeded cancellations dated after
    # the cursor arrive as events too).
    assert second["subscriptions"].records < first["subscriptions"].records / 4
    listed = [r for r in requests if r.path == "/v1/subscriptions"]
    assert listed and all(r.query.get("created[gte]") for r in listed)


def test_a_cursor_older_than_the_event_retention_rereads_the_stream(tmp_path):
    # The charge is refunded, then 31 days pass: the charge.refunded event is gone from /v1/events,
    # so only a full read of the charges can bring the refund, and the summary says why it read so much.
    def change(data):
        data.refund(charge["id"])
        data.advance(days=31)

    with FakeStripe(seed=5, customers=250) as server:
        charge = _old_charge(server.data)
        total = len(server.data.objects["charges"])
        p, _, second, requests = _two_syncs(tmp_path, server, change)
    rows = _rows(p, "stripe_charges")
    assert (rows[charge["id"]]["amount_refunded"], rows[charge["id"]]["refunded"]) == (charge["amount"], True)
    assert second["charges"].records == total
    assert any("30-day" in note and "read in full" in note for note in second["charges"].notes)
    charge_lists = [r for r in requests if r.path == "/v1/charges"]
    assert charge_lists and not any("created[gte]" in r.query for r in charge_lists)


def test_a_deleted_customer_is_kept_and_marked_deleted(tmp_path):
    with FakeStripe(seed=5, customers=250) as server:
        victim = next(s["customer"] for s in server.data.objects["subscriptions"].values() if s["status"] == "active")
        p, _, second, _ = _two_syncs(tmp_path, server, lambda d: d.delete_customer(victim))
    customers = _rows(p, "stripe_customers")
    assert customers[victim]["deleted"] is True
    assert sum(bool(c["deleted"]) for c in customers.values()) == 1
    assert any("deleted" in note for note in second["customers"].notes)
    # Deleting a customer cancels its subscriptions: that arrives too.
    subs = [r for r in _rows(p, "stripe_subscriptions").values() if r["customer"] == victim]
    assert subs and all(s["status"] == "canceled" for s in subs)


def test_invoices_paid_or_voided_between_syncs_arrive_in_either_version(tmp_path):
    # The account moved to a pre-basil version before these invoices changed: their events' invoices
    # name the subscription at the top level, whatever Stripe-Version the connector sends.
    with FakeStripe(seed=5, customers=250) as server:
        invoices = server.data.objects["invoices"]
        paid, voided = sorted((i for i in invoices.values() if i["status"] == "open"), key=lambda i: i["created"])[:2]

        def change(data):
            data.api_version = "2024-06-20"
            data.pay_invoice(paid["id"])
            data.void_invoice(voided["id"])

        p, _, _, _ = _two_syncs(tmp_path, server, change)
        event = server.data.live_events()[0]
    assert "parent" not in event["data"]["object"] and event["api_version"] == "2024-06-20"
    rows = _rows(p, "stripe_invoices")
    assert (rows[paid["id"]]["status"], rows[paid["id"]]["amount_paid"]) == ("paid", paid["amount_due"])
    assert rows[voided["id"]]["status"] == "void"
    for inv in (paid, voided):
        assert rows[inv["id"]]["subscription"] == inv["parent"]["subscription_details"]["subscription"]


def test_the_fake_lists_events_as_stripe_does():
    with FakeStripe(seed=5, customers=250) as server:
        data = server.data
        charge = _old_charge(data)
        data.refund(charge["id"])
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"})

        def get(**params):
            return http.get("/v1/events", params=params)

        newest = get(limit=3).json()
        assert [e["created"] for e in newest["data"]] == sorted((e["created"] for e in newest["data"]), reverse=True)
        assert newest["has_more"] and newest["url"] == "/v1/events" and newest["object"] == "list"
        top = newest["data"][0]
        assert top["type"] == "charge.refunded" and top["data"]["object"]["id"] == charge["id"]
        assert top["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}
        typed = get(**{"types[]": ["refund.created"], "limit": 100}).json()["data"]
        assert typed and {e["type"] for e in typed} == {"refund.created"}
        indexed = get(**{"types[0]": "refund.created", "limit": 100}).json()["data"]
        assert indexed == typed
        assert {e["type"] for e in get(type="customer.subscription.*", limit=100).json()["data"]} <= {
            "customer.subscription.created",
            "customer.subscription.deleted",
        }
        # Paging: starting_after the last id of a page continues with older events, none twice.
        seen, after = [], None
        while True:
            body = get(limit=7, **({"starting_after": after} if after else {})).json()
            seen += [e["id"] for e in body["data"]]
            if not body["has_more"]:
                break
            after = body["data"][-1]["id"]
        assert len(seen) == len(set(seen)) == len(data.live_events())
        since = top["created"]
        assert {e["id"] for e in get(**{"created[gte]": since}).json()["data"]} >= {top["id"]}
        assert not get(**{"created[gt]": since}).json()["data"]
        both = get(type="charge.*", **{"types[]": ["charge.refunded"]})
        # 30 days later the refund's events are gone.
        data.advance(days=30.01)
        gone = get(**{"created[gte]": since}).json()["data"]
        http.close()
    assert both.status_code == 400
    assert not gone
