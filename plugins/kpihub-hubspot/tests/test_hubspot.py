"""The HubSpot connector against a fake HubSpot on 127.0.0.1 speaking CRM v3."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from kpihub_hubspot import HubSpotSettings, HubSpotSource, mapping
from kpihub_hubspot.fake import EPOCH, FakeHubSpot, HubSpotData

from kpihub import Pipeline, Project
from kpihub.testing import Normalizer, ProjectSettings, Registry, build_source_settings, cli, reset_registry
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
UTC = dt.timezone.utc


@pytest.fixture
def registry() -> Registry:
    import kpihub_hubspot

    reg = Registry(load_entrypoints=False)
    reg.register_plugin(kpihub_hubspot, "hubspot", distribution="kpihub-hubspot")
    return reg


def pipeline(tmp_path: Path, server: FakeHubSpot, registry: Registry, dest: str = "duckdb", **settings) -> Pipeline:
    uri = f"duckdb:///{tmp_path}/hs.duckdb" if dest == "duckdb" else f"parquet:///{tmp_path}/pq"
    source = {
        "base_url": server.url,
        "token": server.token,
        "requests_per_second": None,
        "rate_budget": False,  # the fake enforces no limits unless told (test_hubspot_rate_budget.py)
        "search_lag_seconds": 0,
        "max_attempts": 3,
        **settings,
    }
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=uri, chunk_rows=20_000),
        sources={"hubspot": source},
    )
    return Pipeline(project, registry=registry)


def ms_to_dt(ms: int | None) -> dt.datetime | None:
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=ms)


def read(p: Pipeline, table: str) -> list[dict]:
    with p.open_destination(read_only=True) as s:
        return s.read_table(table).to_pylist()


# -- wire format -----------------------------------------------------------------------


def test_fixture_page_normalizes_and_maps_to_crm_contacts():
    page = json.loads((FIXTURES / "contacts_search_page.json").read_text())
    settings = build_source_settings("hubspot", HubSpotSettings, {"token": "pat-x"})
    stream = HubSpotSource().streams(settings)[0]
    normalizer = Normalizer("contacts", stream.schema, primary_key=("id",), wire_strings=True)
    batch = normalizer.to_batch(page["results"])
    assert normalizer.drift.new_fields == ["url"]
    canon = mapping.contacts(batch, mapping.stage_map({})).to_pylist()
    ada, bo, cy = canon
    assert ada["lifecycle_stage"] == "sql" and ada["company_id"] == "5000017"
    # Ada skipped "lead": reaching MQL on 5 March makes her a lead then too.
    assert ada["became_lead_at"] == ada["became_mql_at"] == dt.datetime(2025, 3, 5, 10, tzinfo=UTC)
    assert ada["became_sql_at"] == dt.datetime(2025, 3, 20, 16, 42, 3, 2000, tzinfo=UTC)
    assert ada["became_customer_at"] is None
    assert bo["lifecycle_stage"] == "customer" and bo["became_customer_at"] == dt.datetime(2025, 4, 1, 9, tzinfo=UTC)
    assert cy["company_id"] is None and cy["email"] is None  # "" is a cleared value
    assert cy["updated_at"] == dt.datetime(2025, 4, 2, tzinfo=UTC)


def test_search_requests_and_responses_follow_crm_v3(tmp_path, registry):
    with FakeHubSpot(contacts=700) as server:
        p = pipeline(tmp_path, server, registry)
        p.sync(streams=["contacts"])
        searches = [r for r in server.requests if r.path == "/crm/v3/objects/contacts/search"]
    body = searches[0].json()
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert body["limit"] == 200 and body["after"] == "0"
    (lt,) = body["filterGroups"][0]["filters"]
    assert lt["operator"] == "LT" and lt["value"].isdigit()  # epoch milliseconds as a string
    # Keyset paging: never an offset; each page restarts at the last modified time read (GTE).
    assert [r.json()["after"] for r in searches] == ["0", "0", "0", "0"]  # 200 + 199 + 199 + 102 new
    first_page_last = server.data.stores["contacts"].in_search_order()[199]
    last_ms = server.data.stores["contacts"].records[first_page_last].props["lastmodifieddate"]
    assert searches[1].json()["filterGroups"][0]["filters"][1] == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": str(last_ms),
    }
    assert len({r["id"] for r in read(p, "hubspot_contacts")}) == 700
    assert searches[0].header("authorization") == f"Bearer {server.token}"


# -- the big one: 50k contacts, then 1 % changed --------------------------------------


@pytest.mark.parametrize("dest", ["duckdb", "parquet"])
def test_50k_contacts_then_incremental_resync_leaves_exactly_the_right_rows(tmp_path, registry, dest):
    data = HubSpotData(seed=11, contacts=50_000)
    with FakeHubSpot(data=data) as server:
        p = pipeline(tmp_path, server, registry, dest)
        first = p.sync(streams=["contacts"])
        assert first.ok, first.streams[0].error
        searches = [r.json() for r in server.requests if r.path.endswith("/search")]
        assert {b["after"] for b in searches} == {"0"}  # keyset: never an offset, so never near the 10,000 cap
        assert len(searches) >= 250  # 50,000 records in pages of 200
        assert_contacts_match(p, data)

        changed = data.touch("contacts", 0.01)
        assert len(changed) == 500
        server.requests.clear()
        second = p.sync(streams=["contacts"])
        assert second.ok
        # Only the changed records (plus the boundary record the GTE cursor re-reads) came back.
        assert 500 <= second.streams[0].records <= 502
        low = int(server.requests[0].json()["filterGroups"][0]["filters"][1]["value"])
        assert ms_to_dt(low) == first.streams[0].cursor
        assert_contacts_match(p, data)


def assert_contacts_match(p: Pipeline, data: HubSpotData) -> None:
    store = data.stores["contacts"].records
    raw = {r["id"]: r for r in read(p, "hubspot_contacts")}
    canon = {r["contact_id"]: r for r in read(p, "crm_contacts")}
    assert len(raw) == len(canon) == len(store) == 50_000
    for rid, record in store.items():
        row, c = raw[str(rid)], canon[str(rid)]
        assert row["lifecyclestage"] == record.props["lifecyclestage"]
        assert row["lastmodifieddate"] == ms_to_dt(record.props["lastmodifieddate"])
        assert c["lifecycle_stage"] == mapping.STANDARD_STAGES[record.props["lifecyclestage"]]
        assert c["became_customer_at"] == ms_to_dt(record.props["hs_lifecyclestage_customer_date"])
        assert c["email"] == record.props["email"] and c["source_id"] == "hubspot"


def test_more_than_10000_records_at_one_instant_are_read_by_id(tmp_path, registry):
    data = HubSpotData(seed=5, contacts=10_450)
    instant = data.start_ms + 1000
    for record in data.stores["contacts"].records.values():
        record.props["lastmodifieddate"] = instant
    data.stores["contacts"].reindex()
    with FakeHubSpot(data=data) as server:
        p = pipeline(tmp_path, server, registry)
        assert p.sync(streams=["contacts"]).ok
        by_id = [
            r.json()
            for r in server.requests
            if r.path.endswith("/search") and r.json()["sorts"][0]["propertyName"] == "hs_object_id"
        ]
    assert by_id and by_id[0]["filterGroups"][0]["filters"][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "EQ",
        "value": str(instant),
    }
    assert len({r["id"] for r in read(p, "hubspot_contacts")}) == 10_450


# -- deals, pipelines, canonical mapping ------------------------------------------------


def test_deals_map_to_crm_deals(tmp_path, registry):
    with FakeHubSpot(contacts=3_000) as server:
        p = pipeline(tmp_path, server, registry)
        assert p.sync().ok
        deals = server.data.stores["deals"].records
    rows = {r["deal_id"]: r for r in read(p, "crm_deals")}
    assert len(rows) == len(deals) > 100
    for rid, deal in deals.items():
        row = rows[str(rid)]
        won = deal.props["hs_is_closed_won"] == "true"
        closed = deal.props["hs_is_closed"] == "true"
        assert (row["is_won"], row["is_closed"]) == (won, closed)
        assert row["closed_at"] == (ms_to_dt(deal.props["closedate"]) if closed else None)
        assert row["amount"] == (Decimal(deal.props["amount"]) if deal.props["amount"] else None)
        assert row["currency"] == "EUR"  # null deal_currency_code -> the portal's company currency
        assert row["pipeline"] in ("Sales Pipeline", "Partner Pipeline") and row["stage"]
    stages = read(p, "hubspot_deal_pipelines")
    assert len(stages) == 10
    won = [s for s in stages if s["stage_id"] == "closedwon"][0]
    assert (won["is_closed"], won["probability"], won["pipeline_label"]) == (True, 1.0, "Sales Pipeline")


def test_stage_metadata_decides_when_hs_is_closed_is_missing():
    lookup = mapping.StageLookup.from_pipelines(
        [
            {
                "id": "p",
                "label": "P",
                "stages": [
                    {"id": "w", "label": "Won", "metadata": {"isClosed": "true", "probability": "1.0"}},
                    {"id": "l", "label": "Lost", "metadata": {"isClosed": "true", "probability": "0.0"}},
                    {"id": "o", "label": "Open", "metadata": {"isClosed": "false", "probability": "0.5"}},
                ],
            }
        ]
    )
    ts = pa.array([dt.datetime(2025, 1, 1, tzinfo=UTC)] * 4, pa.timestamp("us", tz="UTC"))
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ["1", "2", "3", "4"],
            "dealname": ["a", "b", "c", "d"],
            "pipeline": ["p", "p", "p", "p"],
            "dealstage": ["w", "l", "o", "gone"],
            "amount": pa.array([None] * 4, pa.decimal128(38, 9)),
            "deal_currency_code": ["usd", None, None, None],
            "createdate": ts,
            "closedate": ts,
            "hs_is_closed": pa.array([None] * 4, pa.bool_()),
            "hs_is_closed_won": pa.array([None] * 4, pa.bool_()),
            "hs_lastmodifieddate": ts,
        }
    )
    out = mapping.deals(batch, lookup, "NOK").to_pylist()
    assert [(r["is_closed"], r["is_won"]) for r in out] == [(True, True), (True, False), (False, False), (None, None)]
    assert [r["currency"] for r in out] == ["USD", "NOK", "NOK", "NOK"]
    assert out[2]["closed_at"] is None and out[3]["stage"] is None


# -- bad input --------------------------------------------------------------------------


def test_wrong_token_fails_with_hubspots_message_and_no_token(tmp_path, registry):
    with FakeHubSpot(contacts=50) as server:
        p = pipeline(tmp_path, server, registry, token="pat-na1-WRONG-canary-1234")
        result = p.sync()
    assert not result.ok
    for r in result.streams:
        assert "HTTP 401: Authentication credentials not found" in r.error
        assert "after 1 attempt" in r.error and "canary" not in r.error
    with p.open_destination(read_only=True) as s:
        state = s.all_state()
    assert all("cursor" not in entry for entry in state.values())  # only each stream's outcome is saved
    assert "canary" not in str(state)


def test_429_with_hubspot_rate_limit_body_is_retried(tmp_path, registry):
    with FakeHubSpot(contacts=500) as server:
        fault = server.fail(status=429, path="/search", times=2)  # HubSpot's body, no Retry-After
        with_header = server.fail(status=429, headers={"Retry-After": "1"}, path="/pipelines", times=1)
        p = pipeline(tmp_path, server, registry)
        result = p.sync()
        body = server.rate_limit_body()
        limited = next(r for r in server.requests if r.path.endswith("/search"))
    headers = server.error_headers(429)
    assert (
        headers["X-HubSpot-RateLimit-Remaining"] == "0"
        and headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    )
    assert limited.json()["after"] == "0"
    assert result.ok and fault.hits == 2 and with_header.hits == 1
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert len(read(p, "crm_contacts")) == 500


def test_malformed_page_fails_clearly_and_state_stays_at_durable_data(tmp_path, registry):
    with FakeHubSpot(contacts=1_000) as server:
        p = pipeline(tmp_path, server, registry)
        p.project.settings.chunk_rows = 200
        server.fail(kind="malformed", path="/contacts/search", after=3, times=99)
        result = p.sync(streams=["contacts"])
        contacts = server.data.stores["contacts"]
    (stream,) = result.streams
    assert stream.status == "failed"
    assert "malformed JSON body" in stream.error and "hubspot/contacts: POST" in stream.error
    rows = read(p, "hubspot_contacts")
    with p.open_destination(read_only=True) as s:
        cursor = dt.datetime.fromisoformat(s.get_state("hubspot.contacts")["cursor"])
    # Three pages made it, the fourth never arrived whole; each page after the first starts at
    # the last modified time read, so it re-reads that record: 200 + 199 + 199 new records.
    assert len(rows) == 598
    assert cursor == max(r["lastmodifieddate"] for r in rows)
    first_598 = contacts.in_search_order()[:598]
    assert {r["id"] for r in rows} == {str(i) for i in first_598}
    assert cursor == ms_to_dt(contacts.records[first_598[-1]].props["lastmodifieddate"])


def test_unknown_lifecycle_stage(tmp_path, registry):
    data = HubSpotData(seed=2, contacts=300)
    some = sorted(data.stores["contacts"].records)[17]
    data.stores["contacts"].records[some].props["lifecyclestage"] = "1033017"
    with FakeHubSpot(data=data) as server:
        failed = pipeline(tmp_path / "a", server, registry).sync(streams=["contacts"])
        assert failed.streams[0].error == (
            f"stream 'contacts', record id='{some}', field 'lifecyclestage': unknown lifecycle stage '1033017'; "
            'map it with lifecycle_stage_map in [sources.<id>] or set on_unknown_lifecycle_stage = "other"'
        )
        mapped = pipeline(tmp_path / "b", server, registry, lifecycle_stage_map={"1033017": "mql"})
        assert mapped.sync(streams=["contacts"]).ok
        other = pipeline(tmp_path / "c", server, registry, on_unknown_lifecycle_stage="other")
        assert other.sync(streams=["contacts"]).ok
    stage_of = lambda p: {r["contact_id"]: r["lifecycle_stage"] for r in read(p, "crm_contacts")}[str(some)]  # noqa: E731
    assert (stage_of(mapped), stage_of(other)) == ("mql", "other")


def test_unparseable_deal_amount_fails_that_stream_only(tmp_path, registry):
    data = HubSpotData(seed=4, contacts=2_000)
    deal_id = sorted(data.stores["deals"].records)[5]
    data.stores["deals"].records[deal_id].props["amount"] = "12,50 kr"
    with FakeHubSpot(data=data) as server:
        p = pipeline(tmp_path, server, registry)
        result = p.sync()
    by = {r.stream: r for r in result.streams}
    assert by["deals"].error == (
        f"stream 'deals', record id='{deal_id}', field 'amount': cannot read '12,50 kr' as decimal128(38, 9)"
    )
    assert by["contacts"].status == by["companies"].status == by["deal_pipelines"].status == "ok"
    with p.open_destination(read_only=True) as s:
        deals_state = s.get_state("hubspot.deals")
        assert "hubspot_deals" not in s.tables()
    assert deals_state["status"] == "failed" and "cursor" not in deals_state  # its outcome, no cursor


def test_bad_lifecycle_stage_map_is_a_config_error():
    with pytest.raises(Exception, match=r"lifecycle_stage_map\['x'\] = 'qualified' is not a canonical stage"):
        mapping.stage_map({"x": "qualified"})


# -- check, CLI, demo ------------------------------------------------------------------------


def test_check(tmp_path, registry):
    with FakeHubSpot(contacts=10) as server:
        p = pipeline(tmp_path, server, registry)
        source, settings = p.resolve_source("hubspot")
        with p.requester("hubspot", source, settings) as http:
            ok = source.check(settings, http)
        bad = pipeline(tmp_path, server, registry, token="nope-nope-nope")
        source, settings = bad.resolve_source("hubspot")
        with bad.requester("hubspot", source, settings) as http:
            verdict = source.check(settings, http)
    assert ok.ok and ok.message == "connected to HubSpot portal 1234567 (EUR, Europe/Oslo)"
    assert not verdict.ok and "HTTP 401" in verdict.message


def test_cli_sync_with_debug_never_prints_the_token(tmp_path, registry, monkeypatch):
    reset_registry(registry)
    with FakeHubSpot(contacts=400) as server:
        server.fail(status=503, path="/search", times=1)
        (tmp_path / "kpihub.toml").write_text(
            f'[project]\ndestination = "duckdb:///hs.duckdb"\n[sources.hubspot]\nbase_url = "{server.url}"\n'
            "requests_per_second = 100\n"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KPIHUB_HUBSPOT_TOKEN", server.token)
        result = CliRunner().invoke(cli, ["--debug", "-v", "sync"])
    assert result.exit_code == 0, result.output
    assert "retry 1/5" in result.output  # the 503 was logged …
    assert server.token not in result.output  # … without the token
    assert server.token not in (tmp_path / "hs.duckdb").read_bytes().decode("latin-1")


def test_demo_runs_end_to_end(tmp_path, registry, monkeypatch):
    reset_registry(registry)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    for expected in ("hubspot.contacts", "30,000", "Won revenue", "on track", "off track", "at risk"):
        assert expected in result.output
    assert (tmp_path / "kpihub-demo" / "kpihub.duckdb").exists()
    again = CliRunner().invoke(cli, ["-p", "kpihub-demo/kpihub.toml", "kpis", "--format", "json"])
    rows = {r["kpi"]: r for r in json.loads(again.output)}
    assert rows["leads"]["period"] == "2026-Q2" and rows["leads"]["status"] == "on track"


class TestHubSpotConformance(SourceConformance):
    source = HubSpotSource()
    rate_limited_path = r"/search$"

    def make_server(self) -> FakeHubSpot:
        return FakeHubSpot(seed=21, contacts=1_500)

    def settings(self, server) -> dict:
        # The fake enforces no limits unless told (test_hubspot_rate_budget.py): no pacing here.
        return {"base_url": server.url, "token": server.token, "rate_budget": False, "search_lag_seconds": 0}

    def fault_settings(self, server) -> dict:
        return {**self.settings(server), "page_size": 25}

    def change_data(self, server) -> None:
        server.data.touch("contacts", 0.02)
        server.data.touch("deals", 0.05, seed=3)
        server.data.add_contacts(40)

    def live_changes(self, server):
        # Between search pages: a share of the object's records modified, one added, one archived.
        return server.live_changes(0.01, add=1, delete=1)  # ~10% of records over a sync of ~11 pages


# -- account details unavailable (issue 13, finding 10) -----------------------------------

ACCOUNT = r"/account-info/v3/details$"


def test_account_details_404_falls_back_to_each_deals_own_currency(tmp_path, registry):
    data = HubSpotData(seed=4, contacts=1_500)
    for deal in data.stores["deals"].records.values():
        deal.props["deal_currency_code"] = "nok"
    with FakeHubSpot(data=data) as server:
        server.fail(status=404, path=ACCOUNT, times=1_000)  # HubSpot's 404 body (OBJECT_NOT_FOUND)
        p = pipeline(tmp_path, server, registry)
        result = p.sync(streams=["deals"])
        source, settings = p.resolve_source("hubspot")
        with p.requester("hubspot", source, settings) as http:
            verdict = source.check(settings, http)
    (deals,) = result.streams
    assert deals.status == "ok", deals.error
    assert "account details unavailable (GET /account-info/v3/details answered 404)" in deals.drift
    rows = read(p, "crm_deals")
    assert len(rows) == len(data.stores["deals"].records) and {r["currency"] for r in rows} == {"NOK"}
    assert verdict.ok and verdict.message == (
        "connected to HubSpot; account details unavailable (GET /account-info/v3/details answered 404): "
        "deals need their own deal_currency_code, or set company_currency"
    )


def test_a_priced_deal_without_currency_when_the_account_currency_is_unknown(tmp_path, registry):
    data = HubSpotData(seed=4, contacts=1_500)
    deals = data.stores["deals"].records
    ids = sorted(deals)
    for rid in ids:
        deals[rid].props["deal_currency_code"] = "NOK"
    unpriced = next(rid for rid in ids if not deals[rid].props["amount"])
    priced = next(rid for rid in ids[5:] if deals[rid].props["amount"])
    deals[unpriced].props["deal_currency_code"] = None  # no amount: a null currency adds nothing up
    with FakeHubSpot(data=data) as server:
        server.fail(status=404, path=ACCOUNT, times=1_000)
        quiet = pipeline(tmp_path / "a", server, registry)
        assert quiet.sync(streams=["deals"]).ok
        deals[priced].props["deal_currency_code"] = None
        deals[priced].updated += 1  # a change (the fake caches a record's JSON per updatedAt)
        failed = pipeline(tmp_path / "b", server, registry).sync(streams=["deals"])
        configured = pipeline(tmp_path / "c", server, registry, company_currency="eur")
        assert configured.sync(streams=["deals"]).ok
    assert {r["deal_id"]: r["currency"] for r in read(quiet, "crm_deals")}[str(unpriced)] is None
    assert failed.streams[0].error == (
        f"stream 'deals', record id='{priced}', field 'deal_currency_code': the deal has an amount but no "
        "currency, and the account's company currency is unknown (GET /account-info/v3/details answered 404); "
        "set company_currency in [sources.<id>]"
    )
    currencies = {r["deal_id"]: r["currency"] for r in read(configured, "crm_deals")}
    assert (currencies[str(priced)], currencies[str(unpriced)], currencies[str(ids[0])]) == ("EUR", "EUR", "NOK")


def test_the_fake_keeps_hubspots_search_limits():
    import httpx

    with FakeHubSpot(contacts=20) as server, httpx.Client(base_url=server.url) as client:
        auth = {"Authorization": f"Bearer {server.token}"}

        def search(**body):
            return client.post("/crm/v3/objects/contacts/search", json=body, headers=auth)

        sort = {"propertyName": "createdate", "direction": "ASCENDING"}
        two_sorts = search(sorts=[sort, {"propertyName": "hs_object_id"}])
        f = {"propertyName": "email", "operator": "HAS_PROPERTY"}
        assert two_sorts.status_code == 400 and two_sorts.json()["category"] == "VALIDATION_ERROR"
        assert search(filterGroups=[{"filters": [f]}] * 6).status_code == 400  # 5 groups at most
        assert search(filterGroups=[{"filters": [f] * 7}]).status_code == 400  # 6 filters per group
        assert search(filterGroups=[{"filters": [f] * 6}] * 4).status_code == 400  # 18 filters in all
        assert search(filterGroups=[{"filters": [f] * 6}] * 3, limit=200).json()["total"] == 20
        capped = search(after="10000")
        assert capped.status_code == 400 and capped.json()["message"] == "There was a problem with the request."
        assert len(search().json()["results"]) == 10  # the default page size
