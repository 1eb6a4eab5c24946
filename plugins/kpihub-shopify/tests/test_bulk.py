"""Backfills as bulk operations against the fake on 127.0.0.1: the same rows as paging, no gap after
them, every failure loud, the file streamed; and the tax of orders, both ways."""

from __future__ import annotations

import datetime as dt
import logging
import tracemalloc
from decimal import Decimal

import orjson
import pytest
from kpihub_shopify import ShopifySource
from kpihub_shopify.data import ShopifyData, bag
from kpihub_shopify.fake import FakeShopify
from kpihub_shopify.jsonl import assemble, download_requester, lines

from kpihub import MalformedResponseError, Pipeline
from kpihub.http import Requester
from kpihub.testing.conformance import SourceConformance

ROOMY = (100_000.0, 10_000.0)
#: Polls 10 ms apart; only reads without a cursor are backfills (the fake's data is dated in 2026's
#: first half, months before the test machine's clock, so any cursor would look old).
BULK = {"bulk_poll_seconds": 0.01, "bulk_after_days": 36_500}
PAGED = {"bulk": False}
STREAMS = ("orders", "refunds", "customers")


class Kit(SourceConformance[FakeShopify]):
    source = ShopifySource()

    def settings(self, server: FakeShopify) -> dict:
        return {"base_url": server.url, "access_token": server.token, "page_size": 50, **BULK}


KIT = Kit()


def pipeline(tmp_path, server: FakeShopify, **settings) -> Pipeline:
    return KIT.pipeline(tmp_path, {**KIT.settings(server), **settings})


def table(p: Pipeline, name: str, key: str) -> dict:
    with p.open_destination(read_only=True) as session:
        rows = session.read_table(name).to_pylist()
    return {r[key]: {k: v for k, v in r.items() if k != "_loaded_at"} for r in rows}


def sent(server: FakeShopify, text: str) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and text in (r.json() or {}).get("query", ""))


def no_deletions(data: ShopifyData, budget: int):
    """``budget`` changes at the next bulk requests, in turn: a refund of the oldest paid order (one
    a scan passes early), a new order, an edited customer."""
    done = [0]

    def change() -> None:
        if done[0] >= budget:
            return
        kind = ("refund", "new", "customer")[done[0] % 3]
        done[0] += 1
        data.tick()
        if kind == "refund":
            data.refund(data.paid_orders()[0])
        elif kind == "new":
            data.new_order()
        else:
            data.edit_customer(sorted(data.customers)[done[0] % len(data.customers)])

    return change


def assert_tables_are_the_shop(p: Pipeline, data: ShopifyData) -> None:
    """Every live order, refund and customer as the fake has it now; nothing else, nothing twice."""
    live = {g: o for g, o in data.orders.items() if not o["test"]}
    orders = table(p, "orders", "order_id")
    refunds = {r["id"]: (g, r) for g, o in live.items() for r in o["refunds"]}
    assert set(orders) == set(live) | set(refunds)
    for gid, order in live.items():
        row = orders[gid]
        assert row["gross_amount"] == Decimal(order["totalReceivedSet"]["shopMoney"]["amount"]), gid
    raw = table(p, "shopify_orders", "id")
    assert {g: r["updated_at"] for g, r in raw.items()} == {
        g: dt.datetime.fromisoformat(o["updatedAt"]) for g, o in live.items()
    }
    for rid, (gid, refund) in refunds.items():
        assert orders[rid]["parent_order_id"] == gid
        assert orders[rid]["net_amount"] == -Decimal(refund["totalRefundedSet"]["shopMoney"]["amount"])
    customers = table(p, "shopify_customers", "id")
    assert {g: c["email"] for g, c in customers.items()} == {
        g: c["defaultEmailAddress"]["emailAddress"] for g, c in data.customers.items()
    }


# -- the same rows either way ------------------------------------------------------------------


