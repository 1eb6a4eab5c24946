"""Meta Pages & Instagram insights against FakeMetaPages: the conformance suite, Pacific days, the
90-day windows, restatement, retired metrics, throttling, and the social KPIs by hand."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kpihub_meta_pages import MetaPagesSource
from kpihub_meta_pages.fake import FakeMetaPages
from kpihub_meta_pages.graph import PACIFIC, day_of, observe_rate, pacific_today, throttle
from kpihub_meta_pages.metrics import FACEBOOK, INSTAGRAM, choose
from kpihub_meta_pages.source import FACEBOOK_DAILY, INSTAGRAM_DAILY, FacebookDaily, InstagramDaily

from kpihub.testing import KPIEngine, Normalizer, Registry
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_A, PAGE_B, IG = "104000000000001", "104000000000002", "17841400000000001"


class TestMetaPagesConformance(SourceConformance[FakeMetaPages]):
    """Every test of kpihub.testing.conformance.SourceConformance, against FakeMetaPages."""

    source = MetaPagesSource()
    rate_limited_path = r"/insights$"

    def make_server(self) -> FakeMetaPages:
        return FakeMetaPages(seed=3)

    def settings(self, server: FakeMetaPages) -> dict[str, Any]:
        return {
            "base_url": server.url,
            "access_token": server.token,
            "page_ids": [PAGE_A, PAGE_B],
            "instagram_account_ids": [IG],
            # From the fake's first day, which never moves (its last one does: ``advance``).
            "start_date": (server.first_day + dt.timedelta(days=35)).isoformat(),
            "lookback_days": 3,
        }

    def fault_settings(self, server: FakeMetaPages) -> dict[str, Any]:
        return {**self.settings(server), "days_per_request": 5}  # more, smaller windows

    def change_data(self, server: FakeMetaPages) -> None:
        server.restate(days=2)  # Meta fills in the last two days late
        server.advance()  # and a new day arrives

    def live_changes(self, server: FakeMetaPages) -> Callable[[Any], None]:
        # Between two insights requests of one sync, Meta restates the latest day.
        return lambda request: server.restate(days=1, fraction=0.5)


def run(tmp_path: Path, server: FakeMetaPages, **overrides: Any) -> tuple[Any, Any, list[float]]:
    c = TestMetaPagesConformance()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def rows(p: Any, table: str) -> list[dict[str, Any]]:
    with p.open_destination(read_only=True) as session:
        return session.read_table(table).to_pylist()


def test_end_time_closes_a_pacific_day_across_daylight_saving():
    # 2026-03-08 starts US daylight saving: PST days end 08:00 UTC, PDT days 07:00 UTC.
    assert day_of("2026-03-08T08:00:00+0000") == dt.date(2026, 3, 7)
    assert day_of("2026-03-09T07:00:00+0000") == dt.date(2026, 3, 8)
    assert day_of("2026-06-02T07:00:00+0000") == dt.date(2026, 6, 1)  # in UTC this would read 2 June


def test_fixture_page_maps_to_rows_and_social_daily():
    body = json.loads((FIXTURES / "page_insights.json").read_text())
    stream = FacebookDaily("facebook_daily", FACEBOOK_DAILY, primary_key=("page_id", "date"), cursor_field="date")
    metrics = choose(FACEBOOK, {}, 25, dt.date(2026, 12, 1))
    ctx = _Ctx()
    records = stream._rows(ctx, PAGE_A, metrics, body, dt.date(2026, 3, 7), dt.date(2026, 3, 8))  # type: ignore[arg-type]
    normalizer = Normalizer("facebook_daily", FACEBOOK_DAILY, primary_key=("page_id", "date"))
    batch = normalizer.to_batch(records)
    assert not normalizer.drift
    first, second = stream.to_canonical(batch, ctx).to_pylist()  # type: ignore[arg-type]
    assert first == {
        "date": dt.date(2026, 3, 7),
        "platform": "facebook",
        "account_id": PAGE_A,
        "impressions": 4180,
        "reach": None,  # the answer has no page_total_media_view_unique: null, never 0
        "engagements": 167,
        "followers": 12044,
    }
    assert (second["date"], second["impressions"], second["followers"]) == (dt.date(2026, 3, 8), 3925, 12051)
    assert records[0]["impressions_metric"] == "page_media_view"  # the metric is kept with its value
    assert any("page_total_media_view_unique" in note for note in ctx.notes)


def test_fixture_instagram_day_keeps_missing_metrics_null():
    body = json.loads((FIXTURES / "instagram_total_value.json").read_text())
    stream = InstagramDaily("instagram_daily", INSTAGRAM_DAILY)
    metrics = choose(INSTAGRAM, {}, 25, dt.date(2026, 12, 1))
    ctx = _Ctx()
    row = stream._row(ctx, IG, metrics, body, dt.date(2026, 6, 1))  # type: ignore[arg-type]
    assert row is not None
    assert (row["impressions"], row["reach"], row["engagements"]) == (5127, 2310, None)
    assert (row["impressions_metric"], row["engagements_metric"]) == ("views", "total_interactions")


class _Ctx:
    source_id, stream = "meta_pages", "facebook_daily"

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str, count: int = 1) -> None:
        self.notes.append(message)


def test_rows_are_the_fakes_values_on_their_pacific_days(tmp_path):
    with FakeMetaPages(seed=5) as server:
        p, result, _ = run(tmp_path, server)
        requests = [r for r in server.requests if r.path.endswith("/insights")]
    assert result.ok, [s.error for s in result.streams]
    fb = {(r["page_id"], r["date"]): r for r in rows(p, "meta_pages_facebook_daily")}
    start = server.first_day + dt.timedelta(days=35)
    assert set(fb) == {(page, d) for page in (PAGE_A, PAGE_B) for d in server.facebook[page] if d >= start}
    for (page, day), row in fb.items():
        truth = server.facebook[page][day]
        assert (row["impressions"], row["reach"]) == (truth["page_media_view"], truth["page_total_media_view_unique"])
        assert (row["engagements"], row["followers"]) == (truth["page_post_engagements"], truth["page_follows"])
    social = {(r["platform"], r["account_id"], r["date"]): r for r in rows(p, "social_daily")}
    for day, truth in server.ig[IG].items():
        if day >= start:
            row = social[("instagram", IG, day)]
            assert (row["impressions"], row["reach"]) == (truth["views"], truth["reach"])
            assert row["engagements"] == truth["total_interactions"]
            assert row["followers"] is None  # Instagram sends no daily totals: null, not summed gains
    assert all("access_token" not in r.query for r in requests)  # the token travels in a header
    ig = [r for r in requests if IG in r.path]
    days = (pacific_today() - start).days  # through yesterday: today is not over, Meta has no value for it
    assert {r.query["metric_type"] for r in ig} == {"total_value"} and len(ig) == days  # one Pacific day each


def test_a_restated_day_takes_its_new_value_without_duplicates(tmp_path):
    with FakeMetaPages(seed=6) as server:
        p, first, _ = run(tmp_path, server)
        before = {(r["account_id"], r["date"]): r["impressions"] for r in rows(p, "social_daily")}
        changed = server.restate(days=2)
        _, second, _ = run(tmp_path, server)
    assert first.ok and second.ok
    after = rows(p, "social_daily")
    keys = [(r["platform"], r["account_id"], r["date"]) for r in after]
    assert len(keys) == len(set(keys)) == len(before)
    now = {(r["account_id"], r["date"]): r["impressions"] for r in after}
    for platform, account, day in changed:
        store = server.facebook if platform == "facebook" else server.ig
        truth = store[account][day]["page_media_view" if platform == "facebook" else "views"]
        assert now[(account, day)] == truth != before[(account, day)]


def test_page_windows_are_at_most_90_days_and_paging_links_are_not_followed(tmp_path):
    with FakeMetaPages(seed=7, start=dt.date(2026, 1, 1)) as server:
        start = server.last_day - dt.timedelta(days=199)
        p, result, _ = run(tmp_path, server, start_date=start.isoformat(), instagram_account_ids=[])
        requests = [r for r in server.requests if r.path == f"/v25.0/{PAGE_A}/insights"]
    assert result.ok, result.streams[0].error
    spans = [(dt.date.fromisoformat(r.query["since"]), dt.date.fromisoformat(r.query["until"])) for r in requests]
    assert all((until - since).days <= 90 for since, until in spans)
    assert spans[0][0] == start and all(
        a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)
    )  # contiguous, no gap
    assert len(spans) == 3  # 200 days through yesterday: 90 + 90 + 20; never a paging.next window
    loaded = {r["date"] for r in rows(p, "meta_pages_facebook_daily") if r["page_id"] == PAGE_A}
    assert loaded == {d for d in server.facebook[PAGE_A] if d >= start}


@pytest.mark.parametrize(
    ("overrides", "stream", "metric", "replacement"),
    [
        (
            {"facebook_metrics": {"impressions": "page_impressions"}},
            "facebook_daily",
            "page_impressions",
            "page_media_view",
        ),
        ({"facebook_metrics": {"followers": "page_fans"}}, "facebook_daily", "page_fans", "page_follows"),
        ({"instagram_metrics": {"impressions": "impressions"}}, "instagram_daily", "impressions", "views"),
    ],
)
def test_a_retired_metric_is_one_line_naming_stream_metric_and_replacement(
    tmp_path, overrides, stream, metric, replacement
):
    with FakeMetaPages(seed=8) as server:
        _, result, _ = run(tmp_path, server, **overrides)
    (failed,) = [s for s in result.streams if s.stream == stream]
    error = failed.error or ""
    assert failed.status == "failed" and "\n" not in error
    assert f"meta_pages/{stream}" in error and repr(metric) in error and repr(replacement) in error
    assert [s.status for s in result.streams if s.stream != stream] == ["ok"]  # the other platform syncs


def test_metric_names_follow_api_version_and_retirement_dates():
    assert choose(FACEBOOK, {}, 21, dt.date(2025, 6, 1)) == {
        "impressions": "page_impressions",
        "reach": "page_impressions_unique",
        "engagements": "page_post_engagements",
        "followers": "page_fans",
    }
    assert choose(FACEBOOK, {}, 21, dt.date(2025, 11, 15))["impressions"] == "page_media_view"  # every version
    assert choose(FACEBOOK, {}, 25, dt.date(2026, 6, 15))["reach"] == "page_total_media_view_unique"
    assert choose(INSTAGRAM, {}, 21, dt.date(2025, 3, 1))["impressions"] == "impressions"
    assert choose(INSTAGRAM, {}, 22, dt.date(2025, 3, 1))["impressions"] == "views"  # v22.0 first
    assert choose(INSTAGRAM, {}, 21, dt.date(2025, 4, 21))["impressions"] == "views"  # then every version


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80002])
def test_every_throttle_code_is_retried(code):
    decision = throttle(httpx.Response(400, json={"error": {"code": code, "message": f"(#{code}) slow down"}}))
    assert decision is not None and decision.retry


def test_token_and_parameter_errors_are_not_retried():
    for code in (190, 100, 200):
        assert throttle(httpx.Response(400, json={"error": {"code": code, "message": "no"}})).retry is False


def test_usage_headers_are_read_into_the_budget():
    headers = {
        "X-Business-Use-Case-Usage": json.dumps(
            {PAGE_A: [{"type": "pages", "call_count": 80, "total_cputime": 20, "total_time": 30}]}
        ),
        "X-App-Usage": json.dumps({"call_count": 12, "total_cputime": 3, "total_time": 5}),
    }
    seen = {(o.name, o.key): o for o in observe_rate(httpx.Response(200, json={}, headers=headers))}
    assert seen[("pages", PAGE_A)].share == 0.8 and seen[("app", "")].share == 0.12


def test_a_throttled_page_waits_for_its_regain_time(tmp_path):
    with FakeMetaPages(seed=9) as server:
        server.throttle(PAGE_A, times=1, minutes=2)
        _, result, slept = run(tmp_path, server, instagram_account_ids=[])
        refused = [r for r in server.requests if PAGE_A in r.path]
    assert result.ok and 120.0 in slept  # estimated_time_to_regain_access: 2 minutes
    assert len(refused) == 2  # the refused call and its retry


def test_a_spent_daily_budget_stops_cleanly_with_status_quota(tmp_path):
    # 2 calls a day per Page: the third is refused until the oldest call is 24 h old — not retried
    # as transient until the run gives up, but stopped, the window left for the next run.
    with FakeMetaPages(seed=10, calls_per_day=2) as server:
        _, result, _ = run(tmp_path, server, instagram_account_ids=[], days_per_request=10)
    (stream,) = result.streams
    assert stream.status == "quota" and "80001" in (stream.error or "")


def test_invalid_token_is_one_line_without_the_token(tmp_path):
    with FakeMetaPages(seed=11) as server:
        _, result, _ = run(tmp_path, server, access_token="EAAwrongToken999999")
    for stream in result.streams:
        assert "Invalid OAuth access token" in (stream.error or "") and "after 1 attempt" in (stream.error or "")
        assert "EAAwrongToken999999" not in (stream.error or "")


def test_settings_name_what_is_wrong():
    from kpihub.testing import build_source_settings

    cls = MetaPagesSource.settings_class
    with pytest.raises(Exception, match="not numeric"):
        build_source_settings("meta_pages", cls, {"access_token": "t", "page_ids": ["nordlys"]})
    with pytest.raises(Exception, match="give page_ids, instagram_account_ids or both"):
        build_source_settings("meta_pages", cls, {"access_token": "t"})
    with pytest.raises(Exception, match="'likes' is not one of"):
        build_source_settings(
            "meta_pages", cls, {"access_token": "t", "page_ids": ["1"], "facebook_metrics": {"likes": "x"}}
        )
    with pytest.raises(Exception, match="not a Graph API version"):
        build_source_settings("meta_pages", cls, {"access_token": "t", "page_ids": ["1"], "api_version": "25"})


def test_doctor_knows_the_versions_sunsets():
    from kpihub_meta_pages.graph import diagnose_version

    assert diagnose_version("v25.0", dt.date(2026, 12, 4)).level == "ok"
    assert diagnose_version("v21.0", dt.date(2026, 12, 4)).level == "warn"  # stops 2027-01-21
    assert diagnose_version("v20.0", dt.date(2026, 12, 4)).level == "error"  # stopped 2026-09-24
    assert diagnose_version("v19.0", dt.date(2026, 12, 4)).level == "error"


def _month(p: Any, kpi_id: str, month: dt.date) -> float | None:
    catalog = Registry(load_entrypoints=False).kpis
    nxt = (month + dt.timedelta(days=32)).replace(day=1)
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        return engine.series(catalog[kpi_id], grain="month", start=month, end=nxt).values().get(month)


def test_social_kpis_by_hand_from_the_fakes_data(tmp_path):
    start, end = dt.date(2026, 3, 1), dt.date(2026, 4, 30)
    with FakeMetaPages(seed=12, start=start, end=end) as server:
        p, result, _ = run(tmp_path, server, start_date=start.isoformat())
    assert result.ok, [s.error for s in result.streams]
    march = [start + dt.timedelta(days=i) for i in range(31)]
    fb = [server.facebook[page][d] for page in (PAGE_A, PAGE_B) for d in march]
    ig = [server.ig[IG][d] for d in march]
    engaged = sum(v["page_post_engagements"] for v in fb) + sum(v["total_interactions"] for v in ig)
    seen = sum(v["page_media_view"] for v in fb) + sum(v["views"] for v in ig)
    assert _month(p, "social_engagement_rate", start) == pytest.approx(engaged / seen)
    # Followers on the month's last day: both Pages' totals on 31 March (never a sum over days);
    # Instagram has no daily total, so it adds nothing rather than something wrong.
    last = dt.date(2026, 3, 31)
    followers = sum(server.facebook[page][last]["page_follows"] for page in (PAGE_A, PAGE_B))
    assert _month(p, "social_followers", start) == followers


def test_plan_counts_one_request_per_90_page_days_and_per_instagram_day():
    from kpihub import PlanContext
    from kpihub.testing import build_source_settings

    settings = build_source_settings(
        "meta_pages",
        MetaPagesSource.settings_class,
        {"access_token": "t", "page_ids": [PAGE_A, PAGE_B], "instagram_account_ids": [IG], "start_date": "2026-06-01"},
    )
    now = dt.datetime(2026, 12, 4, 12, tzinfo=dt.timezone.utc)
    fb, ig = MetaPagesSource().streams(settings)
    days = (now.date() - dt.date(2026, 6, 1)).days  # 186: through yesterday (Pacific), today is not over
    page_plan = fb.estimate(PlanContext(source_id="meta_pages", stream=fb.name, settings=settings, state=None, now=now))
    assert page_plan.request_count == 2 * 3 and page_plan.records == 2 * days  # 90 + 90 + 6 days per Page
    ig_plan = ig.estimate(PlanContext(source_id="meta_pages", stream=ig.name, settings=settings, state=None, now=now))
    assert ig_plan.request_count == days and ig_plan.mode == "window"


def test_both_streams_are_described_for_kpihub_plugins_and_the_catalogues_fed_by():
    from click.testing import CliRunner

    from kpihub.testing import cli

    # With no settings (as `kpihub plugins` and `kpis --list` ask), both streams and their table show.
    source = MetaPagesSource()
    names = [s.name for s in source.streams(source.settings_class.model_construct())]
    assert names == ["facebook_daily", "instagram_daily"]
    listing = CliRunner().invoke(cli, ["kpis", "--list", "--format", "json"])
    assert listing.exit_code == 0, listing.output
    (followers,) = [k for k in json.loads(listing.output) if k["kpi"] == "social_followers"]
    assert "meta_pages" in followers["fed_by"].split(", ")


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def test_quiet_days_months_old_are_rows_of_zeros_without_notes(tmp_path):
    # The Page and the account were quiet after 30 April: Meta answers those days with zeros (and
    # the Page's unchanged follower total), not with nothing, so they are rows and nothing is noted.
    start, end = dt.date(2026, 3, 1), dt.date(2026, 4, 30)
    with FakeMetaPages(seed=13, start=start, end=end) as server:
        p, result, _ = run(tmp_path, server, start_date="2026-04-20")
        asked = [r for r in server.requests if r.path.endswith("/insights")]
    assert result.ok, [s.error for s in result.streams]
    assert [s.notes for s in result.streams] == [[], []]
    social = {(r["platform"], r["account_id"], r["date"]): r for r in rows(p, "social_daily")}
    yesterday = pacific_today() - dt.timedelta(days=1)
    for day in _days(end + dt.timedelta(days=1), yesterday):
        for page in (PAGE_A, PAGE_B):
            row = social[("facebook", page, day)]
            assert (row["impressions"], row["reach"], row["engagements"]) == (0, 0, 0)
            assert row["followers"] == server.facebook[page][end]["page_follows"]
        row = social[("instagram", IG, day)]
        assert (row["impressions"], row["reach"], row["engagements"], row["followers"]) == (0, 0, 0, None)
    # Meta answers complete Pacific days only: today is never asked for, so never missing.
    assert max(d for (_, _, d) in social) == yesterday
    ig_days = {dt.datetime.fromtimestamp(int(r.query["since"]), PACIFIC).date() for r in asked if IG in r.path}
    assert max(ig_days) == yesterday


def test_only_days_meta_has_not_published_yet_are_noted_as_not_yet(tmp_path):
    with FakeMetaPages(seed=14) as server:
        server.published_through = server.last_day - dt.timedelta(days=1)  # yesterday is not out yet
        before = server.first_day - dt.timedelta(days=3)  # 3 days before the Page and account had insights
        p, result, _ = run(tmp_path, server, start_date=before.isoformat())
    assert result.ok, [s.error for s in result.streams]
    fb, ig = (_counted(s.notes) for s in result.streams)
    late = "Meta has not published insights for {} yet (up to 48 hours late): no rows, read again next sync"
    old = "Meta sent no insights for {} on days older than 48 hours: no rows (it keeps none for them)"
    for page in (PAGE_A, PAGE_B):
        assert fb[f"facebook_daily: {late.format(f'page {page}')}"] == 1  # yesterday
        assert fb[f"facebook_daily: {old.format(f'page {page}')}"] == 3
    assert ig == {
        f"instagram_daily: {late.format(f'account {IG}')}": 1,
        f"instagram_daily: {old.format(f'account {IG}')}": 3,
    }
    loaded = {r["date"] for r in rows(p, "social_daily")}
    assert min(loaded) == server.first_day and max(loaded) == server.last_day - dt.timedelta(days=1)


def _counted(notes: list[str]) -> dict[str, int]:
    """A stream's notes as message -> count (the summary writes ``message (n)`` for n > 1)."""
    import re

    out = {}
    for note in notes:
        m = re.fullmatch(r"(.*) \((\d+)\)", note)
        out[m[1] if m else note] = int(m[2]) if m else 1
    return out


