"""The Shopify connector against the fake on 127.0.0.1: mapping, incremental reads, errors, paging."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from kpihub_shopify import ShopifySource, mapping
from kpihub_shopify.data import ShopifyData
from kpihub_shopify.fake import INVALID_TOKEN, FakeShopify
from kpihub_shopify.graphql import describe_errors, observe_cost, throttle_wait
from kpihub_shopify.source import ORDERS, ShopifySettings

from kpihub import Pipeline, SyncResult
from kpihub.testing import Normalizer, build_source_settings
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
UTC = dt.timezone.utc
#: A bucket big enough that a test is never throttled unless it means to be.
ROOMY = (100_000.0, 10_000.0)
#: Bulk settings for tests: polls 10 ms apart, and only reads without a cursor are backfills (the
#: fake's data is dated in 2026's first half, months before the test machine's clock).
BULK = {"bulk_poll_seconds": 0.01, "bulk_after_days": 36_500}
#: The paged path alone.
PAGED = {"bulk": False}


class Kit(SourceConformance[FakeShopify]):
    """The conformance suite's helpers (pipelines, syncs), not its tests (the name has no Test)."""

    source = ShopifySource()

    def settings(self, server: FakeShopify) -> dict:
        return {"base_url": server.url, "access_token": server.token, "page_size": 50, **BULK}


def conformance() -> Kit:
    return Kit()


def sync(c: Kit, p: Pipeline) -> SyncResult:
    return c.sync(p)


def rows(p: Pipeline, table: str, key: str = "id") -> dict:
    with p.open_destination(read_only=True) as session:
        return {r[key]: r for r in session.read_table(table).to_pylist()}


def test_settings_build_the_shops_url_and_check_the_version():
    s = build_source_settings("shopify", ShopifySettings, {"shop": "norrsken-goods", "access_token": "shpat_x"})
    assert s.base_url == "https://norrsken-goods.myshopify.com"
    s = build_source_settings("shopify", ShopifySettings, {"shop": "a.myshopify.com", "access_token": "shpat_x"})
    assert s.base_url == "https://a.myshopify.com"
    with pytest.raises(Exception, match="shop"):
        build_source_settings("shopify", ShopifySettings, {"access_token": "shpat_x"})
    with pytest.raises(Exception, match="api_version"):
        build_source_settings("shopify", ShopifySettings, {"shop": "a", "access_token": "x", "api_version": "2026-05"})


def test_fixture_page_maps_to_orders():
    page = json.loads((FIXTURES / "orders_page.json").read_text())
    nodes = [n for n in page["data"]["page"]["nodes"] if not n["test"]]
    batch = Normalizer("orders", ORDERS, primary_key=("id",), on_new_field="ignore").to_batch(nodes)
    assert batch.column("total_price").to_pylist() == [Decimal("300"), Decimal("400"), Decimal("1249.95")]
    out = {r["order_id"]: r for r in mapping.orders_to_orders(batch).to_pylist()}
    partly, pending, imported = (out[f"gid://shopify/Order/{n}"] for n in (4501, 4502, 4504))
    # Money received before refunds; the refund is a row of its own (refunds stream).
    assert (partly["gross_amount"], partly["net_amount"], partly["status"]) == (300, 300, "succeeded")
    assert partly["refunded_amount"] == 0 and partly["currency"] == "SEK" and partly["kind"] == "charge"
    # Nothing received yet: not a sale, keeps Shopify's status; a guest has no customer.
    assert (pending["gross_amount"], pending["net_amount"], pending["status"]) == (0, 0, "pending")
    assert pending["customer_id"] is None
    # An imported order is dated by processedAt; cancelled and refunded, it keeps what it was paid.
    assert imported["ordered_at"] == dt.datetime(2026, 2, 20, 11, tzinfo=UTC)
    assert (imported["gross_amount"], imported["status"]) == (Decimal("1249.95"), "succeeded")
    # The tax inside net_amount: an order paid in full carries its totalTaxSet, one with nothing received 0.
    assert (partly["tax_amount"], pending["tax_amount"], imported["tax_amount"]) == (60, 0, Decimal("249.99"))


