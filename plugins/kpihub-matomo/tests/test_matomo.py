"""The Matomo connector against a fake Matomo Reporting API on 127.0.0.1 speaking its wire format."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import pytest
from kpihub_matomo import MatomoSource
from kpihub_matomo.api import WireError
from kpihub_matomo.fake import DEMO_TARGETS, FakeMatomo, Page
from kpihub_matomo.rows import TIMINGS, performance_row
from kpihub_matomo.source import Site, zone

from kpihub.testing import KPIEngine, Registry
from kpihub.testing.conformance import SourceConformance

TODAY = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=5)  # room to advance() the fake's today
START = TODAY - dt.timedelta(days=30)
PAGES = [
    Page("/", 90, 1900),
    Page("/shop", 70, 2600),
    Page("/product", 120, 2300, before_onload=0.1),
    Page("/checkout", 15, 3100, untimed=0.2),
    Page("/blog/", 5, 1500),
]


def fake(seed: int = 3, **kwargs: Any) -> FakeMatomo:
    return FakeMatomo(seed=seed, pages=PAGES, start=START, today=TODAY, **kwargs)


class TestMatomoConformance(SourceConformance[FakeMatomo]):
    source = MatomoSource()

    def make_server(self) -> FakeMatomo:
        return fake()

    def settings(self, server: FakeMatomo) -> dict[str, Any]:
        return {
            "base_url": server.url,
            "token_auth": server.token,
            "site_id": server.site_id,
            "start_date": START.isoformat(),
            "traffic": True,
        }

    def fault_settings(self, server: FakeMatomo) -> dict[str, Any]:
        # Small pages and ranges: more requests for the faults to land on, and paging under faults.
        return {**self.settings(server), "page_size": 2, "days_per_request": 7}

    def change_data(self, server: FakeMatomo) -> None:
        server.restate(server.today - dt.timedelta(days=1))  # yesterday re-archived
        server.advance()  # today complete, a new partial today


def pipeline(tmp_path: Path, server: FakeMatomo, **settings: Any) -> Any:
    suite = TestMatomoConformance()
    return suite.pipeline(tmp_path, {**suite.settings(server), "traffic": False, **settings})


def rows(p: Any, table: str = "matomo_page_performance") -> list[dict[str, Any]]:
    with p.open_destination(read_only=True) as session:
        return session.read_table(table).to_pylist() if table in session.tables() else []


def test_a_rows_average_is_sum_over_page_loads_not_matomos_sum_of_averages():
    # /product on one day: 100 timed page views, 10 of them tracked before onload (no DOM completion,
    # no on-load time). Seconds as Matomo sends them with showRawMetrics=1; counts as numbers and strings.
    wire = {
        "label": "/product",
        "url": "https://shop.example/product?colour=red",
        "nb_hits": 104,
        "nb_visits": "80",
        **{f"nb_hits_with_time_{t}": 100 for t in ("network", "server", "transfer", "dom_processing")},
        "nb_hits_with_time_dom_completion": "90",
        "nb_hits_with_time_on_load": "90",
        "sum_time_network": "10.0000",
        "sum_time_server": "30.0000",
        "sum_time_transfer": "5.0000",
        "sum_time_dom_processing": "60.0000",
        "sum_time_dom_completion": "40.0000",
        "sum_time_on_load": "5.0000",
        "avg_page_load_time": 1.55,  # 0.1 + 0.3 + 0.05 + 0.6 + 0.444 + 0.056: Matomo's sum of averages
    }
    row = performance_row(dt.date(2026, 3, 2), wire, "Europe/Oslo")
    assert row["page"] == "/product?colour=red" and row["label"] == "/product"
    assert (row["page_loads"], row["load_time_ms_total"]) == (100, 150_000.0)  # 150 s over 100 loads: 1.5 s
    assert row["matomo_avg_page_load_s"] == 1.55 and row["load_time_from"] == "sum"
    assert (row["page_views"], row["visits"], row["on_load_hits"]) == (104, 80, 90)
    # Without the sums (showRawMetrics ignored): average × views, and said so.
    averaged = {k: v for k, v in wire.items() if not k.startswith("sum_time_")}
    averaged |= {"avg_time_network": 0.1, "avg_time_server": 0.3, "avg_time_transfer": 0.05}
    averaged |= {"avg_time_dom_processing": 0.6, "avg_time_dom_completion": 0.444, "avg_time_on_load": 0.056}
    row = performance_row(dt.date(2026, 3, 2), averaged, "Europe/Oslo")
    assert row["load_time_from"] == "average"
    assert row["load_time_ms_total"] == pytest.approx(150_000.0, abs=0.5 * 100 * 6)
    with pytest.raises(WireError, match=r"2026-03-02, page '/product': nb_hits_with_time_server is 100 but neither"):
        performance_row(dt.date(2026, 3, 2), {k: v for k, v in averaged.items() if k != "avg_time_server"}, "UTC")


class FixedMatomo(FakeMatomo):
    """Two pages over two days with round numbers, so the KPI can be worked out by hand."""

    NUMBERS = {  # (day index, path) -> (timed views, views without on-load, Σ ms per timing)
        (0, "/"): (100, 0, 20_000),
        (0, "/shop"): (50, 10, 30_000),
        (1, "/"): (300, 0, 30_000),
        (1, "/shop"): (50, 0, 20_000),
    }

    def truth(self, day: dt.date, page: Page) -> dict[str, Any]:
        timed, early, ms = self.NUMBERS[((day - self.first_day).days, page.path)]
        hits = {t: timed - early if t in ("dom_completion", "on_load") else timed for t in TIMINGS}
        return {"views": timed, "visits": timed, "hits": hits, "ms": dict.fromkeys(TIMINGS, ms), "per": 0}


def test_the_kpi_is_a_hand_computed_sum_over_loads(tmp_path):
    first = TODAY - dt.timedelta(days=1)
    pages = [Page("/", 0, 0), Page("/shop", 0, 0)]
    with FixedMatomo(seed=1, pages=pages, start=first, today=TODAY, today_share=1.0) as server:
        p = pipeline(tmp_path, server, start_date=first.isoformat())
        assert [s.status for s in p.sync().streams] == ["ok"]
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        series = engine.series(catalog["avg_page_load_seconds"], grain="month", start=first, end=TODAY)
        (value,) = [v for v in series.values().values() if v is not None]
    # Σ ms: 6 timings × (20 000 + 30 000 + 30 000 + 20 000) = 600 000 ms; page loads: 100 + 50 + 300 + 50
    # (the /shop views without on-load time still count once, with 0 ms for the missing timings).
    assert value == pytest.approx(600.0 / 500)  # 1.2 s; the mean of the four rows' averages would be 1.95
    (shop,) = [r for r in rows(p) if r["label"] == "/shop" and r["date"] == first]
    assert (shop["page_loads"], shop["on_load_hits"], shop["load_time_ms_total"]) == (50, 40, 180_000.0)
    # Matomo's own figure for that row sums six averages: 4 × 30 s / 50 + 2 × 30 s / 40 = 3.9 s, not 3.6 s.
    assert shop["matomo_avg_page_load_s"] == pytest.approx(3.9)


def test_restated_days_are_read_again_and_kept_once(tmp_path):
    with fake() as server:
        p = pipeline(tmp_path, server)
        p.sync()
        before = {(r["date"], r["label"]): r for r in rows(p)}
        yesterday = server.today - dt.timedelta(days=1)
        server.restate(yesterday)
        server.advance()
        result = p.sync()
        (stream,) = result.streams
        assert stream.status == "ok"
        after = rows(p)
        keys = [(r["date"], r["label"]) for r in after]
        assert len(keys) == len(set(keys))  # each day and page once
        by = {(r["date"], r["label"]): r for r in after}
        # The old today is complete now, yesterday re-archived, the day before unchanged; a new today.
        old_today, label = yesterday + dt.timedelta(days=1), "/product"
        assert by[(old_today, label)]["page_views"] > before[(old_today, label)]["page_views"]
        assert by[(yesterday, label)] != before[(yesterday, label)]
        day_before = yesterday - dt.timedelta(days=1)
        assert by[(day_before, label)]["page_views"] == before[(day_before, label)]["page_views"]
        assert (server.today, label) in by
        truth = server.truth(yesterday, PAGES[2])
        assert by[(yesterday, label)]["page_loads"] == truth["hits"]["network"]
        # The re-sync asked only for the lookback window, not the whole history.
        assert result.streams[0].records == 4 * len(PAGES)


def test_pages_of_a_day_are_paged_and_equal_one_big_page(tmp_path):
    with fake() as server:
        big = pipeline(tmp_path / "big", server)
        big.sync()
        small = pipeline(tmp_path / "small", server, page_size=2, days_per_request=10)
        assert [s.status for s in small.sync().streams] == ["ok"]
        offsets = {r.query.get("filter_offset") for r in server.requests if "getPageUrls" in r.raw_query}
    assert offsets == {"0", "2", "4"}
    strip = [{k: v for k, v in r.items() if k != "_loaded_at"} for r in rows(big)]
    again = [{k: v for k, v in r.items() if k != "_loaded_at"} for r in rows(small)]
    assert sorted(strip, key=repr) == sorted(again, key=repr)


def test_a_re_archive_while_paging_is_read_again_or_fails_loudly(tmp_path):
    with fake() as server:
        clean = pipeline(tmp_path / "clean", server, start_date=TODAY.isoformat(), page_size=2)
        clean.sync()
        runs: list[int] = []

        def rearchive_once(request: Any) -> None:
            if request.query.get("filter_offset") == "2" and not runs:
                runs.append(1)
                server.restate(TODAY)

        server.on_page_urls = rearchive_once
        p = pipeline(tmp_path / "live", server, start_date=TODAY.isoformat(), page_size=2)
        (stream,) = p.sync().streams
        assert stream.status == "ok" and runs
        assert any("re-archived days of" in n for n in stream.notes)
        truth = {server.label(pg.path): server.truth(TODAY, pg)["views"] for pg in PAGES}
        assert {r["label"]: r["page_views"] for r in rows(p)} == truth  # the re-archived day, whole

        server.on_page_urls = lambda request: (
            server.restate(TODAY) if request.query.get("filter_offset") == "2" else None
        )
        (stream,) = pipeline(tmp_path / "busy", server, start_date=TODAY.isoformat(), page_size=2).sync().streams
    assert stream.status == "failed" and "re-archived" in stream.error and "3 times in a row" in stream.error


def test_matomos_http_200_error_fails_the_stream_naming_it_and_the_message(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="kpihub")
    message = "Archiving of this report is disabled: archive_today is off for site 1"
    with fake() as server:
        # The first request reads the site; the second, a page of Actions.getPageUrls, gets the error body.
        server.fail(status=200, body={"result": "error", "message": message}, after=1, times=1)
        (stream,) = pipeline(tmp_path, server).sync().streams
        token = server.token
    assert stream.status == "failed"
    assert stream.error.startswith("matomo/page_performance: Matomo answered Actions.getPageUrls for ")
    assert message in stream.error and "\n" not in stream.error
    assert token not in stream.error and token not in caplog.text


def test_the_token_travels_in_the_post_body_never_in_the_url(tmp_path):
    with fake() as server:
        pipeline(tmp_path, server).sync()
        assert server.requests
        for request in server.requests:
            assert request.method == "POST" and server.token not in request.raw_query
            assert request.body.decode() == f"token_auth={server.token}"


def test_a_site_in_another_time_zone_than_configured_is_refused(tmp_path):
    with fake(time_zone="America/New_York") as server:
        (stream,) = pipeline(tmp_path, server, time_zone="Europe/Oslo").sync().streams
        verdict = check(tmp_path, server, site_id=99)
    assert stream.status == "failed"
    assert "site 1 is in time zone 'America/New_York' in Matomo, not 'Europe/Oslo' as configured" in stream.error
    assert not verdict.ok and "An unexpected website was found in the request" in verdict.message


def check(tmp_path: Path, server: FakeMatomo, **settings: Any) -> Any:
    p = pipeline(tmp_path / "check", server, **settings)
    source, validated = p.resolve_source("matomo")
    with p.requester("matomo", source, validated) as http:
        return source.check(validated, http)


def test_days_are_the_sites_days_including_matomos_manual_offsets():
    now = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.timezone.utc)
    assert Site("s", "Asia/Kolkata", None).today(now) == dt.date(2026, 3, 2)  # 01:30 the next day
    assert Site("s", "UTC+5.5", None).today(now) == dt.date(2026, 3, 2)
    assert Site("s", "America/Los_Angeles", None).today(now) == dt.date(2026, 3, 1)
    assert zone("UTC") == dt.timezone.utc
    with pytest.raises(ValueError, match="neither an IANA zone nor Matomo's UTC±H"):
        zone("Mars/Olympus")


def test_traffic_is_off_unless_asked_and_feeds_web_traffic_daily(tmp_path):
    settings = MatomoSource.settings_class(base_url="http://x", token_auth="t", site_id=1)
    assert [s.name for s in MatomoSource().streams(settings)] == ["page_performance"]
    with fake() as server:
        p = pipeline(tmp_path, server, traffic=True)
        assert [s.status for s in p.sync().streams] == ["ok", "ok"]
        day = TODAY - dt.timedelta(days=3)
        truth = server.totals(day)
    (web,) = [r for r in rows(p, "web_traffic_daily") if r["date"] == day]
    assert (web["sessions"], web["page_views"], web["users"]) == (
        truth["nb_visits"],
        truth["nb_pageviews"],
        truth["nb_uniq_visitors"],
    )
    assert web["engaged_sessions"] == truth["nb_visits"] - truth["bounce_count"]
    assert (web["source"], web["medium"], web["property_id"], web["currency"]) == ("(all)", "(all)", "1", "EUR")
    assert web["time_zone"] == "Europe/Oslo"


def test_the_demo_feeds_avg_page_load_seconds_and_its_baseline_is_q1(tmp_path):
    spec = MatomoSource().demo()
    assert spec is not None and spec.server is not None
    with spec.server as server:
        suite = TestMatomoConformance()
        p = suite.pipeline(tmp_path, {**spec.settings, "base_url": server.url})
        assert [r.status for r in p.sync().streams] == ["ok"]
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        kpi = catalog["avg_page_load_seconds"]
        values = engine.series(kpi, grain="quarter", start=dt.date(2026, 1, 1), end=dt.date(2026, 7, 1)).values()
    q1, q2 = values[dt.date(2026, 1, 1)], values[dt.date(2026, 4, 1)]
    (target,) = DEMO_TARGETS
    assert (target["kpi"], target["period"]) == ("avg_page_load_seconds", "2026-Q2")
    assert target["baseline"] == round(q1, 2)  # the baseline is the quarter before, as the engine computes it
    assert 1.9 < q1 < 3.1 and q2 < q1 and target["target"] < target["baseline"]  # the shop gets faster


def test_the_plugin_registers_through_the_kpihub_entry_point():
    (ep,) = [e for e in importlib.metadata.entry_points(group="kpihub") if e.name == "matomo"]
    assert ep.value == "kpihub_matomo" and ep.load().MatomoSource is MatomoSource