def test_bulk_and_paging_give_the_same_rows(tmp_path):
    with FakeShopify(seed=8, orders=240, customers=70, bucket=ROOMY) as server:
        bulk = pipeline(tmp_path / "bulk", server)
        assert KIT.sync(bulk).ok
        mutations = sent(server, "bulkOperationRunQuery")
        downloads = [r for r in server.requests if r.path.startswith("/bulk-results/")]
        server.requests.clear()
        paged = pipeline(tmp_path / "paged", server, **PAGED)
        assert KIT.sync(paged).ok
        assert sent(server, "bulkOperationRunQuery") == 0
    assert mutations == len(STREAMS)
    # The file is fetched without the shop's token: it lives on another host.
    assert downloads and all("x-shopify-access-token" not in r.headers for r in downloads)
    for name, key in (("orders", "order_id"), ("shopify_orders", "id"), ("shopify_refunds", "id")):
        assert table(bulk, name, key) == table(paged, name, key), name
    assert table(bulk, "shopify_customers", "id") == table(paged, "shopify_customers", "id")
    assert any(r["tax_amount"] for r in table(bulk, "orders", "order_id").values())


def test_the_file_is_read_in_ranges_of_its_size(tmp_path, monkeypatch):
    import kpihub_shopify.jsonl as jsonl

    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 4096)  # a file of many ranges, and lines cut between them
    with FakeShopify(seed=8, orders=150, customers=10, bucket=ROOMY) as server:
        p = pipeline(tmp_path, server)
        assert KIT.sync(p).ok
        ranges = [r.header("range") for r in server.requests if r.path.startswith("/bulk-results/")]
        data = server.data
    assert len(ranges) > 3 * len(STREAMS) and all(r.startswith("bytes=") for r in ranges)
    assert_tables_are_the_shop(p, data)


def test_an_older_api_version_polls_the_node_and_runs_one_operation_at_a_time(tmp_path):
    # Before 2026-01: bulkOperation(id:) does not exist, and a second operation waits for the first.
    with FakeShopify(seed=8, orders=120, customers=20, bucket=ROOMY) as server:
        p = pipeline(tmp_path, server, api_version="2025-10", max_parallel_streams=3)
        result = KIT.sync(p)
        refused = sent(server, "bulkOperationRunQuery") - len(STREAMS)
        polls = sent(server, "node(id: $id)")
        data = server.data
    assert result.ok and polls > 0 and sent(server, "bulkOperation(id:") == 0
    assert refused > 0, "three streams at once: some waited for the one bulk query slot"
    assert_tables_are_the_shop(p, data)


# -- no gap after a backfill ----------------------------------------------------------------------


def test_a_backfill_then_an_incremental_sync_loses_and_duplicates_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kpihub")
    with FakeShopify(seed=9, orders=200, customers=60, bucket=ROOMY) as server:
        server.bulk_polls = 6
        # The shop changes while the orders stream's operation scans (streams run one at a time).
        server.on_bulk_request = no_deletions(server.data, budget=8)
        p = pipeline(tmp_path, server, max_parallel_streams=1)
        first = KIT.sync(p)
        server.on_bulk_request = None
        # The file is a snapshot: orders changed after the scan passed them are in it as they were,
        # and the paged read after the operation brings their new state in the same sync.
        orders_op = min(server.operations.values(), key=lambda op: op.number)
        in_file = {n["id"]: n["updatedAt"] for n in map(orjson.loads, orders_op.lines)}
        stale = [g for g, at in in_file.items() if at < server.data.orders[g]["updatedAt"]]
        assert stale, "the run changed orders the scan had passed"
        assert_tables_are_the_shop(p, server.data)
        server.data.tick(600)
        server.data.change_data()
        server.requests.clear()
        second = KIT.sync(p)
        assert sent(server, "bulkOperationRunQuery") == 0  # an incremental sync pages
        assert_tables_are_the_shop(p, server.data)
    by = {r.stream: r for r in first.streams}
    assert "backfilled by bulk operation gid://shopify/BulkOperation/" in caplog.text
    assert by["orders"].cursor is not None
    assert 0 < {r.stream: r for r in second.streams}["orders"].records < by["orders"].records


