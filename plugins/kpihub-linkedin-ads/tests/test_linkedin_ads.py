"""The LinkedIn Ads connector against a fake Marketing API on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kpihub_linkedin_ads import LinkedInAdsSource
from kpihub_linkedin_ads.fake import FakeLinkedInAds

from kpihub.testing.conformance import SourceConformance


class TestLinkedInAdsConformance(SourceConformance):
    source = LinkedInAdsSource()
    rate_limited_path = r"/adAnalytics$"

    def make_server(self) -> FakeLinkedInAds:
        return FakeLinkedInAds(seed=8, start=dt.date(2026, 5, 1))

    def settings(self, server) -> dict:
        return {
            "base_url": server.url,
            "access_token": server.token,
            "account_ids": ["urn:li:sponsoredAccount:507123456", "508654321"],
            "start_date": "2026-06-01",
            "requests_per_second": None,
            "lookback_days": 3,
        }

    def fault_settings(self, server) -> dict:
        return {**self.settings(server), "page_size": 1, "window_days": 3}

    def change_data(self, server) -> None:
        # inside lookback_days=3: late conversions, invalid clicks; a dropped row must go
        server.restate(days=2, fraction=0.3, drop=1)

    def live_changes(self, server):
        # Between pages: the platform restates the latest day (late conversions, invalid clicks).
        return lambda request: server.restate(days=1, fraction=0.2)


def run(tmp_path, server, **overrides):
    c = TestLinkedInAdsConformance()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def test_restli_request_and_mapping(tmp_path):
    with FakeLinkedInAds(start=dt.date(2026, 4, 1)) as server:
        p, result, _ = run(tmp_path, server, start_date="2026-04-01", window_days=30)
        calls = [r for r in server.requests if r.path == "/rest/adAnalytics"]
        expected = {(a, str(r["campaign"]), r["date"]): r for a, rows in server.rows.items() for r in rows}
        names = {str(cid): name for camps in server.campaigns.values() for cid, name in camps}
    assert result.ok, result.streams[0].error
    # Accounts are read in parallel: pick the first window of the first account.
    first = next(c for c in calls if "507123456" in c.raw_query and "month:4,day:1)" in c.raw_query)
    assert first.raw_query.startswith(
        "q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY&dateRange=(start:(year:2026,"
        "month:4,day:1),end:(year:2026,month:4,day:30))&accounts=List(urn%3Ali%3A"
        "sponsoredAccount%3A507123456)"
    )
    assert first.header("linkedin-version") == "202610" and first.header("x-restli-protocol-version") == "2.0.0"
    assert len(calls) >= 2 * 3  # 91 days in 30-day windows, for each of two accounts
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    assert len(rows) == len(expected)
    for row in rows:
        src = expected[(row["account_id"], row["campaign_id"], row["date"])]
        assert row["spend"] == Decimal(src["cost"]).quantize(Decimal("0.000000001"), rounding="ROUND_DOWN")
        assert row["campaign_name"] == names[row["campaign_id"]]  # the URN resolved to its name
        assert row["time_zone"] == "UTC" and row["platform"] == "linkedin_ads"


def test_daily_throttle_body_is_retried_and_invalid_token_is_not(tmp_path):
    with FakeLinkedInAds(start=dt.date(2026, 6, 25)) as server:
        server.fail(status=429, path="/adAnalytics$", times=1)
        _, ok, slept = run(tmp_path / "a", server, start_date="2026-06-25")
        _, bad, _ = run(tmp_path / "b", server, start_date="2026-06-25", access_token="AQVwrong-0000")
        _, old, _ = run(tmp_path / "c", server, start_date="2026-06-25", api_version="202001")
    assert ok.ok and len(slept) == 1
    assert "HTTP 401: Invalid access token" in bad.streams[0].error and "AQVwrong-0000" not in bad.streams[0].error
    assert "HTTP 426: Requested version 202001 is not active" in old.streams[0].error


def test_fixture_maps_urns_dates_and_long_costs():
    import json
    from pathlib import Path

    from kpihub_linkedin_ads.source import ANALYTICS, CampaignAnalytics, flatten

    from kpihub.testing import Normalizer

    body = json.loads((Path(__file__).parent / "fixtures" / "ad_analytics.json").read_text())
    records = [flatten(e, "507123456", "EUR", {"447712782": "Awareness"}) for e in body["elements"]]
    batch = Normalizer("campaign_analytics", ANALYTICS, primary_key=("account_id", "campaign_id", "date")).to_batch(
        records
    )
    (row,) = CampaignAnalytics("campaign_analytics", ANALYTICS).to_canonical(batch, None).to_pylist()  # type: ignore[arg-type]
    assert row["date"] == dt.date(2024, 6, 1) and row["campaign_id"] == "447712782"
    assert row["campaign_name"] == "Awareness" and row["spend"] == Decimal("107.530000000")
    assert (row["impressions"], row["clicks"], row["conversions"]) == (4392, 67, 3.0)


def test_a_row_without_cost_has_null_spend_and_is_noted(tmp_path):
    with FakeLinkedInAds(start=dt.date(2026, 6, 1), uncosted=0.1) as server:
        p, result, _ = run(tmp_path, server, start_date="2026-06-01")
        sources = {(a, str(r["campaign"]), r["date"]): r for a, rows in server.rows.items() for r in rows}
    uncosted = [key for key, r in sources.items() if r["cost"] is None]
    assert result.ok and uncosted
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    spend = {(r["account_id"], r["campaign_id"], r["date"]): r["spend"] for r in rows}
    assert len(spend) == len(sources)
    assert {key for key, value in spend.items() if value is None} == set(uncosted)  # unknown, not 0
    assert f"rows without costInLocalCurrency: spend stored as null ({len(uncosted)})" in result.streams[0].drift


def test_restate_can_drop_a_row_of_a_restated_day():
    with FakeLinkedInAds(start=dt.date(2026, 6, 1)) as server:
        count = {acct: len(rows) for acct, rows in server.rows.items()}
        change = server.restate(days=2, fraction=0.5, drop=1)
        keys = {(a, str(r["campaign"]), r["date"]) for a, rows in server.rows.items() for r in rows}
    assert {acct: len(rows) for acct, rows in server.rows.items()} == count  # one added, one dropped each
    assert len(change["dropped"]) == len(server.rows) and not keys & set(change["dropped"])
    assert set(change["added"]) <= keys
    assert {d for *_, d in change["dropped"]} <= {dt.date(2026, 6, 29), dt.date(2026, 6, 30)}


def test_the_fakes_account_pivot_is_the_sum_of_its_campaign_rows():
    import httpx

    with FakeLinkedInAds(start=dt.date(2026, 6, 1)) as server:
        headers = {
            "Authorization": f"Bearer {server.token}",
            "LinkedIn-Version": server.version,
            "X-Restli-Protocol-Version": "2.0.0",
        }
        query = (
            "q=analytics&pivot=ACCOUNT&timeGranularity=ALL&dateRange=(start:(year:2026,month:6,day:1),"
            "end:(year:2026,month:6,day:30))&accounts=List(urn%3Ali%3AsponsoredAccount%3A507123456)"
            "&fields=pivotValues,dateRange,impressions,clicks,costInLocalCurrency"
        )
        (element,) = httpx.get(f"{server.url}/rest/adAnalytics?{query}", headers=headers).json()["elements"]
        rows = server.rows["507123456"]
    assert element["pivotValues"] == ["urn:li:sponsoredAccount:507123456"]
    june = {"start": {"year": 2026, "month": 6, "day": 1}, "end": {"year": 2026, "month": 6, "day": 30}}
    assert element["dateRange"] == june
    assert element["impressions"] == sum(r["impressions"] for r in rows) and isinstance(element["clicks"], int)
    assert Decimal(element["costInLocalCurrency"]) == sum(Decimal(r["cost"]) for r in rows)  # a decimal string


def test_loaded_rows_are_reconciled_with_account_analytics(tmp_path):
    with FakeLinkedInAds(start=dt.date(2026, 6, 1)) as server:
        p, result, _ = run(tmp_path / "ok", server, start_date="2026-06-01", window_days=7)
        assert result.ok and not result.streams[0].reconciliation, result.streams[0].error
        pivots = [r.query.get("pivot") for r in server.requests if r.path == "/rest/adAnalytics"]
        assert pivots.count("ACCOUNT") == 2  # one per account over the whole window, beside 7-day campaign reads
        server.totals_bias = 4  # the account pivot holds 4 impressions, 4 clicks and 4.00 of cost more
        _, off, _ = run(tmp_path / "off", server, start_date="2026-06-01", window_days=7)
    (stream,) = off.streams
    assert stream.status == "mismatch"
    assert "impressions (account_id=507123456): loaded " in stream.error and "the platform says" in stream.error
    found = {(m["column"], m["scope"]): m for m in stream.reconciliation}
    for acct in ("507123456", "508654321"):
        for column in ("impressions", "clicks", "cost_in_local_currency"):
            m = found[(column, f"account_id={acct}")]
            assert round(m["expected"] - m["loaded"], 6) == 4
    assert not any(column == "conversions" for column, _ in found)  # "each campaign" attribution: not compared


def test_an_account_cost_linkedin_does_not_know_is_not_reconciled(tmp_path):
    with FakeLinkedInAds(start=dt.date(2026, 6, 1), uncosted=0.1) as server:
        _, result, _ = run(tmp_path, server, start_date="2026-06-01")
    assert result.ok, result.streams[0].error  # impressions and clicks still add up; the cost is unknown


def test_the_default_version_is_one_linkedin_serves_for_months_yet():
    import datetime as dt

    from kpihub_linkedin_ads.source import LinkedInAdsSettings
    from kpihub_linkedin_ads.versions import version_finding

    default = LinkedInAdsSettings.model_fields["api_version"].default
    assert version_finding(default, dt.date(2026, 12, 4)).level == "ok"  # 202406 was sunset about 2025-06-15
    assert version_finding("202406", dt.date(2026, 12, 4)).level == "error"
