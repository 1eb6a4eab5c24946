"""Meta's rate limits, enforced by the fake on a simulated clock: the budget learns each ad account's
hourly calls and score from the usage headers and spends them fully; an hour it may not wait for
stops the stream with status quota, and the next run resumes."""

from __future__ import annotations

import datetime as dt

import httpx
from click.testing import CliRunner
from kpihub_meta_ads import MetaAdsSource
from kpihub_meta_ads.fake import FakeMetaAds, MetaLimits
from kpihub_meta_ads.source import observe_rate

from kpihub.http import SimulatedClock
from kpihub.testing import EXIT_QUOTA, cli, reset_registry
from kpihub.testing.conformance import SourceConformance

ACCOUNT = "101010101"


class _Meta(SourceConformance):  # its helpers only: the suite itself runs in test_meta_ads.py
    __test__ = False
    source = MetaAdsSource()


def pipeline(tmp_path, server, clock, **overrides):
    settings = {
        "base_url": server.url,
        "access_token": server.token,
        "account_ids": [ACCOUNT],
        "start_date": "2026-06-01",
        "page_size": 1,
        "async_after_days": 400,  # GET pages only: every call one insights call
        "max_retry_after": 4_000,  # an hour's calls come back within the run
        **overrides,
    }
    p = _Meta().pipeline(tmp_path, settings, sleep=clock.sleep)
    p.clock = clock
    return p


def table(p):
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    return sorted((tuple(v for k, v in r.items() if "loaded" not in k) for r in rows), key=str)


def used(limits: MetaLimits, account: str, use_case: str, limit: int, seconds: float) -> float:
    """Calls admitted over the most a rolling window of ``limit`` per ``seconds`` admits in that time."""
    times = limits.admitted[(account, use_case)]
    return len(times) / (limit * ((times[-1] - times[0]) / seconds + 1))


def test_a_long_sync_spends_each_accounts_hourly_insights_calls_without_a_throttle(tmp_path):
    clock = SimulatedClock()
    limits = MetaLimits(ads_insights_per_hour=10, clock=clock)
    with FakeMetaAds(start=dt.date(2026, 1, 1), limits=limits) as server:
        accounts = list(server.accounts)
        # One account at a time: the simulated clock is shared, so concurrent sleeps would add up where real
        # ones overlap (each account still spends its own hourly budget, which is what is measured).
        p = pipeline(tmp_path, server, clock, account_ids=accounts, start_date="2026-01-01", max_concurrency=1)
        result = p.sync()
        rows = sum(len(r) for r in server.rows.values())
    assert result.ok, [s.error for s in result.streams]
    assert result.records == rows
    assert limits.refused == 0
    for account in accounts:
        calls = len(limits.admitted[(account, "ads_insights")])
        assert calls >= 300  # ~30 hours of the account's hourly budget
        assert used(limits, account, "ads_insights", 10, 3600) >= 0.95, account


def test_the_ad_account_score_is_learnt_and_spent_too(tmp_path):
    clock = SimulatedClock()
    limits = MetaLimits(ads_insights_per_hour=100_000, max_score=5, clock=clock)
    with FakeMetaAds(start=dt.date(2026, 5, 1), limits=limits) as server:
        p = pipeline(tmp_path, server, clock, start_date="2026-05-01")
        result = p.sync()
    assert result.ok, [s.error for s in result.streams]
    assert limits.refused == 0
    times = sorted(limits.admitted[(ACCOUNT, "ads_insights")] + limits.admitted[(ACCOUNT, "ads_management")])
    assert len(times) >= 100
    assert len(times) / (5 * ((times[-1] - times[0]) / 300 + 1)) >= 0.95


def test_an_hour_spent_by_someone_else_is_shared_not_overrun(tmp_path):
    clock = SimulatedClock()
    limits = MetaLimits(ads_insights_per_hour=10, clock=clock)
    with FakeMetaAds(start=dt.date(2026, 6, 1), limits=limits) as server:
        limits.spend(ACCOUNT, "ads_insights", 5)  # another run of the same app, a moment ago
        result = pipeline(tmp_path, server, clock).sync()
    assert result.ok, [s.error for s in result.streams]
    assert limits.refused == 0


