"""The LinkedIn Pages connector against a fake Community Management API on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from kpihub_linkedin_pages import LinkedInPagesSource
from kpihub_linkedin_pages.fake import FakeLinkedInPages, utc_today
from kpihub_linkedin_pages.source import STATISTICS, PageStatistics, daily_rows, element_day

from kpihub.testing import KPIEngine, Normalizer, Registry
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"


class TestLinkedInPagesConformance(SourceConformance[FakeLinkedInPages]):
    source = LinkedInPagesSource()
    rate_limited_path = r"Statistics$"

    def make_server(self) -> FakeLinkedInPages:
        return FakeLinkedInPages(seed=4, days=120)

    def settings(self, server: FakeLinkedInPages) -> dict[str, Any]:
        return {
            "base_url": server.url,
            "access_token": server.token,
            "organization_ids": ["urn:li:organization:2414183", "5012345"],
            "start_date": (utc_today() - dt.timedelta(days=60)).isoformat(),
            "requests_per_second": None,
            "page_size": 25,  # a sync pages, so data can change between its pages
        }

    def fault_settings(self, server: FakeLinkedInPages) -> dict[str, Any]:
        return {**self.settings(server), "page_size": 7}

    def change_data(self, server: FakeLinkedInPages) -> None:
        server.restate(days=2)  # inside lookback_days=3: late likes and clicks, today's follows

    def live_changes(self, server: FakeLinkedInPages):
        pages = {"n": 0}

        def change(request: Any) -> None:
            # Between every two pages the latest day's interactions are revised; once, on the second
            # page, members follow (the total moves mid-read: that read is repeated). A total that
            # moves on every read gives null followers instead (see the README).
            pages["n"] += 1
            server.restate(days=1, follows=pages["n"] == 2)

        return change


def run(tmp_path: Path, server: FakeLinkedInPages, **overrides: Any):
    c = TestLinkedInPagesConformance()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def rows(p: Any, table: str) -> list[dict[str, Any]]:
    with p.open_destination(read_only=True) as session:
        return session.read_table(table).to_pylist()


def test_restli_requests_and_every_day_mapped(tmp_path: Path) -> None:
    today = utc_today()
    with FakeLinkedInPages(days=40) as server:
        p, result, _ = run(tmp_path, server, start_date=(today - dt.timedelta(days=30)).isoformat())
        stats = [r for r in server.requests if r.path.endswith("Statistics")]
        sizes = [r for r in server.requests if r.path.startswith("/rest/networkSizes/")]
    assert result.ok, result.streams[0].error
    start = (today - dt.timedelta(days=30) - dt.date(1970, 1, 1)).days * 86_400_000
    first = stats[0]
    assert first.raw_query.startswith(
        "q=organizationalEntity&organizationalEntity=urn%3Ali%3Aorganization%3A2414183&timeIntervals="
        f"(timeRange:(start:{start},end:{start + 31 * 86_400_000}),timeGranularityType:DAY)"
    )
    assert first.header("linkedin-version") == "202610" and first.header("x-restli-protocol-version") == "2.0.0"
    assert sizes[0].raw_query == "edgeType=COMPANY_FOLLOWED_BY_MEMBER" and "urn" in sizes[0].path
    social = {(r["account_id"], r["date"]): r for r in rows(p, "social_daily")}
    assert len(social) == 2 * 31
    for (org, day), row in social.items():
        truth = server.days[org][day]
        assert row["platform"] == "linkedin" and row["impressions"] == truth["impressionCount"]
        assert row["reach"] == truth["uniqueImpressionsCount"]
        assert row["engagements"] == sum(truth[k] for k in ("clickCount", "likeCount", "commentCount", "shareCount"))
        assert row["followers"] == server.followers_on(org, day)  # the total walked back, exactly


def test_a_restated_day_is_replaced_not_duplicated(tmp_path: Path) -> None:
    with FakeLinkedInPages(days=30) as server:
        p, first, _ = run(tmp_path, server, start_date=(utc_today() - dt.timedelta(days=20)).isoformat())
        before = {(r["account_id"], r["date"]): r for r in rows(p, "social_daily")}
        changed = server.restate(days=2)
        second = p.sync()
        after = {(r["account_id"], r["date"]): r for r in rows(p, "social_daily")}
    assert first.ok and second.ok, second.streams[0].error
    assert len(after) == len(before) == 2 * 21  # no duplicates
    for org, day in changed:
        truth = server.days[org][day]
        assert after[(org, day)]["impressions"] == truth["impressionCount"] != before[(org, day)]["impressions"]
    for (org, day), row in after.items():
        assert row["followers"] == server.followers_on(org, day)  # history unchanged, today's count moved


def test_followers_are_null_where_linkedin_has_no_gains_yet(tmp_path: Path) -> None:
    today = utc_today()
    with FakeLinkedInPages(days=20) as server:
        server.lag_days = 1  # today's statistics are not processed yet
        p, result, _ = run(tmp_path, server, start_date=(today - dt.timedelta(days=10)).isoformat())
        total = server.total("2414183")
    (stream,) = result.streams
    assert result.ok, stream.error
    social = {r["date"]: r for r in rows(p, "social_daily") if r["account_id"] == "2414183"}
    assert social[today]["followers"] == total and social[today]["impressions"] is None
    assert all(r["followers"] is None for d, r in social.items() if d < today)  # not gains summed as followers
    assert f"followers before {today} stored as null: LinkedIn reports no follower gains for {today} yet" in str(
        stream.drift
    )


def test_a_follow_between_the_reads_is_read_again(tmp_path: Path) -> None:
    with FakeLinkedInPages(days=20) as server:
        follows = {"n": 0}

        def follow(request: Any) -> None:  # a follow lands while the first read is under way
            if follows["n"] == 0:
                follows["n"] += 1
                server.days["2414183"][utc_today()]["organicFollowerGain"] += 1

        server.between_pages(follow, times=1)
        p, result, _ = run(tmp_path, server, start_date=(utc_today() - dt.timedelta(days=10)).isoformat())
        sizes = [r for r in server.requests if r.path.startswith("/rest/networkSizes/")]
    assert result.ok, result.streams[0].error
    assert len(sizes) == 2 + 2 + 2  # before/after, again for the first organization; once more for the second
    for row in rows(p, "social_daily"):
        assert row["followers"] == server.followers_on(row["account_id"], row["date"])


def test_a_start_date_older_than_12_months_is_clamped_with_a_warning(tmp_path: Path) -> None:
    today = utc_today()
    with FakeLinkedInPages(days=400) as server:
        p, result, _ = run(tmp_path, server, start_date=(today - dt.timedelta(days=500)).isoformat(), page_size=1000)
    (stream,) = result.streams
    assert result.ok, stream.error
    first = min(r["date"] for r in rows(p, "social_daily"))
    assert first == today.replace(year=today.year - 1) + dt.timedelta(days=1)
    assert "is before LinkedIn's rolling 12 months of page statistics: read from" in str(stream.drift)


def test_429_with_and_without_retry_after_and_clear_401_403(tmp_path: Path) -> None:
    start = (utc_today() - dt.timedelta(days=5)).isoformat()
    with FakeLinkedInPages(days=10) as server:
        server.fail(status=429, headers={"Retry-After": "3"}, path="ShareStatistics$", times=1)
        server.fail(status=429, path="FollowerStatistics$", times=1)
        _, ok, slept = run(tmp_path / "a", server, start_date=start)
        _, bad, _ = run(tmp_path / "b", server, start_date=start, access_token="AQVwrong-0000")
        _, other, _ = run(tmp_path / "c", server, start_date=start, organization_ids=["999"])
    assert ok.ok and 3.0 in slept and len(slept) == 2
    assert "HTTP 401: Invalid access token" in bad.streams[0].error and "AQVwrong-0000" not in bad.streams[0].error
    assert "HTTP 403: Not enough permissions to access: organizationalEntityShareStatistics" in other.streams[0].error


def test_the_fixture_maps_days_counts_and_never_the_engagement_ratio() -> None:
    shares = json.loads((FIXTURES / "share_statistics_daily.json").read_text())["elements"]
    gains = json.loads((FIXTURES / "follower_statistics_daily.json").read_text())["elements"]
    days = [element_day(e, "page_statistics", "x") for e in shares]
    assert days == [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]

    class Ctx:
        notes: list[str] = []

        def note(self, message: str, count: int = 1) -> None:
            self.notes.append(message)

    records = daily_rows(
        Ctx(),  # type: ignore[arg-type]
        "2414183",
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 2),
        dict(zip(days, shares, strict=True)),
        {element_day(e, "page_statistics", "x"): e for e in gains},
        1210,
    )
    batch = Normalizer("page_statistics", STATISTICS, primary_key=("organization_id", "date")).to_batch(records)
    nov1, nov2 = PageStatistics("page_statistics", STATISTICS).to_canonical(batch, None).to_pylist()  # type: ignore[arg-type]
    assert (nov1["impressions"], nov1["engagements"], nov1["reach"]) == (1200, 31 + 44 + 3 + 2, 810)
    assert nov2["followers"] == 1210 and nov1["followers"] == 1210 - (6 + 1)  # Nov 2 gained 6 organic, 1 paid


def test_engagement_rate_and_followers_through_the_kpi_engine_by_hand(tmp_path: Path) -> None:
    today = utc_today()
    d1, d2 = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    with FakeLinkedInPages(organizations={"2414183": "Kpihub Demo AS"}, days=3) as server:
        server.base["2414183"] = 1000
        series = server.days["2414183"]
        series.clear()
        stats = ("impressionCount", "uniqueImpressionsCount", "clickCount", "likeCount", "commentCount", "shareCount")
        for day, values, gains in (
            (d1, (1000, 700, 10, 20, 5, 5), (2, 1)),  # 40 engagements of 1,000 impressions; +3 followers
            (d2, (500, 400, 4, 4, 1, 1), (5, 0)),  # 10 of 500; +5
            (today, (0, 0, 0, 0, 0, 0), (-1, 0)),  # a quiet day so far; one unfollow
        ):
            series[day] = {
                **dict(zip(stats, values, strict=True)),
                "organicFollowerGain": gains[0],
                "paidFollowerGain": gains[1],
            }
        p, result, _ = run(tmp_path, server, organization_ids=["2414183"], start_date=d1.isoformat())
    assert result.ok, result.streams[0].error
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        end = today + dt.timedelta(days=1)
        rate = engine.series(catalog["social_engagement_rate"], grain="day", start=d1, end=end).values()
        followers = engine.series(catalog["social_followers"], grain="day", start=d1, end=end).values()
    assert rate[d1] == pytest.approx(40 / 1000) and rate[d2] == pytest.approx(10 / 500)
    assert rate[today] is None  # no impressions: a rate of nothing, not 0
    # 1,000 before d1; total now 1,000 + 3 + 5 - 1 = 1,007, walked back: d2 1,008, d1 1,003.
    assert (followers[d1], followers[d2], followers[today]) == (1003, 1008, 1007)


Q1, Q2, Q3 = dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 7, 1)


def quarters(table: Any) -> dict[str, dict[dt.date, float | None]]:
    """``social_engagement_rate`` and ``social_followers`` for 2026-Q1 and Q2 over a ``social_daily`` table."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register("rows", pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table)
    con.execute("CREATE TABLE social_daily AS SELECT 'linkedin_pages' AS source_id, * FROM rows")
    catalog = Registry(load_entrypoints=False).kpis
    engine = KPIEngine(con, catalog=catalog)
    kpis = ("social_engagement_rate", "social_followers")
    return {k: engine.series(catalog[k], grain="quarter", start=Q1, end=Q3).values() for k in kpis}