# -- failures: loud, not ok, naming stream and errorCode -----------------------------------------


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ({"status": "FAILED", "errorCode": "INTERNAL_SERVER_ERROR", "partial": True}, ["partialDataUrl is not read"]),
        ({"status": "FAILED", "errorCode": "TIMEOUT"}, ["timed out on Shopify's side"]),
        ({"status": "CANCELED"}, ["someone canceled it"]),
        ({"status": "EXPIRED"}, ["URL expired"]),
    ],
)
def test_an_operation_that_does_not_complete_fails_the_stream(tmp_path, outcome, words):
    with FakeShopify(seed=1, orders=40, customers=10, bucket=ROOMY) as server:
        server.bulk_outcome = outcome
        result = pipeline(tmp_path, server, max_parallel_streams=1).sync()
    (failed,) = [r for r in result.streams if r.status != "ok"]
    error = failed.error or ""
    assert failed.status == "failed" and failed.cursor is None and "\n" not in error
    assert f"shopify/{failed.stream}: bulk operation gid://shopify/BulkOperation/" in error
    assert f"ended {outcome['status']} (errorCode {outcome.get('errorCode', 'none')})" in error
    assert all(w in error for w in words), error


def test_access_denied_names_the_scope_the_normal_query_asks_for(tmp_path):
    with FakeShopify(seed=1, orders=20, customers=8, scopes=frozenset({"read_orders"})) as server:
        result = pipeline(tmp_path, server).sync()
    by = {r.stream: r for r in result.streams}
    assert by["orders"].status == "ok" and by["refunds"].status == "ok"
    error = by["customers"].error or ""
    assert "shopify/customers" in error and "errorCode ACCESS_DENIED" in error
    assert "Access denied for customers field" in error and "read_customers" in error


def test_a_file_missing_lines_is_not_a_complete_backfill(tmp_path):
    with FakeShopify(seed=1, orders=40, customers=10, bucket=ROOMY) as server:
        server.bulk_lose_lines = 2
        result = pipeline(tmp_path, server, max_parallel_streams=1).sync()
    (failed,) = [r for r in result.streams if r.status != "ok"]
    assert failed.cursor is None
    assert "rootObjectCount" in (failed.error or "") and "not a complete backfill" in (failed.error or "")


@pytest.mark.parametrize("status", [403, 404])
def test_an_expired_or_wrong_file_url_fails_the_stream_without_printing_it(tmp_path, status):
    with FakeShopify(seed=1, orders=30, customers=10, bucket=ROOMY) as server:
        server.bulk_file_status = status
        result = pipeline(tmp_path, server).sync()
        signature = server._signature
    for r in result.streams[:3]:
        error = r.error or ""
        assert r.status == "failed" and f"shopify/{r.stream}" in error and f"HTTP {status}" in error
        assert "expires seven days" in error and signature not in error and server.token not in error


def test_an_operation_that_runs_too_long_is_canceled(tmp_path):
    with FakeShopify(seed=1, orders=30, customers=10, bucket=ROOMY) as server:
        server.bulk_polls = 10**6
        result = pipeline(tmp_path, server, bulk_timeout_seconds=0.05, max_parallel_streams=1).sync()
        statuses = {op.status for op in server.operations.values()}
    errors = [r.error or "" for r in result.streams if r.stream in STREAMS]
    assert all("still RUNNING" in e and "canceled it" in e and "bulk_timeout_seconds" in e for e in errors)
    assert statuses <= {"CANCELING", "CANCELED"}


def test_another_clients_operation_is_waited_for(tmp_path):
    with FakeShopify(seed=1, orders=30, customers=10, bucket=ROOMY) as server:
        server.bulk_busy = 4
        assert pipeline(tmp_path / "waits", server).sync().ok
        server.bulk_busy = 10**6
        result = pipeline(tmp_path / "gives-up", server, bulk_timeout_seconds=0.05).sync()
    error = next(r.error for r in result.streams if r.stream == "orders") or ""
    assert "shopify/orders: no free bulk operation slot" in error and "already in progress" in error


# -- the file: streamed, children put back -------------------------------------------------------


