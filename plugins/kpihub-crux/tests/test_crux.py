"""The CrUX connector against a fake Chrome UX Report API on 127.0.0.1 speaking its wire format."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from kpihub_crux import CruxSource
from kpihub_crux.fake import FakeCrux, Site
from kpihub_crux.wire import WireError, history_rows, record_rows

from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
MONDAY = dt.date(2024, 6, 3)  # the History API's release day: its newest week ends Saturday 1 June
SHOP, BLOG = "https://shop.example", "https://blog.example"
CHECKOUT = SHOP + "/checkout"


def sites() -> dict[tuple[str, str], Site]:
    return {
        ("origin", SHOP): Site(lcp=2100, inp=150, cls=0.05, weekly_change=0.01),
        # Data only from mid-April, and a quiet week in May: "NaN" / null weeks, stored as nulls.
        ("origin", BLOG): Site(
            lcp=1500, inp=90, cls=0.12, eligible_from=dt.date(2024, 4, 13), gaps={dt.date(2024, 5, 11)}
        ),
        ("url", CHECKOUT): Site(lcp=2600, inp=0, cls=0.02, no_inp=True),
    }


def fake(seed: int = 3) -> FakeCrux:
    return FakeCrux(seed=seed, today=MONDAY, sites=sites())


class TestCruxConformance(SourceConformance[FakeCrux]):
    source = CruxSource()

    def make_server(self) -> FakeCrux:
        return fake()

    def settings(self, server: FakeCrux) -> dict:
        return {
            "base_url": server.url,
            "api_key": server.api_key,
            "origins": [SHOP, BLOG],
            "urls": [CHECKOUT],
            "form_factors": ["PHONE", "DESKTOP"],
            # A fixed first day, so a fresh full sync after change_data reads the same weeks as the re-sync.
            "start_date": "2024-03-01",
        }

    def change_data(self, server: FakeCrux) -> None:
        server.advance(weeks=1)  # a new weekly window and a new daily one for every target


def sync_rows(tmp_path: Path, server: FakeCrux, **settings) -> tuple[list[dict], object]:
    suite = TestCruxConformance()
    p = suite.pipeline(tmp_path, {**suite.settings(server), **settings})
    result = p.sync()
    with p.open_destination(read_only=True) as session:
        rows = session.read_table("page_experience").to_pylist() if "page_experience" in session.tables() else []
    return rows, result


def test_fixtures_in_the_documented_wire_format_map_to_rows():
    daily = record_rows(json.loads((FIXTURES / "query_record.json").read_text()), "PHONE")
    assert daily == [
        {
            "period_start": dt.date(2024, 5, 5),
            "period_end": dt.date(2024, 6, 1),
            "target_type": "origin",
            "target": "https://www.example.com",
            "form_factor": "PHONE",
            "endpoint": "queryRecord",
            "p75_lcp_ms": 2380,
            "lcp_good_share": 0.7834,
            "lcp_ni_share": 0.1443,
            "lcp_poor_share": 0.0723,
            "p75_inp_ms": 187,
            "inp_good_share": 0.7712,
            "inp_ni_share": 0.1809,
            "inp_poor_share": 0.0479,
            "p75_cls": Decimal("0.05"),  # a string on the wire
            "cls_good_share": 0.8921,
            "cls_ni_share": 0.0645,
            "cls_poor_share": 0.0434,
        }
    ]
    weeks = history_rows(json.loads((FIXTURES / "query_history_record.json").read_text()), "ALL")
    assert [r["period_end"] for r in weeks] == [dt.date(2024, 5, 18), dt.date(2024, 5, 25), dt.date(2024, 6, 1)]
    assert [r["p75_lcp_ms"] for r in weeks] == [2450, None, 2380]  # the null week stays null
    assert [r["lcp_good_share"] for r in weeks] == [0.7701, None, 0.7834]  # "NaN" is null, never 0
    assert [r["p75_cls"] for r in weeks] == [Decimal("0.06"), None, Decimal("0.05")]
    assert [r["p75_inp_ms"] for r in weeks] == [None, None, None]  # INP absent: not reported
    assert {r["form_factor"] for r in weeks} == {"ALL"}  # the key has no formFactor: every device


def test_parallel_arrays_that_do_not_line_up_are_refused():
    body = json.loads((FIXTURES / "query_history_record.json").read_text())
    body["record"]["metrics"]["largest_contentful_paint"]["percentilesTimeseries"]["p75s"].pop()
    with pytest.raises(WireError, match=r"largest_contentful_paint has \[3, 3, 3, 2\] values for 3 periods"):
        history_rows(body, "ALL")
    daily = json.loads((FIXTURES / "query_record.json").read_text())
    daily["record"]["metrics"]["largest_contentful_paint"]["histogram"][0]["end"] = 2000
    with pytest.raises(WireError, match="not at the Core Web Vitals thresholds 2500 and 4000"):
        record_rows(daily, "PHONE")


def test_a_sync_stores_each_window_once_with_nulls_where_crux_has_none(tmp_path):
    with fake() as server:
        rows, result = sync_rows(tmp_path, server)
    assert [r.status for r in result.streams] == ["ok"]
    by = {(r["target"], r["form_factor"], r["period_end"]): r for r in rows}
    # Weekly windows from start_date to the newest (1 June, also the daily record's window: one row).
    ends = sorted({r["period_end"] for r in rows if r["target"] == SHOP})
    assert ends[0] >= dt.date(2024, 3, 1) and ends[-1] == dt.date(2024, 6, 1)
    assert all((b - a).days == 7 for a, b in zip(ends, ends[1:], strict=False))
    assert len(rows) == len(by)  # unique key
    shop = by[(SHOP, "PHONE", dt.date(2024, 6, 1))]
    assert shop["period_start"] == dt.date(2024, 5, 5) and isinstance(shop["p75_cls"], Decimal)
    # The blog: no data before 13 April, and none for the week of 11 May: rows with null vitals, not 0.
    quiet = by[(BLOG, "DESKTOP", dt.date(2024, 5, 11))]
    assert quiet["p75_lcp_ms"] is None and quiet["lcp_good_share"] is None and quiet["p75_cls"] is None
    assert by[(BLOG, "DESKTOP", dt.date(2024, 4, 6))]["p75_lcp_ms"] is None
    assert by[(BLOG, "DESKTOP", dt.date(2024, 4, 13))]["p75_lcp_ms"] is not None
    # The checkout page has no INP (too few interactions): null, while LCP and CLS are there.
    checkout = by[(CHECKOUT, "PHONE", dt.date(2024, 6, 1))]
    assert checkout["p75_inp_ms"] is None and checkout["p75_lcp_ms"] > 2500 and checkout["target_type"] == "url"


def test_the_daily_window_between_weekly_ones_is_kept_and_re_reads_merge(tmp_path):
    with fake() as server:
        sync_rows(tmp_path, server)
        server.today += dt.timedelta(days=3)  # Thursday: a new daily window (4 June), no new week yet
        rows, result = sync_rows(tmp_path, server)
        assert [r.status for r in result.streams] == ["ok"]
        days = sorted({r["period_end"] for r in rows if r["target"] == SHOP and r["form_factor"] == "PHONE"})
        assert days[-2:] == [dt.date(2024, 6, 1), dt.date(2024, 6, 4)]
        # The re-sync asked only for the weeks since its cursor (and one more), not the whole history.
        history = [r.json() for r in server.requests if r.path.endswith("queryHistoryRecord")]
        assert {b["collectionPeriodCount"] for b in history[-6:]} == {2}


def test_a_target_crux_does_not_know_is_a_note_not_a_failure(tmp_path):
    with fake() as server:
        rows, result = sync_rows(tmp_path, server, origins=[SHOP, "https://new.example"], urls=[])
    (stream,) = result.streams
    assert stream.status == "ok" and rows
    assert not [r for r in rows if r["target"] == "https://new.example"]
    assert any("origin https://new.example (PHONE): CrUX has no data (daily record" in n for n in stream.notes)


def test_a_bad_request_fails_in_one_line_naming_the_target_without_the_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="kpihub")
    with fake() as server:
        server.fail(status=400, body=server.error_body(400, "Invalid value at 'url'."), path="queryRecord", times=1)
        _, result = sync_rows(tmp_path, server, origins=[SHOP], urls=[], form_factors=["ALL"])
        key = server.api_key
    (stream,) = result.streams
    assert stream.status == "failed", stream
    assert stream.error and "\n" not in stream.error
    assert f"CrUX refused the query for origin '{SHOP}' (ALL)" in stream.error
    assert "Invalid value at 'url'" in stream.error
    assert key not in stream.error and key not in caplog.text


def test_the_quota_is_retried_and_spent_within_the_documented_rate(tmp_path):
    from kpihub.http import SimulatedClock

    clock = SimulatedClock()  # the budget's minute passes on simulated time, not the test's
    with fake() as server:
        server.fail(status=429, path="queryHistoryRecord", times=2)
        suite = TestCruxConformance()
        p = suite.pipeline(tmp_path, suite.settings(server), sleep=clock.sleep)
        p.clock = clock
        result = p.sync()
    assert [r.status for r in result.streams] == ["ok"]
    (limit,) = CruxSource().rate_limits(CruxSource.settings_class(api_key="k", origins=[SHOP]))
    assert (limit.limit, limit.seconds) == (150, 60.0)
    # A 429 with no Retry-After counts the minute's window as full: the retry waits for it to pass.
    assert clock.slept and max(clock.slept) == pytest.approx(60.0, abs=1.0)


def test_settings_refuse_all_with_devices_paths_in_origins_and_no_target():
    from pydantic import ValidationError

    make = CruxSource.settings_class
    with pytest.raises(ValidationError, match="ALL is every device together"):
        make(api_key="k", origins=[SHOP], form_factors=["ALL", "PHONE"])
    with pytest.raises(ValidationError, match="is not a scheme and host"):
        make(api_key="k", origins=[SHOP + "/pricing"])
    with pytest.raises(ValidationError, match="at least one of origins or urls"):
        make(api_key="k")
    assert make(api_key="k", origins=[SHOP + "/"]).origins == [SHOP]


def test_the_demo_feeds_the_web_vitals_kpis(tmp_path):
    from kpihub.testing import KPIEngine, Registry

    spec = CruxSource().demo()
    assert spec.server is not None
    with spec.server as server:
        suite = TestCruxConformance()
        p = suite.pipeline(tmp_path, {**spec.settings, "base_url": server.url})
        assert [r.status for r in p.sync().streams] == ["ok"]
    catalog = Registry(load_entrypoints=False).kpis  # the built-in KPIs, through the public kit
    vitals = ("lcp_p75", "inp_p75", "cls_p75", "core_web_vitals_pass_rate")
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        values = {
            k: engine.series(catalog[k], grain="quarter", start=dt.date(2026, 1, 1), end=dt.date(2026, 7, 1)).values()
            for k in vitals
        }
    q1, q2 = dt.date(2026, 1, 1), dt.date(2026, 4, 1)
    assert values["lcp_p75"][q2] < values["lcp_p75"][q1]  # the shop got faster
    assert values["core_web_vitals_pass_rate"][q2] > values["core_web_vitals_pass_rate"][q1]
    assert {t["kpi"] for t in spec.targets} <= set(vitals)
