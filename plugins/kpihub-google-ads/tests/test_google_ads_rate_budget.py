"""Google Ads quotas, enforced by the fake on a simulated clock: a short window's size is learnt from
its first refusal and then spent fully; the developer token's operations per 24 hours stop the run
with status quota (from the API's refusal, or before it when the access level is configured), and
the next run resumes."""

from __future__ import annotations

import datetime as dt

import httpx
from click.testing import CliRunner
from kpihub_google_ads import GoogleAdsSource
from kpihub_google_ads.fake import FakeGoogleAds, GoogleAdsQuota
from kpihub_google_ads.quota import classify, observe_rate

from kpihub.http import SimulatedClock
from kpihub.testing import EXIT_QUOTA, cli, reset_registry
from kpihub.testing.conformance import SourceConformance


class _GoogleAds(SourceConformance):  # its helpers only: the suite itself runs in test_google_ads.py
    __test__ = False
    source = GoogleAdsSource()


def accounts(n: int) -> dict[str, tuple[str, str]]:
    return {str(1_000_000_000 + i): ("EUR", "Europe/Oslo") for i in range(n)}


def pipeline(tmp_path, server, clock, **overrides):
    settings = {
        "base_url": server.url,
        "token_url": f"{server.url}/token",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "refresh_token": server.refresh_token,
        "developer_token": server.developer_token,
        "customer_ids": list(server.accounts),
        "start_date": "2026-06-28",
        "max_concurrency": 1,
        **overrides,
    }
    p = _GoogleAds().pipeline(tmp_path, settings, sleep=clock.sleep)
    p.clock = clock
    return p


def table(p):
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    return sorted((tuple(v for k, v in r.items() if "loaded" not in k) for r in rows), key=str)


def test_a_long_sync_learns_the_developer_tokens_minute_and_spends_it(tmp_path):
    clock = SimulatedClock()
    quota = GoogleAdsQuota(requests_per_window=20, clock=clock)
    with FakeGoogleAds(
        start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(400), quota=quota
    ) as server:
        result = pipeline(tmp_path, server, clock, max_concurrency=4).sync()
    assert result.ok, [s.error for s in result.streams]
    assert quota.served == 800 and quota.refused_daily == 0
    # The first minute's refusals say how big the window is (its requests in flight come back
    # refused too); after them, none.
    assert quota.refused_temporarily <= 4 and quota.refused / (quota.served + quota.refused) < 0.01
    elapsed = quota.admitted[-1] - quota.admitted[0]
    assert quota.served / (20 * (elapsed / 60 + 1)) >= 0.95, elapsed


def test_a_customers_minute_is_waited_for_with_its_retry_delay_not_retried_inside(tmp_path):
    clock = SimulatedClock()
    quota = GoogleAdsQuota(account_requests_per_window=1, clock=clock)
    with FakeGoogleAds(
        start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(1), quota=quota
    ) as server:
        result = pipeline(tmp_path, server, clock).sync()
    assert result.ok, [s.error for s in result.streams]
    assert quota.served == 2 and quota.refused_temporarily == 1  # the totals query, once
    assert clock.slept == [60.0]  # Google's retryDelay, not a backoff inside the minute


def test_the_daily_operations_cap_stops_with_quota_and_the_next_day_resumes(tmp_path):
    clock = SimulatedClock()
    quota = GoogleAdsQuota(operations_per_day=11, clock=clock)
    with FakeGoogleAds(
        start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(8), quota=quota
    ) as server:
        p = pipeline(tmp_path / "a", server, clock)
        first = p.sync()
        (stream,) = first.streams
        assert stream.status == "quota" and first.quota and not first.ok
        assert "Number of operations for basic access" in stream.error and "resets at" in stream.error
        assert quota.served == 11 and quota.refused_daily == 1 and clock.slept == []  # never retried
        # A report window is replaced in one commit (docs/reliability.md): a part of it is not committed.
        assert stream.records == 0 and stream.cursor is None and "no table written" in stream.error
        clock.sleep(86_400)  # the sliding day has passed
        quota.operations_per_day = 10_000
        assert p.sync().ok
        fresh = pipeline(tmp_path / "b", server, clock)
        assert fresh.sync().ok
        assert table(p) == table(fresh)  # resumed: nothing lost, nothing twice