def test_a_throttled_answer_waits_what_shopify_says():
    # community.shopify.com t/…/8456: requested 202, 118 available, restoring 50 a second.
    cost = {
        "requestedQueryCost": 202,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 118, "restoreRate": 50.0},
    }
    assert throttle_wait(cost) == pytest.approx((202 - 118) / 50)
    import httpx

    body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}], "extensions": {"cost": cost}}
    (obs,) = observe_cost(httpx.Response(200, json=body))
    assert (obs.refused, obs.wait, obs.limit, obs.seconds) == (True, pytest.approx(1.68), 1000.0, 20.0)
    ok = {"data": {}, "extensions": {"cost": {**cost, "actualQueryCost": 12}}}
    (obs,) = observe_cost(httpx.Response(200, json=ok))
    assert (obs.refused, obs.cost, obs.remaining) == (False, 12.0, 118.0)
    assert observe_cost(httpx.Response(502, text="<html>bad gateway</html>")) == []


def test_full_sync_orders_refunds_customers_and_shop(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kpihub")
    c = conformance()
    with FakeShopify(seed=3, orders=180, customers=60, bucket=ROOMY) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        sync(c, p)
        data = server.data
    live = {g: o for g, o in data.orders.items() if not o["test"]}
    tests = len(data.orders) - len(live)
    assert tests > 0
    orders = rows(p, "orders", "order_id")
    refunds = [r for o in live.values() for r in o["refunds"]]
    assert refunds, "the seeded shop has refunds"
    assert len(orders) == len(live) + len(refunds)
    for gid, order in live.items():
        row = orders[gid]
        assert row["gross_amount"] == Decimal(order["totalReceivedSet"]["shopMoney"]["amount"])
        assert row["ordered_at"] == dt.datetime.fromisoformat(order["processedAt"])
    for order in live.values():
        for refund in order["refunds"]:
            row = orders[refund["id"]]
            assert (row["kind"], row["parent_order_id"]) == ("refund", order["id"])
            assert row["net_amount"] == -Decimal(refund["totalRefundedSet"]["shopMoney"]["amount"])
            assert row["ordered_at"] == dt.datetime.fromisoformat(refund["createdAt"])
    assert "test orders (test: true) skipped" in caplog.text
    customers = rows(p, "shopify_customers")
    assert len(customers) == len(data.customers)
    some = next(iter(data.customers.values()))
    assert customers[some["id"]]["number_of_orders"] == int(some["numberOfOrders"])
    assert customers[some["id"]]["email"] == some["defaultEmailAddress"]["emailAddress"]
    (shop,) = rows(p, "shopify_shop").values()
    assert (shop["iana_timezone"], shop["currency"]) == ("Europe/Stockholm", "SEK")


def test_incremental_sync_filters_on_updated_at_with_overlap(tmp_path):
    c = conformance()
    with FakeShopify(seed=3, orders=120, customers=40, bucket=ROOMY) as server:
        p = c.pipeline(tmp_path, {**c.settings(server), "overlap_seconds": 600})
        first = {r.stream: r for r in sync(c, p).streams}
        old = server.data.paid_orders()[0]
        server.data.tick(3600)
        refund = server.data.refund(old, Decimal("10"))
        server.requests.clear()
        second = {r.stream: r for r in sync(c, p).streams}
        bodies = [r.json() for r in server.requests]
    cursor = first["orders"].cursor
    since = (cursor - dt.timedelta(seconds=600)).isoformat(timespec="seconds")
    walks = [b for b in bodies if b and "page: orders" in b["query"]]
    assert not any(b and "bulkOperationRunQuery" in b["query"] for b in bodies)  # an incremental read pages
    assert walks and all(b["variables"]["query"] == f"updated_at:>='{since}'" for b in walks)
    assert all("sortKey: UPDATED_AT" in b["query"] for b in walks)
    assert second["refunds"].records >= 1 and second["orders"].records < first["orders"].records
    assert rows(p, "orders", "order_id")[refund["id"]]["net_amount"] == Decimal("-10")


def test_a_deleted_order_stays_until_a_full_refresh(tmp_path):
    c = conformance()
    with FakeShopify(seed=3, orders=60, customers=20, bucket=ROOMY) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        sync(c, p)
        gone = server.data.paid_orders()[0]
        server.data.tick()
        server.data.delete_order(gone)
        sync(c, p)
        kept = gone in rows(p, "orders", "order_id")
        assert p.sync(full_refresh=True).ok
    assert kept  # no tombstone: an incremental sync cannot know
    assert gone not in rows(p, "orders", "order_id")


def test_a_long_walk_restarts_from_the_newest_updated_at(tmp_path):
    # Shopify stops paging at 25,000 objects: after restart_after nodes the walk starts again.
    c = conformance()
    with FakeShopify(seed=4, orders=95, customers=10, bucket=ROOMY) as server:
        p = c.pipeline(tmp_path, {**c.settings(server), "page_size": 10, "restart_after": 30, **PAGED})
        sync(c, p)
        filters = [r.json()["variables"] for r in server.requests if "page: orders" in r.json()["query"]]
        live = {g for g, o in server.data.orders.items() if not o["test"]}
    restarts = [v for v in filters if v["after"] is None and v["query"]]
    assert len(restarts) >= 2
    charges = {g for g, r in rows(p, "orders", "order_id").items() if r["kind"] == "charge"}
    assert charges == live


def test_bad_token_is_one_line_without_the_token(tmp_path):
    c = conformance()
    with FakeShopify(seed=1, orders=5, customers=2) as server:
        result = c.pipeline(tmp_path, {**c.settings(server), "access_token": "shpat_wrong1234"}).sync()
    error = result.streams[0].error or ""
    assert "HTTP 401" in error and "Invalid API key or access token" in error
    assert "shpat_wrong1234" not in error and "\n" not in error


def test_a_missing_scope_names_the_stream_and_the_scope(tmp_path):
    c = conformance()
    with FakeShopify(seed=1, orders=20, customers=8, scopes=frozenset({"read_orders"})) as server:
        result = c.pipeline(tmp_path, c.settings(server)).sync()
    by = {r.stream: r for r in result.streams}
    assert by["orders"].status == "ok" and by["refunds"].status == "ok"
    error = by["customers"].error or ""
    assert "shopify/customers" in error and "Access denied for customers field" in error
    assert "ACCESS_DENIED" in error and "read_customers" in error and "\n" not in error


def test_a_query_over_shopifys_cost_limit_is_an_error_naming_the_stream(tmp_path):
    c = conformance()
    with FakeShopify(seed=1, orders=20, customers=8) as server:
        result = c.pipeline(tmp_path, {**c.settings(server), "page_size": 250}).sync()
    error = {r.stream: r.error for r in result.streams}["orders"] or ""
    assert "shopify/orders" in error and "exceeds the single query max cost limit" in error
    assert "MAX_COST_EXCEEDED" in error


def test_errors_are_described_in_one_line():
    errors = [
        {"message": "Access denied for orders field.\n Required access: `read_orders` access scope.",
         "extensions": {"code": "ACCESS_DENIED", "requiredAccess": "`read_orders` access scope."}},
        {"message": "Something else"},
    ]  # fmt: skip
    text = describe_errors(errors)
    assert "\n" not in text
    assert text == (
        "Access denied for orders field. Required access: `read_orders` access scope. [ACCESS_DENIED] "
        "(the access token needs `read_orders` access scope.); Something else"
    )
    assert describe_errors("[API] Invalid API key") == "[API] Invalid API key"


def test_check_names_the_shop_and_its_zone(tmp_path):
    c = conformance()
    with FakeShopify(seed=1, orders=3, customers=1) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        source, settings = p.resolve_source("shopify")
        with p.requester("shopify", source, settings) as http:
            verdict = source.check(settings, http)
            (finding,) = source.diagnose(settings, http)
    assert verdict.ok and verdict.message == "connected to Shopify shop 'Norrsken Goods' (SEK, Europe/Stockholm)"
    assert finding.level == "ok" and 'timezone = "Europe/Stockholm"' in finding.message


def test_the_demo_shop_sells_for_the_demo_business_and_syncs_whole(tmp_path):
    from kpihub.testing import DEMO_BUSINESS as B

    spec = ShopifySource().demo(seed=7)
    assert spec is not None and isinstance(spec.server, FakeShopify)
    data = spec.server.data
    assert (data.shop["currencyCode"], data.shop["ianaTimezone"]) == (B.currency, B.time_zone)
    emails = {c["defaultEmailAddress"]["emailAddress"] for c in data.customers.values()}
    # CRM contacts, but not the ones Stripe's demo bills (its first 1,200).
    assert B.customer_email(1_200) in emails and B.customer_email(1_199) not in emails
    oslo = [
        dt.datetime.fromisoformat(o["createdAt"]).astimezone(dt.timezone(dt.timedelta(hours=1)))
        for o in data.orders.values()
    ]
    assert min(oslo).date() >= B.start and max(oslo).date() <= B.end
    totals = [Decimal(o["totalPriceSet"]["shopMoney"]["amount"]) for o in data.orders.values()]
    assert 39 <= min(totals) and max(totals) < 450 and len(totals) == 1_800
    for order in data.orders.values():  # prices hold Norway's 25 % VAT: a fifth of the price
        price, tax = (Decimal(order[k]["shopMoney"]["amount"]) for k in ("totalPriceSet", "totalTaxSet"))
        assert abs(tax - price / 5) <= Decimal("0.01")
    with spec.server as server:
        c = Kit()
        p = c.pipeline(tmp_path, {**spec.settings, "base_url": server.url})
        result = sync(c, p)
    assert {r.stream: r.status for r in result.streams} == dict.fromkeys(
        ("orders", "refunds", "customers", "shop"), "ok"
    )
    live = {g for g, o in data.orders.items() if not o["test"]}
    refunds = {r["id"] for o in data.orders.values() if not o["test"] for r in o["refunds"]}
    assert set(rows(p, "orders", "order_id")) == live | refunds  # the backfill lost and repeated nothing


def test_seeded_data_is_reproducible():
    a, b = ShopifyData(seed=9, orders=40, customers=10), ShopifyData(seed=9, orders=40, customers=10)
    assert a.orders == b.orders and a.customers == b.customers


# -- throttling: Shopify's leaky bucket on a simulated clock ------------------------------------


def _throttled_sync(tmp_path, clock, server, **settings):
    c = conformance()
    p = c.pipeline(tmp_path, {**c.settings(server), "page_size": 80, **PAGED, **settings}, sleep=clock.sleep)
    p.clock = clock  # the rate budget runs on the same simulated time as the fake's bucket
    return c, p


def test_a_throttled_query_waits_and_is_sent_again(tmp_path):
    from kpihub.http import SimulatedClock

    clock = SimulatedClock()
    with FakeShopify(seed=2, orders=80, customers=10, bucket=(1000.0, 50.0), clock=clock) as server:
        server.bucket._available = 100.0  # another app spent the bucket just before
        c, p = _throttled_sync(tmp_path, clock, server)
        p.project.sources["shopify"]["max_parallel_streams"] = 1
        result = sync(c, p)
        throttled = server.throttled
    assert result.ok and throttled >= 1
    # The first orders page costs 2 + 80 × 10 + 1 = 803 points; 100 were left: (803 − 100) / 50 s.
    assert pytest.approx((803 - 100) / 50, abs=0.05) in clock.slept
    live = {g for g, o in server.data.orders.items() if not o["test"]}
    assert {g for g, r in rows(p, "orders", "order_id").items() if r["kind"] == "charge"} == live


def test_the_budget_paces_streams_so_shopify_seldom_throttles(tmp_path):
    from kpihub.http import SimulatedClock

    clock = SimulatedClock()
    with FakeShopify(seed=2, orders=1500, customers=300, bucket=(1000.0, 50.0), clock=clock) as server:
        c, p = _throttled_sync(tmp_path, clock, server)
        start = clock()
        sync(c, p)
        elapsed = clock() - start
        answers = len(server.requests)
        throttled = server.throttled
        spent = server.spent
    # Every stream shares the shop's 1,000-point bucket restoring 50 a second: the sync cannot be
    # faster than the points it spent allow, and the budget waits before sending, so only the
    # first requests (before the first answer told it the bucket's size) may be refused.
    assert spent > 20_000 and elapsed >= (spent - 1000) / 50
    assert throttled <= 2, f"{throttled} of {answers} answers were THROTTLED"


# -- KPIs from a hand-made shop: Stockholm days, refunds on their own dates -----------------------


def _hand_made_shop() -> ShopifyData:
    d = ShopifyData(seed=1, orders=0, customers=0)
    at = lambda s: setattr(d, "now", dt.datetime.fromisoformat(s))  # noqa: E731 - a clock setter
    at("2026-01-15T09:00:00+00:00")
    anna, bo, cleo = (d._customer(i)["id"] for i in range(3))
    at("2026-03-02T10:00:00+00:00")
    d.new_order(customer=anna, total=Decimal("500"))
    at("2026-03-10T12:00:00+00:00")
    d.new_order(customer=bo, total=Decimal("1200"))
    at("2026-03-20T09:00:00+00:00")
    a3 = d.new_order(customer=anna, total=Decimal("300"))["id"]
    at("2026-03-25T12:00:00+00:00")
    d.new_order(guest=True, status="PENDING", total=Decimal("400"))
    at("2026-03-26T12:00:00+00:00")
    d.new_order(customer=bo, status="TEST", total=Decimal("999"))
    at("2026-03-31T22:30:00+00:00")  # 00:30 on 1 April in Stockholm (CEST)
    d.new_order(customer=cleo, total=Decimal("650"))
    at("2026-04-05T08:00:00+00:00")
    d.refund(a3, Decimal("100"))
    at("2026-04-12T10:00:00+00:00")
    a7 = d.new_order(customer=bo, total=Decimal("800"))["id"]
    at("2026-04-14T10:00:00+00:00")
    d.refund(a7, cancel=True)
    at("2026-04-20T10:00:00+00:00")
    d.new_order(customer=anna, status="VOIDED", total=Decimal("250"))
    at("2026-05-01T10:00:00+00:00")
    return d


def test_kpis_from_a_hand_made_shop(tmp_path):
    from kpihub.testing import KPIEngine

    c = conformance()
    with FakeShopify(seed=1, data=_hand_made_shop(), bucket=ROOMY) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        sync(c, p)
    registry = c.registry()
    catalog = registry.kpis
    march, april = dt.date(2026, 3, 1), dt.date(2026, 4, 1)
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone="Europe/Stockholm", catalog=catalog)

        def month(kpi: str) -> dict:
            return engine.series(catalog[kpi], grain="month", start=march, end=dt.date(2026, 5, 1)).values()

        got = {k: month(k) for k in ("sales", "orders", "aov", "paying_customers", "arpu", "refund_rate")}
        retention = month("customer_retention_m1")
    # March: anna 500 + bo 1200 + anna 300 (its 100 refund is April's); the guest's pending 400 and
    # bo's test order count for nothing; cleo's order is 1 April in Stockholm.
    # April: cleo 650 + bo 800, less the refunds of anna's 100 and bo's cancelled 800; anna's voided 250: 0.
    assert got["sales"] == {march: Decimal("2000"), april: Decimal("550")}
    assert got["orders"] == {march: 3, april: 2}
    assert got["aov"] == {march: pytest.approx(2000 / 3), april: pytest.approx((650 + 800) / 2)}
    assert got["paying_customers"] == {march: 2, april: 2}  # anna, bo; cleo, bo
    assert got["arpu"] == {march: pytest.approx(2000 / 2), april: pytest.approx(550 / 2)}
    assert got["refund_rate"][april] == pytest.approx((100 + 800) / (650 + 800))
    # Repeat purchase: of March's new buyers (anna, bo), bo bought again in April (anna's was voided).
    assert retention[march] == pytest.approx(0.5)