def test_the_demo_business_page_is_in_the_ranges_designed_and_follows_the_seed() -> None:
    spec = LinkedInPagesSource().demo()
    assert spec is not None and spec.settings["start_date"] == "2026-01-01"
    server = spec.server
    (org,) = spec.settings["organization_ids"]
    days = server.days[org]
    assert min(days) == dt.date(2025, 1, 1) and max(days) == utc_today()
    assert all(not any(days[d].values()) for d in days if d > dt.date(2026, 6, 30))  # a quiet page since: zeros
    got = quarters(server.social_daily(org, dt.date(2025, 12, 1), dt.date(2026, 6, 30)))
    rate, followers = got["social_engagement_rate"], got["social_followers"]
    # 2-6 % interactions a day: about 4 % a quarter; followers from 3,000 gaining ~9 a day.
    assert 0.035 < rate[Q1] < 0.045 and 0.035 < rate[Q2] < 0.045
    assert 6_000 < followers[Q1] < 8_000 and 400 < followers[Q2] - followers[Q1] < 1_200
    weekdays = [days[d]["impressionCount"] for d in days if d <= dt.date(2026, 6, 30) and d.weekday() < 5]
    assert 1_500 < sum(weekdays) / len(weekdays) < 2_000  # ~1,500 a day, more on work days
    again = LinkedInPagesSource().demo().server  # type: ignore[union-attr]
    other = LinkedInPagesSource().demo(seed=8).server  # type: ignore[union-attr]
    assert again.days == server.days and other.days != server.days


