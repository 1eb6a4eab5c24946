"""The rate budget, measured by counts on a simulated clock (no timing): shared by every stream of a
source, the platform's window is spent (≥ 95 %) with no failed request and < 1 % of requests answered
429; a quota that will not come back within the run is a QuotaExhaustedError at once, never 12 s of retries."""

from __future__ import annotations

import threading

import pytest
from kpihub_google_ads import GoogleAdsSource
from kpihub_google_ads.fake import FakeGoogleAds
from kpihub_hubspot import HubSpotSource
from kpihub_hubspot.fake import FakeHubSpot, HubSpotLimits
from kpihub_meta_ads.fake import FakeMetaAds
from kpihub_meta_ads.source import throttle

from kpihub.errors import QuotaExhaustedError
from kpihub.http import BearerAuth, Requester
from kpihub.http.quota import Limit, RequestBudget, SimulatedClock


def hubspot_requester(server: FakeHubSpot, clock: SimulatedClock) -> Requester:
    source = HubSpotSource()
    settings = source.settings_class(base_url=server.url, token=server.token)
    budget = RequestBudget(source.rate_limits(settings), observe=source.observe_rate, clock=clock, sleep=clock.sleep)
    return Requester(
        source_id="hubspot",
        base_url=server.url,
        auth=BearerAuth(settings.token),
        classify=source.classify,
        budget=budget,
        sleep=clock.sleep,
    )


def test_streams_sharing_one_budget_spend_the_ten_second_window(tmp_path):
    """Four 'streams' (threads) read 600 pages through HubSpot's 100-per-10 s window together."""
    clock = SimulatedClock()
    limits = HubSpotLimits(clock=clock, burst=100)
    failures: list[BaseException] = []
    with FakeHubSpot(contacts=10, limits=limits) as server, hubspot_requester(server, clock) as http:

        def stream() -> None:
            try:
                for _ in range(150):
                    http.json("GET", "/crm/v3/objects/contacts", params={"limit": 10})
            except BaseException as exc:  # noqa: BLE001 - counted, the assertion names it
                failures.append(exc)

        start = clock()
        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = clock() - start
    sent = limits.served + limits.refused
    # Every 10 s the run waited through was spent: it took no longer than the budget forces.
    used = limits.served / (100 * (elapsed / 10))
    assert failures == [] and limits.served == 600
    assert limits.refused / sent < 0.01
    assert used >= 0.95, (limits.served, elapsed)


def test_a_throttle_longer_than_the_run_allows_is_a_quota_at_once():
    """Meta: estimated_time_to_regain_access of 60 minutes is more than max_retry_after: no retries."""
    clock = SimulatedClock()
    with FakeMetaAds() as server:
        server.fail(status=400, body=server.throttle_body(), headers=server.usage_header(60), times=5)
        budget = RequestBudget([Limit("calls", None, 3600.0)], clock=clock, sleep=clock.sleep)
        with (
            Requester(
                source_id="meta_ads", base_url=server.url, classify=throttle, budget=budget, sleep=clock.sleep
            ) as http,
            pytest.raises(QuotaExhaustedError) as info,
        ):
            http.json("GET", "/v21.0/act_101010101/insights", stream="insights")
    assert clock.slept == [] and "after 1 attempt" in str(info.value)
    assert info.value.resets_at is not None and "UTC" in info.value.resets


def test_a_google_ads_quota_with_a_day_long_retry_delay_is_a_quota_at_once():
    clock = SimulatedClock()
    with FakeGoogleAds() as server:
        server.fail(status=429, body=server.quota_exhausted(86_400), times=5)
        with (
            Requester(
                source_id="google_ads",
                base_url=server.url,
                classify=GoogleAdsSource.classify,
                sleep=clock.sleep,
            ) as http,
            pytest.raises(QuotaExhaustedError, match="more than max_retry_after"),
        ):
            http.json("POST", "/v18/customers/1234567890/googleAds:searchStream", json={"query": "x"})
    assert clock.slept == []


def test_a_request_is_admitted_only_with_the_room_the_platform_says_it_needs():
    """Shopify admits a query with its requested cost free and charges less: the budget books what a
    query cost but sends the next one only when what it asks for is free, or Shopify refuses it."""
    import httpx

    from kpihub.http.quota import Observation

    clock = SimulatedClock()
    said = [Observation("points", limit=1000, seconds=20, remaining=900, cost=100, needs=800)]
    budget = RequestBudget([Limit("points", 1000, 20)], observe=lambda _: said, clock=clock, sleep=clock.sleep)
    url = "https://shop.example/admin/api/2026-10/graphql.json"
    budget.release(budget.acquire("POST", url), httpx.Response(200))
    points = budget.window("points")
    assert points.used(budget.now()) == 100  # booked at what it cost
    budget.acquire("POST", url)  # 800 free: sent, and held at 800 while in flight
    assert points.used(budget.now()) == 900
    # A third query must wait for the one in flight: 100 free is not the 800 it asks for.
    assert points.wait(budget.now(), points.admit) == float("inf")