def test_a_large_file_is_read_with_flat_memory():
    line = b'{"id":"gid://shopify/Order/%d","name":"' + b"x" * 380 + b'"}'
    body = b"".join(line % i + b"\n" for i in range(100_000))  # 40 MB
    with FakeShopify(seed=1, orders=1, customers=1) as server:
        server._bulk_files[1] = body
        url = f"{server.url}/bulk-results/1.jsonl?X-Goog-Signature={server._signature}"
        like = Requester(source_id="shopify", base_url=server.url)
        with download_requester(url, source_id="shopify", like=like, timeout=10, max_attempts=2) as http:
            tracemalloc.start()
            try:
                count = sum(
                    1
                    for _ in assemble(lines(http, url, stream="orders", size=len(body), chunk_bytes=1 << 20), where="w")
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        like.close()
    assert count == 100_000
    assert peak < 8 * (1 << 20), f"peak {peak / 1e6:.1f} MB for a {len(body) / 1e6:.0f} MB file"


def test_lines_cut_by_ranges_come_out_whole():
    want = [b'{"id":"gid://shopify/Order/%d","pad":"%s"}' % (i, b"y" * (i * 7 % 90)) for i in range(60)]
    body = b"\n".join(want)  # no newline after the last line
    with FakeShopify(seed=1, orders=1, customers=1) as server:
        server._bulk_files[1] = body
        url = f"{server.url}/bulk-results/1.jsonl?X-Goog-Signature={server._signature}"
        with Requester(source_id="shopify", base_url=server.url) as like:
            with download_requester(url, source_id="shopify", like=like, timeout=10, max_attempts=2) as http:
                got = list(lines(http, url, stream="orders", size=len(body), chunk_bytes=37))
                unsized = list(lines(http, url, stream="orders", size=None, chunk_bytes=64))
    assert got == want and unsized == want  # lines longer than a range, and cut anywhere


def test_children_are_put_back_under_their_parent():
    raw = [
        b'{"id":"gid://shopify/Order/1","name":"#1"}',
        b'{"id":"gid://shopify/LineItem/11","qty":1,"__parentId":"gid://shopify/Order/1"}',
        b'{"id":"gid://shopify/TaxLine/111","rate":0.25,"__parentId":"gid://shopify/LineItem/11"}',
        b'{"id":"gid://shopify/LineItem/12","qty":2,"__parentId":"gid://shopify/Order/1"}',
        b'{"id":"gid://shopify/Order/2","name":"#2"}',
    ]
    children = {"LineItem": "lineItems", "TaxLine": "taxLines"}
    one, two = assemble(raw, where="shopify/orders", children=children)
    assert [i["qty"] for i in one["lineItems"]] == [1, 2] and one["lineItems"][0]["taxLines"][0]["rate"] == 0.25
    assert two == {"id": "gid://shopify/Order/2", "name": "#2"}
    ungrouped = [*raw, b'{"id":"gid://shopify/LineItem/13","__parentId":"gid://shopify/Order/1"}']
    with pytest.raises(MalformedResponseError, match="line 6 of the bulk file is a child of gid://shopify/Order/1"):
        list(assemble(ungrouped, where="shopify/orders", children=children))
    with pytest.raises(MalformedResponseError, match="line 2 .* no connection for"):
        list(assemble(raw, where="shopify/orders"))
    with pytest.raises(MalformedResponseError, match="shopify/orders: line 1 of the bulk file is not JSON"):
        list(assemble([b'{"id":'], where="shopify/orders"))


# -- tax: orders.tax_amount, tax_collected and roas_net from a shop ---------------------------------


def _taxed_shop() -> ShopifyData:
    """March 2026 in Stockholm, prices with 25 % VAT in them (a fifth of each price is tax)."""
    d = ShopifyData(seed=1, orders=0, customers=0)
    at = lambda s: setattr(d, "now", dt.datetime.fromisoformat(s))  # noqa: E731 - a clock setter
    at("2026-02-01T09:00:00+00:00")
    anna, bo = (d._customer(i)["id"] for i in range(2))
    at("2026-03-02T10:00:00+00:00")
    d.new_order(customer=anna, total=Decimal("500"))  # tax 100
    at("2026-03-05T10:00:00+00:00")
    big = d.new_order(customer=bo, total=Decimal("1250"))["id"]  # tax 250
    at("2026-03-09T10:00:00+00:00")
    d.new_order(customer=anna, status="PENDING", total=Decimal("400"))  # nothing received: tax 0
    at("2026-03-12T10:00:00+00:00")
    part = d.new_order(customer=bo, status="PENDING", total=Decimal("1000"))
    part["totalReceivedSet"], part["displayFinancialStatus"] = bag(Decimal("600"), "SEK"), "PARTIALLY_PAID"
    at("2026-03-15T10:00:00+00:00")
    d.new_order(customer=anna, status="TEST", total=Decimal("999"))
    at("2026-03-20T10:00:00+00:00")
    d.refund(big, Decimal("250"))  # a refund reports no tax of its own
    at("2026-04-02T10:00:00+00:00")
    return d


@pytest.mark.parametrize("how", ["bulk", "paged"])
def test_tax_collected_and_roas_net_from_a_shop(tmp_path, how):
    from kpihub import Project, TableWrite
    from kpihub.testing import KPIEngine, ProjectSettings, canonical_rows

    with FakeShopify(seed=1, data=_taxed_shop(), bucket=ROOMY) as server:
        p = pipeline(tmp_path, server, **(PAGED if how == "paged" else {}))
        assert KIT.sync(p).ok
    spend = {"date": "2026-03-10", "platform": "google_ads", "account_id": "a", "campaign_id": "c"}
    spend |= {"ad_group_id": "", "ad_id": ""}
    fees = {"period_start": "2026-03-01", "category": "agency", "amount": 200, "currency": "SEK"}
    with p.open_destination() as session:
        session.commit(
            [
                TableWrite(
                    "ad_performance_daily",
                    canonical_rows("ad_performance_daily", [{**spend, "spend": 400, "currency": "SEK"}]),
                    "append",
                ),
                TableWrite("costs", canonical_rows("costs", [fees]), "append"),
            ],
            {},
        )
    shop = Project(path=None, settings=ProjectSettings(destination="duckdb:///unused.duckdb", vat_rate=0.25))
    catalog = KIT.registry().for_project(shop).kpis  # the project's VAT rate in the KPIs
    march, april = dt.date(2026, 3, 1), dt.date(2026, 4, 1)
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone="Europe/Stockholm", catalog=catalog)
        got = {
            k: engine.series(catalog[k], grain="month", start=march, end=april).values()[march]
            for k in ("sales", "tax_collected", "sales_tax_not_reported", "sales_ex_vat", "roas_net")
        }
        rows = {r["order_id"]: r for r in session.read_table("orders").to_pylist()}
    # Received: 500 + 1250 + 0 + 600, less the refund of 250. Tax reported: 100 + 250 + 0 (the pending
    # order received nothing); the part payment's 600 and the refund's −250 report none: at 25 %
    # VAT their tax is 350 × 0.25 / 1.25 = 70. Ex VAT: 400 + 1000 + 480 − 200 = 1680; spend 400 + fees 200.
    assert got["sales"] == Decimal("2100")
    assert got["tax_collected"] == Decimal("350")
    assert got["sales_tax_not_reported"] == Decimal("350")
    assert got["sales_ex_vat"] == pytest.approx(1680)
    assert got["roas_net"] == pytest.approx(1680 / 600)
    taxes = [r["tax_amount"] for r in rows.values() if r["kind"] == "charge"]
    assert sorted(taxes, key=lambda t: (t is None, t or 0)) == [0, 100, 250, None]  # the part payment: None
    assert [r["tax_amount"] for r in rows.values() if r["kind"] == "refund"] == [None]


def test_plan_prices_a_backfill_as_a_bulk_operation():
    from kpihub_shopify.source import ShopifySettings

    from kpihub import PlanContext

    settings = ShopifySettings(base_url="http://127.0.0.1:1", access_token="shpat_x", **BULK)
    (orders, *_) = ShopifySource().streams(settings)
    first = orders.estimate(PlanContext(source_id="shopify", stream="orders", settings=settings, state=None))
    assert first.at_least and first.request_count == 2 and "one bulk operation" in first.basis
    # A committed cursor as the state store writes one (a timestamp's ISO text and its type).
    state = {"cursor": "2026-06-01T00:00:00+00:00", "cursor_type": "timestamp", "records": 10, "since": None}
    later = orders.estimate(PlanContext(source_id="shopify", stream="orders", settings=settings, state=state))
    assert "bulk" not in later.basis
