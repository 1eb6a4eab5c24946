"""The Google Ads connector against a fake searchStream API and token endpoint on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from kpihub_google_ads import GoogleAdsSettings, GoogleAdsSource
from kpihub_google_ads.fake import FakeGoogleAds
from kpihub_google_ads.source import retry_delay

from kpihub.testing import build_source_settings
from kpihub.testing.conformance import SourceConformance

ACCOUNTS = ["123-456-7890", "2345678901", "3456789012"]


class TestGoogleAdsConformance(SourceConformance):
    source = GoogleAdsSource()
    rate_limited_path = r"searchStream$"

    def make_server(self) -> FakeGoogleAds:
        return FakeGoogleAds(seed=3, start=dt.date(2026, 5, 1), chunk_rows=200)

    def settings(self, server) -> dict:
        return {
            "base_url": server.url,
            "token_url": f"{server.url}/token",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "refresh_token": server.refresh_token,
            "developer_token": server.developer_token,
            "customer_ids": ACCOUNTS,
            "start_date": "2026-05-01",
            "requests_per_second": None,
            "lookback_days": 3,
        }

    def change_data(self, server) -> None:
        # inside lookback_days=3: late conversions, invalid clicks; a dropped row must go
        server.restate(days=2, fraction=0.3, drop=1)


def helper() -> TestGoogleAdsConformance:
    return TestGoogleAdsConformance()


def sync(tmp_path, server, **overrides):
    c = helper()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def test_rows_map_micros_and_missing_metrics(tmp_path):
    with FakeGoogleAds(start=dt.date(2026, 6, 1), chunk_rows=50) as server:
        p, result, _ = sync(tmp_path, server, start_date="2026-06-01")
        assert result.ok, result.streams[0].error
        requests = [r for r in server.requests if r.path.endswith("googleAds:searchStream")]
        rows = {
            (r["account_id"], r["campaign_id"], r["date"]): r
            for r in p.open_destination(read_only=True).read_table("ad_performance_daily").to_pylist()
        }
        expected = [(cid, src) for cid, data in server.rows.items() for src in data]
    assert {r.header("developer-token") for r in requests} == {server.developer_token}
    assert {r.path for r in requests} == {f"/v26/customers/{c}/googleAds:searchStream" for c in server.rows}
    assert len(rows) == len(expected)
    for cid, src in expected:
        row = rows[(cid, src["campaign"]["id"], dt.date.fromisoformat(src["date"]))]
        assert row["spend"] == Decimal(src["costMicros"]) / 1_000_000  # micros -> money
        assert row["impressions"] == src["impressions"]  # "0" was left out on the wire: 0
        assert row["conversions"] == src["conversions"]
        assert row["currency"] == src["customer"]["currencyCode"] and row["platform"] == "google_ads"
        assert row["time_zone"] == src["customer"]["timeZone"]


def test_lookback_window_is_reread_without_duplicates(tmp_path):
    with FakeGoogleAds(start=dt.date(2026, 6, 1)) as server:
        p, first, _ = sync(tmp_path, server, start_date="2026-06-01", lookback_days=5)
        server.requests.clear()
        _, second, _ = sync(tmp_path, server, start_date="2026-06-01", lookback_days=5)
        query = server.requests[-1].json()["query"]
        with p.open_destination(read_only=True) as s:
            table = s.read_table("ad_performance_daily")
    assert "BETWEEN '2026-06-25' AND" in query  # cursor 2026-06-30 minus 5 days
    assert 0 < second.streams[0].records < first.streams[0].records
    keys = {(r["account_id"], r["campaign_id"], r["date"]) for r in table.to_pylist()}
    assert len(keys) == table.num_rows == first.streams[0].records


def test_quota_error_waits_for_retry_delay(tmp_path):
    with FakeGoogleAds(start=dt.date(2026, 6, 20)) as server:
        server.fail(status=429, body=server.quota_exhausted(45), path="searchStream$", times=1)
        _, result, slept = sync(tmp_path, server, start_date="2026-06-20")
    assert result.ok and slept == [45.0]
    assert retry_delay(server.quota_exhausted(45)) == 45.0


def test_expired_access_token_is_refreshed_once(tmp_path):
    with FakeGoogleAds(start=dt.date(2026, 6, 20)) as server:
        server.expire_tokens()
        p, result, _ = sync(tmp_path, server, start_date="2026-06-20", max_concurrency=1)
        assert result.ok
        tokens_before = len([r for r in server.requests if r.path == "/token"])
        server.expire_tokens()  # every token issued so far is now invalid: the next call gets 401
        _, again, _ = sync(tmp_path, server, start_date="2026-06-20", max_concurrency=1)
        tokens_after = len([r for r in server.requests if r.path == "/token"])
    assert again.ok and tokens_before >= 1 and tokens_after > tokens_before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"developer_token": "devtok-wrong-9999"}, "HTTP 401: Request had invalid authentication credentials."),
        (
            {"refresh_token": "1//revoked-0000"},
            "refused the refresh token: HTTP 400: Token has been expired or revoked.",
        ),
        ({"customer_ids": ["9999999999"]}, "HTTP 403: User doesn't have permission to access customer 9999999999."),
    ],
)
def test_auth_errors_are_one_line_without_secrets(tmp_path, overrides, message):
    with FakeGoogleAds(start=dt.date(2026, 6, 20)) as server:
        _, result, _ = sync(tmp_path, server, start_date="2026-06-20", **overrides)
    error = result.streams[0].error
    assert message in error and "\n" not in error
    for secret in ("devtok-wrong-9999", "1//revoked-0000", server.client_secret):
        assert secret not in error


def test_customer_ids_are_validated():
    with pytest.raises(Exception, match="customer id '12345' is not 10 digits"):
        build_source_settings(
            "google_ads",
            GoogleAdsSettings,
            {
                "client_id": "x",
                "client_secret": "y",
                "refresh_token": "z",
                "developer_token": "d",
                "customer_ids": ["12345"],
            },
        )


def test_fixture_stream_maps_micros_and_missing_metrics():
    import json
    from pathlib import Path

    from kpihub_google_ads.source import PERFORMANCE, CampaignPerformance

    from kpihub.testing import Normalizer

    chunks = json.loads((Path(__file__).parent / "fixtures" / "search_stream.json").read_text())
    records = [r for chunk in chunks for r in chunk.get("results", [])]
    normalizer = Normalizer("campaign_performance", PERFORMANCE, primary_key=("customer_id", "campaign_id", "date"))
    batch = normalizer.to_batch(records)
    assert not normalizer.drift
    rows = CampaignPerformance("campaign_performance", PERFORMANCE).to_canonical(batch, None).to_pylist()  # type: ignore[arg-type]
    brand, generic = rows
    assert (
        brand["spend"] == Decimal("143.5") and brand["clicks"] == 93 and brand["conversion_value"] == Decimal("1980.5")
    )
    assert (generic["impressions"], generic["clicks"], generic["spend"], generic["conversions"]) == (12, 0, 0, 0.0)
    assert brand["currency"] == "NOK" and brand["time_zone"] == "Europe/Oslo" and brand["date"] == dt.date(2024, 6, 14)


def test_rows_without_customer_take_the_id_from_the_request(tmp_path):
    # The customer id is in the URL (/v21/customers/{id}/googleAds:searchStream); currency and
    # time zone then come from the customer resource itself.
    with FakeGoogleAds(start=dt.date(2026, 6, 20), omit=("customer",)) as server:
        p, result, _ = sync(tmp_path, server, start_date="2026-06-20")
        expected = {(c, r["campaign"]["id"], r["date"]): r for c, data in server.rows.items() for r in data}
    assert result.ok, result.streams[0].error
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("ad_performance_daily").to_pylist()
    assert len(rows) == len(expected)
    for row in rows:
        src = expected[(row["account_id"], row["campaign_id"], row["date"].isoformat())]
        assert (row["currency"], row["time_zone"]) == (src["customer"]["currencyCode"], src["customer"]["timeZone"])


def test_the_fake_returns_only_selected_fields():
    import httpx

    with FakeGoogleAds(start=dt.date(2026, 6, 29)) as server:
        grant = {"grant_type": "refresh_token", "refresh_token": server.refresh_token}
        token = httpx.post(f"{server.url}/token", data={**grant, "client_secret": server.client_secret}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "developer-token": server.developer_token}
        query = (
            "SELECT campaign.id, metrics.cost_micros FROM campaign "
            "WHERE segments.date BETWEEN '2026-06-29' AND '2026-06-29'"
        )
        (chunk,) = httpx.post(
            f"{server.url}/v21/customers/1234567890/googleAds:searchStream", json={"query": query}, headers=headers
        ).json()
    assert chunk["fieldMask"] == "campaign.id,metrics.costMicros"
    for row in chunk["results"]:
        assert set(row) <= {"campaign", "metrics"} and set(row["campaign"]) == {"resourceName", "id"}


def test_restate_can_drop_a_row_of_a_restated_day():
    with FakeGoogleAds(start=dt.date(2026, 6, 1)) as server:
        count = {cid: len(rows) for cid, rows in server.rows.items()}
        change = server.restate(days=2, fraction=0.5, drop=1)
        keys = {(cid, r["campaign"]["id"], r["date"]) for cid, rows in server.rows.items() for r in rows}
    assert {cid: len(rows) for cid, rows in server.rows.items()} == count  # one added, one dropped each
    assert len(change["dropped"]) == len(server.rows) and not keys & set(change["dropped"])
    assert set(change["added"]) <= keys and {d for *_, d in change["dropped"]} <= {"2026-06-29", "2026-06-30"}


ACCOUNT_GAQL = (
    "SELECT customer.id, metrics.impressions, metrics.clicks, metrics.cost_micros, segments.date "
    "FROM customer WHERE segments.date BETWEEN '2026-06-25' AND '2026-06-30'"
)


def test_the_fakes_account_report_is_the_sum_of_its_campaign_rows():
    import httpx

    with FakeGoogleAds(start=dt.date(2026, 6, 20)) as server:
        grant = {"grant_type": "refresh_token", "refresh_token": server.refresh_token}
        token = httpx.post(f"{server.url}/token", data={**grant, "client_secret": server.client_secret}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "developer-token": server.developer_token}
        url = f"{server.url}/v21/customers/2345678901/googleAds:searchStream"
        (chunk,) = httpx.post(url, json={"query": ACCOUNT_GAQL}, headers=headers).json()
        rows = [r for r in server.rows["2345678901"] if "2026-06-25" <= r["date"] <= "2026-06-30"]
    results = chunk["results"]
    assert [r["segments"]["date"] for r in results] == [f"2026-06-{d}" for d in range(25, 31)]  # a row per date
    assert {r["customer"]["resourceName"] for r in results} == {"customers/2345678901"}
    for name, key in (("impressions", "impressions"), ("clicks", "clicks"), ("costMicros", "costMicros")):
        assert sum(int(r["metrics"].get(name, "0")) for r in results) == sum(r[key] for r in rows)  # int64 strings


def test_loaded_rows_are_reconciled_with_the_account_report(tmp_path):
    with FakeGoogleAds(start=dt.date(2026, 6, 20)) as server:
        p, result, _ = sync(tmp_path / "ok", server, start_date="2026-06-20")
        assert result.ok and not result.streams[0].reconciliation, result.streams[0].error
        queries = [r.json()["query"] for r in server.requests if r.path.endswith("searchStream")]
        assert sum("FROM customer WHERE segments.date BETWEEN '2026-06-20' AND '" in q for q in queries) == 3
        server.totals_bias = 2  # the account report holds 2 impressions, 2 clicks and 2.00 of cost the rows do not
        _, off, _ = sync(tmp_path / "off", server, start_date="2026-06-20")
    (stream,) = off.streams
    assert stream.status == "mismatch"
    assert "impressions (customer_id=1234567890): loaded " in stream.error and "the platform says" in stream.error
    found = {(m["column"], m["scope"]): m for m in stream.reconciliation}
    for cid in ACCOUNTS:
        cid = cid.replace("-", "")
        for column in ("impressions", "clicks"):
            m = found[(column, f"customer_id={cid}")]
            assert m["expected"] - m["loaded"] == 2
        cost = found[("cost_micros", f"customer_id={cid}")]
        assert cost["expected"] - cost["loaded"] == 2_000_000  # micros: 2.00 in the account currency
    assert not any(column == "conversions" for column, _ in found)  # not reconciled: campaign goals may differ


def test_doctor_says_when_the_api_version_is_sunset():
    import datetime as dt

    from kpihub_google_ads.source import GoogleAdsSettings
    from kpihub_google_ads.versions import diagnose

    today = dt.date(2026, 12, 4)
    sunset = diagnose("v21", today)  # Google: "v21 will sunset on August 5, 2026"
    assert sunset.level == "error" and "sunset on 2026-08-05" in sunset.message and "'v26'" in sunset.message
    assert diagnose("v23", today).level == "warn"  # projected February 2027: within 60 days
    assert diagnose("v24", today).level == "ok" and diagnose("v30", today).level == "ok"
    assert diagnose("v12", today).level == "error" and diagnose("21", today).level == "error"
    default = GoogleAdsSettings.model_fields["api_version"].default
    assert diagnose(default, today).level == "ok"