def test_a_configured_access_level_stops_before_google_refuses(tmp_path):
    clock = SimulatedClock()
    quota = GoogleAdsQuota(operations_per_day=11, clock=clock)
    with FakeGoogleAds(
        start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(8), quota=quota
    ) as server:
        result = pipeline(tmp_path, server, clock, daily_operations=11).sync()
    (stream,) = result.streams
    assert stream.status == "quota" and "developer token operations per 24 hours" in stream.error
    assert "resets at" in stream.error and quota.served == 11 and quota.refused == 0


def test_a_daily_cap_without_a_retry_delay_is_a_quota_at_once(tmp_path):
    clock = SimulatedClock()
    with FakeGoogleAds(start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(1)) as server:
        details = {"rateScope": "DEVELOPER", "rateName": "Number of operations for basic access"}
        body = server.failure(
            429,
            "RESOURCE_EXHAUSTED",
            "quotaError",
            "RESOURCE_EXHAUSTED",
            "Too many requests.",
            quotaErrorDetails=details,
        )
        server.fail(status=429, body=body, path="searchStream$", times=6)
        result = pipeline(tmp_path, server, clock).sync()
    (stream,) = result.streams
    assert stream.status == "quota" and "within 24 hours" in stream.error
    assert clock.slept == []  # not retried (was: 6 attempts with backoff, then failed)


def test_cli_exits_with_the_quota_code_and_says_when_it_resets(tmp_path, monkeypatch):
    reset_registry(_GoogleAds().registry())
    quota = GoogleAdsQuota(operations_per_day=1)
    with FakeGoogleAds(
        start=dt.date(2026, 6, 28), end=dt.date(2026, 6, 30), accounts=accounts(2), quota=quota
    ) as server:
        (tmp_path / "kpihub.toml").write_text(
            f'[project]\ndestination = "duckdb:///ads.duckdb"\n[sources.google_ads]\nbase_url = "{server.url}"\n'
            f'token_url = "{server.url}/token"\nclient_id = "{server.client_id}"\n'
            f'customer_ids = {list(server.accounts)}\nstart_date = "2026-06-28"\n'
        )
        monkeypatch.chdir(tmp_path)
        for name, value in [
            ("CLIENT_SECRET", server.client_secret),
            ("REFRESH_TOKEN", server.refresh_token),
            ("DEVELOPER_TOKEN", server.developer_token),
        ]:
            monkeypatch.setenv(f"KPIHUB_GOOGLE_ADS_{name}", value)
        result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == EXIT_QUOTA, result.output
    assert "resets at" in result.output and "Number of operations for basic access" in result.output
    assert "Error:" not in result.output and server.developer_token not in result.output


def test_quota_errors_short_ones_wait_long_ones_stop():
    request = httpx.Request("POST", "https://googleads.googleapis.com/v21/customers/1234567890/googleAds:searchStream")

    def refusal(code: str, scope: str, name: str, delay: str | None) -> httpx.Response:
        details = {"rateScope": scope, "rateName": name, **({"retryDelay": delay} if delay else {})}
        error = {
            "errorCode": {"quotaError": code},
            "message": "Too many requests.",
            "details": {"quotaErrorDetails": details},
        }
        failure = {"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure", "errors": [error]}
        body = {
            "error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [failure]}
        }  # Pipedream #21554's shape
        return httpx.Response(429, json=body, request=request)

    daily = refusal("RESOURCE_EXHAUSTED", "DEVELOPER", "Number of operations for basic access", "40591s")
    decision = classify(daily)
    assert decision is not None and not decision.retry and decision.quota is not None
    left = (decision.quota.resets_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 40_500 < left <= 40_591
    ((o),) = observe_rate(daily)
    assert (o.name, o.key, o.refused, o.quota is not None) == ("developer_day", "", True, True)
    minute = refusal("RESOURCE_TEMPORARILY_EXHAUSTED", "ACCOUNT", "Requests per account", "30s")
    assert classify(minute) == classify(minute) and classify(minute).delay == 30.0 and classify(minute).retry
    ((o),) = observe_rate(minute)
    assert (o.name, o.key, o.full, o.refused) == ("account_minute", "1234567890", True, True)
    retry_info = {
        "error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]}
    }
    plain = classify(httpx.Response(429, json=retry_info, request=request))
    assert plain is not None and plain.retry and plain.delay == 26.0