def test_the_demo_syncs_what_linkedin_serves_now_without_notes(tmp_path: Path) -> None:
    spec = LinkedInPagesSource().demo()
    assert spec is not None and spec.server is not None
    (org,) = spec.settings["organization_ids"]
    today = utc_today()
    with spec.server as server:
        p = TestLinkedInPagesConformance().pipeline(tmp_path, {**spec.settings, "base_url": server.url})
        result = p.sync()
    (stream,) = result.streams
    assert result.ok, stream.error
    # LinkedIn serves the last 12 months: the demo gets what LinkedIn gives, and says so once
    # 2026-01-01 is older than that (from 2027-01-01 on).
    first = max(Q1, today.replace(year=today.year - 1) + dt.timedelta(days=1))
    clamped = [n for n in stream.notes if "rolling 12 months" in n]
    assert stream.notes == clamped and bool(clamped) == (first > Q1)
    social = {r["date"]: r for r in rows(p, "social_daily")}
    assert min(social) == first and max(social) == today
    for day, row in social.items():
        truth = server.days[org][day]
        assert row["impressions"] == truth["impressionCount"] and row["followers"] == server.followers_on(org, day)
    # Through the KPI engine, the synced quarters are the fake's answers over the days LinkedIn serves.
    with p.open_destination(read_only=True) as session:
        synced = quarters(session.read_table("social_daily").drop_columns(["source_id", "_loaded_at"]))
    assert synced == quarters(server.social_daily(org, first, today))