# -- the fake itself --------------------------------------------------------------------------


def test_the_fake_pages_prices_and_projects_like_shopify():
    import httpx

    with FakeShopify(seed=6, orders=30, customers=5, bucket=ROOMY) as server:
        http = httpx.Client(base_url=server.url, headers={"X-Shopify-Access-Token": server.token})

        def ask(query: str, **variables) -> dict:
            return http.post("/admin/api/2026-10/graphql.json", json={"query": query, "variables": variables}).json()

        q = "query($after: String) { orders(first: 7, after: $after, sortKey: UPDATED_AT) { edges { cursor node { id updatedAt totalPriceSet { shopMoney { amount } } } } pageInfo { hasNextPage endCursor } } }"  # noqa: E501
        seen, after = [], None
        while True:
            body = ask(q, after=after)
            page = body["data"]["orders"]
            seen += [e["node"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            assert after == page["edges"][-1]["cursor"]
        # Edges of 7: 2 + 7 × (edge 1 + node 1 + totalPriceSet 1 + shopMoney 1) + pageInfo 1.
        assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + 7 * 4 + 1
        assert body["extensions"]["cost"]["actualQueryCost"] <= body["extensions"]["cost"]["requestedQueryCost"]
        assert set(seen[0]) == {"id", "updatedAt", "totalPriceSet"} and set(seen[0]["totalPriceSet"]) == {"shopMoney"}
        stamps = [(n["updatedAt"], int(n["id"].rsplit("/", 1)[-1])) for n in seen]
        assert stamps == sorted(stamps) and len(seen) == len(server.data.orders)
        newest = ask("{ orders(first: 3, sortKey: UPDATED_AT, reverse: true) { nodes { updatedAt } } }")
        assert [n["updatedAt"] for n in newest["data"]["orders"]["nodes"]] == sorted(s for s, _ in stamps)[::-1][:3]
        since = stamps[20][0]
        recent = ask(f"{{ orders(first: 50, query: \"updated_at:>='{since}'\") {{ nodes {{ id }} }} }}")
        assert len(recent["data"]["orders"]["nodes"]) == sum(s >= since for s, _ in stamps)
        server.scopes.discard("read_orders")
        denied = ask("{ orders(first: 1) { nodes { id } } }")
        server.bucket.restore, server.bucket._available = 0.0, 0.0  # spent, and not refilling
        throttled = ask("{ shop { name } }")
        bad = http.post(
            "/admin/api/2026-10/graphql.json",
            json={"query": "{ shop { name } }"},
            headers={"X-Shopify-Access-Token": "x"},
        )
        http.close()
    (error,) = denied["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED" and denied["data"] == {"orders": None}
    assert error["message"] == "Access denied for orders field. Required access: `read_orders` access scope."
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert throttled["extensions"]["cost"]["actualQueryCost"] is None
    assert bad.status_code == 401 and bad.json() == {"errors": INVALID_TOKEN}
