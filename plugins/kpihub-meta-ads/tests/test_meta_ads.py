"""The Meta Ads connector against a fake Marketing API on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import orjson
import pytest
from kpihub_meta_ads import MetaAdsSettings, MetaAdsSource
from kpihub_meta_ads.fake import FakeMetaAds
from kpihub_meta_ads.source import regain_seconds, throttle

from kpihub.testing import build_source_settings
from kpihub.testing.conformance import SourceConformance


class TestMetaAdsConformance(SourceConformance):
    source = MetaAdsSource()
    rate_limited_path = r"/insights$"

    def make_server(self) -> FakeMetaAds:
        return FakeMetaAds(seed=4, start=dt.date(2026, 5, 15))

    def settings(self, server) -> dict:
        return {
            "base_url": server.url,
            "access_token": server.token,
            "account_ids": ["act_101010101", "202020202"],
            "start_date": "2026-06-01",
            "requests_per_second": None,
            "page_size": 20,
            "poll_seconds": 0.01,
            "lookback_days": 3,
        }

    def fault_settings(self, server) -> dict:
        return {**self.settings(server), "page_size": 5}

    def change_data(self, server) -> None:
        # inside lookback_days=3: late attributed purchases; a dropped row must go
        server.restate(days=2, fraction=0.3, drop=1)

    def live_changes(self, server):
        # Between pages of a report: the platform restates the latest day (late attributions).
        return lambda request: server.restate(days=1, fraction=0.2)


def run(tmp_path, server, **overrides):
    c = TestMetaAdsConformance()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def test_insights_rows_map_to_ad_performance(tmp_path):
    with FakeMetaAds(seed=2, start=dt.date(2026, 6, 1)) as server:
        p, result, _ = run(tmp_path, server)
        requests = [r for r in server.requests if r.path.endswith("/insights")]
        expected = {(a, r["campaign_id"], r["date_start"]): r for a, rows in server.rows.items() for r in rows}
    assert result.ok, result.streams[0].error
    assert requests[0].query["time_increment"] == "1" and requests[0].query["level"] == "campaign"
    assert "access_token" not in requests[0].query  # the token travels in a header
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    assert len(rows) == len(expected)
    for row in rows:
        src = expected[(row["account_id"], row["campaign_id"], row["date"].isoformat())]
        assert row["spend"] == Decimal(src["spend"]) and row["impressions"] == int(src["impressions"])
        purchases = [a for a in src.get("actions", []) if a["action_type"] == "offsite_conversion.fb_pixel_purchase"]
        assert row["conversions"] == (float(purchases[0]["value"]) if purchases else 0.0)
        values = src.get("action_values", [])
        assert row["conversion_value"] == (Decimal(values[0]["value"]) if values else 0)
        assert row["currency"] == src["account_currency"] and row["platform"] == "meta_ads"
        assert row["time_zone"] in ("Europe/Oslo", "Europe/Stockholm")


def test_long_windows_use_an_async_report_run(tmp_path):
    with FakeMetaAds(start=dt.date(2026, 1, 1), polls_until_done=3) as server:
        p, result, slept = run(tmp_path, server, start_date="2026-01-01", async_after_days=31, poll_seconds=2)
        posts = [r for r in server.requests if r.method == "POST"]
        total = sum(len(rows) for rows in server.rows.values())
    assert result.ok and len(posts) == 2  # one report run per account
    assert slept.count(2.0) == 4  # two polls "Job Running" per account, then "Job Completed"
    assert result.streams[0].records == total


def test_throttle_codes_and_usage_header():
    assert regain_seconds('{"1":[{"type":"ads_insights","estimated_time_to_regain_access":3}]}') == 180.0
    server = FakeMetaAds.__new__(FakeMetaAds)
    body = {"error": {"message": "(#80000) There have been too many calls", "type": "OAuthException", "code": 80000}}
    decision = throttle(httpx.Response(400, json=body, headers=FakeMetaAds.usage_header(2)))
    assert decision is not None and decision.retry and decision.delay == 120.0
    assert throttle(httpx.Response(400, json={"error": {"code": 190, "message": "bad token"}})).retry is False
    assert throttle(httpx.Response(400, json={"error": {"code": 17, "is_transient": True}})).retry is True
    del server


def test_throttled_request_waits_and_succeeds(tmp_path):
    with FakeMetaAds(start=dt.date(2026, 6, 20)) as server:
        server.fail(status=400, body=server.throttle_body(), headers=server.usage_header(1), path="/insights$", times=1)
        _, result, slept = run(tmp_path, server, start_date="2026-06-20")
    assert result.ok and 60.0 in slept


def test_invalid_token_is_one_line(tmp_path):
    with FakeMetaAds(start=dt.date(2026, 6, 20)) as server:
        _, result, _ = run(tmp_path, server, access_token="EAAwrongtoken999999")
    error = result.streams[0].error
    assert "HTTP 400: Invalid OAuth access token" in error and "after 1 attempt" in error
    assert "EAAwrongtoken999999" not in error


def test_account_ids_are_validated():
    with pytest.raises(Exception, match="ad account id 'act_x1' is not numeric|'x1' is not numeric"):
        build_source_settings("meta_ads", MetaAdsSettings, {"access_token": "t", "account_ids": ["act_x1"]})


def test_fixture_page_maps_actions_to_conversions():
    import json
    from pathlib import Path

    from kpihub_meta_ads.source import INSIGHTS, Insights

    from kpihub.testing import Normalizer

    page = json.loads((Path(__file__).parent / "fixtures" / "insights_page.json").read_text())
    info = {"currency": "EUR", "timezone_name": "Europe/Oslo"}
    records = [Insights._flatten(r, info, ["offsite_conversion.fb_pixel_purchase"]) for r in page["data"]]
    normalizer = Normalizer("campaign_insights", INSIGHTS, primary_key=("account_id", "campaign_id", "date_start"))
    batch = normalizer.to_batch(records)
    assert not normalizer.drift
    prospecting, retargeting = Insights("campaign_insights", INSIGHTS).to_canonical(batch, None).to_pylist()  # type: ignore[arg-type]
    assert (prospecting["conversions"], prospecting["conversion_value"]) == (2.0, Decimal("119.80"))
    assert prospecting["spend"] == Decimal("14.35") and prospecting["impressions"] == 185
    assert (retargeting["conversions"], retargeting["conversion_value"], retargeting["clicks"]) == (0.0, 0, 0)


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80000, 80004, 80014])
def test_every_documented_throttle_code_is_retried(code):
    decision = throttle(httpx.Response(400, json={"error": {"code": code, "message": f"(#{code}) throttled"}}))
    assert decision is not None and decision.retry


def test_restate_can_drop_a_row_of_a_restated_day():
    with FakeMetaAds(seed=4, start=dt.date(2026, 6, 1)) as server:
        count = {acct: len(rows) for acct, rows in server.rows.items()}
        change = server.restate(days=2, fraction=0.5, drop=1)
        keys = {(a, r["campaign_id"], r["date_start"]) for a, rows in server.rows.items() for r in rows}
    assert {acct: len(rows) for acct, rows in server.rows.items()} == count  # one added, one dropped each
    assert len(change["dropped"]) == len(server.rows) and not keys & set(change["dropped"])
    assert set(change["added"]) <= keys and {d for *_, d in change["dropped"]} <= {"2026-06-29", "2026-06-30"}


def test_the_fakes_account_level_counts_every_campaign_and_campaign_level_hides_deleted_ones():
    with FakeMetaAds(seed=2, start=dt.date(2026, 6, 1)) as server:
        deleted = server.rows["101010101"][0]["campaign_id"]
        server.set_status(deleted, "DELETED")
        window = '{"since":"2026-06-01","until":"2026-06-30"}'
        base = {"time_range": window, "limit": "500"}
        headers = {"Authorization": f"Bearer {server.token}"}
        url = f"{server.url}/v21.0/act_101010101/insights"
        fields = "impressions,clicks,spend"
        account_level = {**base, "level": "account", "fields": fields}
        (account,) = httpx.get(url, params=account_level, headers=headers).json()["data"]
        campaign = {**base, "level": "campaign", "time_increment": "1", "fields": f"campaign_id,{fields}"}
        live = httpx.get(url, params=campaign, headers=headers).json()["data"]
        everything = orjson.dumps([{"field": "ad.effective_status", "operator": "IN", "value": ["ACTIVE", "DELETED"]}])
        every = httpx.get(url, params={**campaign, "filtering": everything.decode()}, headers=headers).json()["data"]
        rows = server.rows["101010101"]
    assert (account["date_start"], account["date_stop"]) == ("2026-06-01", "2026-06-30")  # one row for the range
    assert account["impressions"] == str(sum(int(r["impressions"]) for r in rows))  # strings, as Meta sends them
    assert Decimal(account["spend"]) == sum(Decimal(r["spend"]) for r in rows)
    assert deleted not in {r["campaign_id"] for r in live} and deleted in {r["campaign_id"] for r in every}
    assert sum(int(r["impressions"]) for r in every) == int(account["impressions"])


def test_loaded_rows_are_reconciled_with_account_level_insights(tmp_path):
    with FakeMetaAds(seed=2, start=dt.date(2026, 6, 1)) as server:
        p, result, _ = run(tmp_path / "ok", server)
        assert result.ok and not result.streams[0].reconciliation, result.streams[0].error
        levels = [r.query.get("level") for r in server.requests if r.path.endswith("/insights")]
        assert levels.count("account") == 2  # one per ad account, over the window read
        server.totals_bias = 3  # the account level holds 3 impressions, 3 clicks and 3.00 of spend more
        _, off, _ = run(tmp_path / "off", server)
    (stream,) = off.streams
    assert stream.status == "mismatch"
    assert "impressions (account_id=101010101): loaded " in stream.error and "the platform says" in stream.error
    found = {(m["column"], m["scope"]): m for m in stream.reconciliation}
    for acct in ("101010101", "202020202"):
        for column in ("impressions", "clicks", "spend"):
            m = found[(column, f"account_id={acct}")]
            assert round(m["expected"] - m["loaded"], 2) == 3
    assert not any(column == "conversions" for column, _ in found)  # attribution is per ad set: not compared


def test_rows_of_deleted_and_archived_campaigns_are_read(tmp_path):
    # Their spend is in the account's total: a campaign-level read that leaves them out loses it.
    with FakeMetaAds(seed=2, start=dt.date(2026, 6, 1)) as server:
        campaigns = sorted({r["campaign_id"] for rows in server.rows.values() for r in rows})
        server.set_status(campaigns[0], "DELETED")
        server.set_status(campaigns[1], "ARCHIVED")
        p, result, _ = run(tmp_path, server)
        expected = {(a, r["campaign_id"], r["date_start"]) for a, rows in server.rows.items() for r in rows}
    assert result.ok, result.streams[0].error
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    assert {(r["account_id"], r["campaign_id"], r["date"].isoformat()) for r in rows} == expected


def test_doctor_says_when_the_marketing_api_version_expires():
    import datetime as dt

    from kpihub_meta_ads.source import MetaAdsSettings
    from kpihub_meta_ads.versions import diagnose

    today = dt.date(2026, 12, 4)
    # Meta's Marketing API history: v21.0 expired 2025-09-09 (its Graph API namesake lives to 2027).
    expired = diagnose("v21.0", today)
    assert expired.level == "error" and "expired on 2025-09-09" in expired.message and "'v27.0'" in expired.message
    assert diagnose("v25.0", dt.date(2027, 1, 1)).level == "warn"  # it expires 2027-02-23: 53 days on
    assert diagnose("v25.0", today).level == "ok"  # 81 days on
    assert diagnose("v27.0", today).level == "ok" and diagnose("v30.0", today).level == "ok"
    assert diagnose("v27.0", dt.date(2026, 6, 1)).level == "error"  # not released yet
    assert diagnose("21", today).level == "error" and diagnose("v12.0", today).level == "error"
    # The default is a version Meta serves today, with no expiry announced.
    default = MetaAdsSettings.model_fields["api_version"].default
    assert diagnose(default, today).level == "ok"
