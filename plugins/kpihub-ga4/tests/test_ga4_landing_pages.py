"""GA4's landing-page report (landingPage × sessionDefaultChannelGroup) into ``landing_pages_daily``, and the
landing-page bounce rate by channel computed from what was synced."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from click.testing import CliRunner
from kpihub_ga4.fake import FakeGA4, landing_rows

from kpihub.testing import cli

from . import test_ga4


def test_the_landing_page_report_is_asked_for_and_loaded_row_for_row(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 10)) as server:
        p, result, _ = test_ga4.run(tmp_path, server, page_size=40)
        bodies = [r.json() for r in server.requests if r.path.endswith(":runReport")]
    assert result.ok, [s.error for s in result.streams]
    asked = [
        b for b in bodies if [d["name"] for d in b["dimensions"]][1:] == ["landingPage", "sessionDefaultChannelGroup"]
    ]
    assert asked and all([m["name"] for m in b["metrics"]] == ["sessions", "engagedSessions"] for b in asked)
    with p.open_destination(read_only=True) as s:
        loaded = s.read_table("landing_pages_daily").to_pylist()
        traffic = s.read_table("web_traffic_daily").to_pylist()
    since = "20260601"
    want = {
        (prop, r["date"], r["landingPage"], r["sessionDefaultChannelGroup"]): (r["sessions"], r["engagedSessions"])
        for prop, rows in server.landing_rows.items()
        for r in rows
        if r["date"] >= since
    }
    got = {
        (r["property_id"], r["date"].strftime("%Y%m%d"), r["landing_page"], r["channel_group"]): (
            r["sessions"],
            r["engaged_sessions"],
        )
        for r in loaded
    }
    assert got == want
    assert {r["time_zone"] for r in loaded if r["property_id"] == "312345678"} == {"Europe/Oslo"}
    # The same sessions, cut two ways: each property's day adds up to the traffic report's.
    for table in (loaded, traffic):
        assert _daily(table) == _daily(traffic)


def _daily(rows: list[dict]) -> dict[tuple[str, dt.date], int]:
    out: dict[tuple[str, dt.date], int] = defaultdict(int)
    for r in rows:
        out[(r["property_id"], r["date"])] += r["sessions"]
    return dict(out)


def test_the_fake_splits_sessions_over_pages_and_keeps_every_engaged_session():
    traffic = [
        {"date": "20260601", "sessionSource": "google", "sessionMedium": "cpc", "sessions": 10, "engagedSessions": 9},
        {
            "date": "20260601",
            "sessionSource": "(direct)",
            "sessionMedium": "(none)",
            "sessions": 7,
            "engagedSessions": 2,
        },
    ]
    rows = {(r["landingPage"], r["sessionDefaultChannelGroup"]): r for r in landing_rows(traffic)}
    # 10 sessions 5:3:2 over /, /pricing, /blog; 9 engaged: 5 (≤ 70 %, at most its 5), then 2, then 2.
    paid = [rows[(page, "Paid Search")] for page in ("/", "/pricing", "/blog/kpi-guide")]
    assert [(r["sessions"], r["engagedSessions"]) for r in paid] == [(5, 5), (3, 2), (2, 2)]
    # 7 direct sessions: 7 * 5 // 10 = 3, 2, 1 and the rounding's one more on the home page.
    direct = [rows[(page, "Direct")] for page in ("/", "/pricing", "/blog/kpi-guide")]
    assert [r["sessions"] for r in direct] == [4, 2, 1] and sum(r["engagedSessions"] for r in direct) == 2


def test_an_unknown_dimension_is_ga4s_400(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 2)) as server:
        _, result, _ = test_ga4.run(
            tmp_path, server, dimensions=["date", "landingPage", "deviceCategory"], landing_pages=False
        )
    (stream,) = result.streams
    assert stream.status != "ok" and "Field deviceCategory is not a valid dimension" in stream.error


def test_bounce_rate_by_channel_from_the_synced_report(tmp_path, monkeypatch):
    c = test_ga4.TestGA4Conformance()
    with FakeGA4(seed=6, start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 30)) as server:
        assert c.pipeline(tmp_path, {**c.settings(server), "property_ids": ["312345678"]}).sync().ok
        rows = [r for r in server.landing_rows["312345678"] if r["date"] >= "20260601"]
    bounces: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        bounces[r["sessionDefaultChannelGroup"]][0] += r["sessions"] - r["engagedSessions"]
        bounces[r["sessionDefaultChannelGroup"]][1] += r["sessions"]
    (tmp_path / "kpihub.toml").write_text('[project]\ndestination = "duckdb:///conformance.duckdb"\n')
    monkeypatch.chdir(tmp_path)
    args = ["kpis", "--kpi", "landing_page_bounce_rate", "--by", "channel", "--period", "2026-06", "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    got = {r["channel"]: r["value"] for r in json.loads(result.output)}
    assert set(got) == {"Organic Search", "Paid Search", "Paid Social", "Direct", "Email"}
    for group, (bounced, sessions) in bounces.items():
        assert abs(got[group] - bounced / sessions) < 1e-12, group  # Σ bounces ÷ Σ sessions of the channel