def test_demo_syncs_without_notes_and_its_targets_start_from_the_combined_q1(tmp_path):
    # The demo syncs 2026-01-01 to today; the business's Page and account are quiet after 30 June.
    linkedin = pytest.importorskip("kpihub_linkedin_pages")
    import duckdb
    import pyarrow as pa
    from kpihub_meta_pages.fake import demo_spec

    spec = MetaPagesSource().demo()
    assert spec is not None and spec.server is not None
    with spec.server as server:
        p = TestMetaPagesConformance().pipeline(tmp_path, {**spec.settings, "base_url": server.url})
        result = p.sync()
    assert result.ok and [s.notes for s in result.streams] == [[], []], [s.notes for s in result.streams]
    with p.open_destination(read_only=True) as session:
        meta = session.read_table("social_daily")
    assert max(meta["date"].to_pylist()) == pacific_today() - dt.timedelta(days=1)
    # 2026-Q1 of Meta Page + Instagram + the LinkedIn demo page, through the KPI engine. LinkedIn's
    # rows as it served the quarter (its rolling 12 months reached it when the baseline was set).
    li = linkedin.LinkedInPagesSource().demo()
    (org,) = li.settings["organization_ids"]
    con = duckdb.connect()
    con.register("meta", meta)
    con.register("li", pa.Table.from_batches([li.server.social_daily(org, dt.date(2026, 1, 1), dt.date(2026, 6, 30))]))
    columns = "date, platform, account_id, impressions, reach, engagements, followers"
    con.execute(
        f"CREATE TABLE social_daily AS SELECT source_id, {columns} FROM meta"
        f" UNION ALL SELECT 'linkedin_pages', {columns} FROM li"
    )
    catalog = Registry(load_entrypoints=False).kpis
    engine = KPIEngine(con, catalog=catalog)
    q1, q2 = dt.date(2026, 1, 1), dt.date(2026, 4, 1)
    rate, followers = (
        engine.series(catalog[k], grain="quarter", start=q1, end=dt.date(2026, 7, 1)).values()
        for k in ("social_engagement_rate", "social_followers")
    )
    platforms = con.execute("SELECT DISTINCT platform FROM social_daily").fetchall()
    assert {p for (p,) in platforms} == {"facebook", "instagram", "linkedin"}
    targets = {t["kpi"]: t for t in spec.targets}
    engagement, follows = targets["social_engagement_rate"], targets["social_followers"]
    assert engagement["period"] == follows["period"] == "2026-Q2"
    assert engagement["baseline"] == round(rate[q1] * 100, 2) and follows["baseline"] == followers[q1]
    # A little better than the baseline: within reach of a quarter's noise, not a leap.
    assert engagement["baseline"] < engagement["target"] <= engagement["baseline"] * 1.1
    assert follows["baseline"] < follows["target"] <= follows["baseline"] * 1.1
    assert 0.035 < rate[q2] < 0.055 and followers[q2] > followers[q1]  # Q2 in the range designed
    assert demo_spec(scale=3).targets[1]["baseline"] == 3 * follows["baseline"]  # counts scale with --scale