def test_an_hour_the_run_may_not_wait_for_stops_with_quota_and_the_next_run_resumes(tmp_path):
    clock = SimulatedClock()
    limits = MetaLimits(ads_insights_per_hour=10, clock=clock)
    with FakeMetaAds(start=dt.date(2026, 6, 1), limits=limits) as server:
        p = pipeline(tmp_path / "a", server, clock, max_retry_after=300)
        first = p.sync()
        (stream,) = first.streams
        assert stream.status == "quota" and first.quota and not first.ok
        assert "ads_insights" in stream.error and "resets at" in stream.error and "UTC" in stream.error
        assert limits.refused == 0  # the budget stopped before Meta had to throttle
        assert limits.served == 11  # the account, then its hour of insights calls
        # A report window is replaced in one commit (docs/reliability.md): a part of it is not committed.
        assert stream.records == 0 and stream.cursor is None and "no table written" in stream.error
        clock.sleep(3_600)
        limits.ads_insights_per_hour = 10_000
        assert p.sync().ok
        fresh = pipeline(tmp_path / "b", server, clock)
        assert fresh.sync().ok
        assert table(p) == table(fresh)  # resumed: nothing lost, nothing twice


def test_a_throttle_with_a_regain_time_longer_than_the_run_is_a_quota_at_once(tmp_path):
    clock = SimulatedClock()
    limits = MetaLimits(ads_insights_per_hour=10, clock=clock)
    with FakeMetaAds(start=dt.date(2026, 6, 1), limits=limits) as server:
        limits.spend(ACCOUNT, "ads_insights", 10)  # the whole hour spent elsewhere: 60 minutes to regain
        result = pipeline(tmp_path, server, clock, max_retry_after=300).sync()
    (stream,) = result.streams
    assert stream.status == "quota" and "UTC" in stream.error
    assert limits.refused == 1 and clock.slept == []  # not retried


def test_cli_exits_with_the_quota_code_and_says_when_it_resets(tmp_path, monkeypatch):
    reset_registry(_Meta().registry())
    with FakeMetaAds(start=dt.date(2026, 6, 1), limits=MetaLimits(ads_insights_per_hour=3)) as server:
        (tmp_path / "kpihub.toml").write_text(
            f'[project]\ndestination = "duckdb:///meta.duckdb"\n[sources.meta_ads]\nbase_url = "{server.url}"\n'
            f'account_ids = ["{ACCOUNT}"]\nstart_date = "2026-06-01"\npage_size = 1\nasync_after_days = 400\n'
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KPIHUB_META_ADS_ACCESS_TOKEN", server.token)
        result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == EXIT_QUOTA, result.output
    assert "resets at" in result.output and "ads_insights" in result.output
    assert "Error:" not in result.output and server.token not in result.output


def test_usage_headers_are_shares_of_the_accounts_windows():
    buc = '{"101010101": [{"type": "ads_insights", "call_count": 28, "total_cputime": 40, "total_time": 9, '
    buc += '"estimated_time_to_regain_access": 0}]}'
    account = '{"acc_id_util_pct": 9.67, "reset_time_duration": 100, "ads_api_access_tier": "standard_access"}'
    request = httpx.Request("GET", "https://graph.facebook.com/v21.0/act_101010101/insights")
    headers = {"X-Business-Use-Case-Usage": buc, "X-Ad-Account-Usage": account}
    found = [
        (o.name, o.key, o.share, o.wait, o.refused)
        for o in observe_rate(httpx.Response(200, json={}, request=request, headers=headers))
    ]
    assert found == [("ads_insights", ACCOUNT, 0.40, None, False), ("ad_account", ACCOUNT, 0.0967, None, False)]
    error = {"message": "(#80000) There have been too many calls", "code": 80000, "error_subcode": 2446079}
    buc = buc.replace('"call_count": 28', '"call_count": 100').replace('regain_access": 0', 'regain_access": 7')
    headers = {"X-Business-Use-Case-Usage": buc, "X-Ad-Account-Usage": account.replace("9.67", "100")}
    throttled = httpx.Response(400, json={"error": error}, request=request, headers=headers)
    found = [(o.name, o.share, o.wait, o.refused) for o in observe_rate(throttled)]
    assert found == [("ads_insights", 1.0, 420.0, True), ("ad_account", 1.0, 100.0, True)]
