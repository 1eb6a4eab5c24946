"""The GA4 connector against a fake Data API and token endpoint on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from kpihub_ga4 import GA4Settings, GA4Source
from kpihub_ga4.fake import FakeGA4
from kpihub_ga4.source import Report, report_schema

from kpihub.testing import Normalizer, build_source_settings
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"


class TestGA4Conformance(SourceConformance):
    source = GA4Source()
    rate_limited_path = r":runReport$"

    def make_server(self) -> FakeGA4:
        return FakeGA4(seed=6, start=dt.date(2026, 5, 1))

    def settings(self, server) -> dict:
        return {
            "base_url": server.url,
            "token_url": f"{server.url}/token",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "refresh_token": server.refresh_token,
            "property_ids": ["properties/312345678", "398765432"],
            "start_date": "2026-06-01",
            "requests_per_second": None,
            "page_size": 150,
            "lookback_days": 2,
        }

    def fault_settings(self, server) -> dict:
        return {**self.settings(server), "page_size": 20}

    def change_data(self, server) -> None:
        # inside lookback_days=2: GA4 finishes processing recent days; a dropped row must go
        server.restate(days=2, fraction=0.3, drop=1)

    def live_changes(self, server):
        # Between report pages: GA4 finishes processing the latest day (rows gain late sessions).
        return lambda request: server.restate(days=1, fraction=0.2)


def run(tmp_path, server, **overrides):
    c = TestGA4Conformance()
    slept: list[float] = []
    p = c.pipeline(tmp_path, {**c.settings(server), **overrides}, sleep=slept.append)
    return p, p.sync(), slept


def test_fixture_page_is_typed_by_metric_headers():
    page = json.loads((FIXTURES / "run_report_page.json").read_text())
    settings = build_source_settings(
        "ga4", GA4Settings, {"client_id": "c", "client_secret": "s", "refresh_token": "r", "property_ids": ["1"]}
    )
    stream = Report("traffic_daily", report_schema(settings), primary_key=("property_id", "date"))
    wire = stream._batch(None, "1", page, page["rows"])  # type: ignore[arg-type]
    batch = (
        Normalizer(stream.name, stream.schema, primary_key=stream.primary_key).normalize(wire).batch
    )  # the engine's cast
    rows = batch.to_pylist()
    assert batch.schema.field("sessions").type == pa.int64()
    assert batch.schema.field("totalRevenue").type == pa.decimal128(38, 9)
    assert rows[0]["date"] == dt.date(2024, 6, 14) and rows[0]["sessionSource"] == "google"
    assert (rows[0]["sessions"], rows[0]["keyEvents"], rows[0]["totalRevenue"]) == (1523, 41.0, Decimal("2314.75"))
    assert rows[1]["date"] == dt.date(2024, 6, 13) and rows[1]["sessionCampaignName"] == "(not set)"
    assert {r["time_zone"] for r in rows} == {"Europe/Oslo"} and {r["currency"] for r in rows} == {"NOK"}


def test_offset_paging_to_row_count_and_canonical_rows(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 1)) as server:
        p, result, _ = run(tmp_path, server, page_size=100, landing_pages=False)
        calls = [r.json() for r in server.requests if r.path.endswith(":runReport")]
        expected = {
            (prop, r["date"], r["sessionSource"], r["sessionMedium"], r["sessionCampaignName"]): r
            for prop, rows in server.rows.items()
            for r in rows
        }
    assert result.ok, result.streams[0].error
    assert result.streams[0].api_total == result.streams[0].records == len(expected)
    offsets = sorted(c["offset"] for c in calls)
    assert offsets[:4] == [0, 0, 100, 100]  # two properties, pages of 100 up to rowCount
    with p.open_destination(read_only=True) as s:
        rows = s.read_table("web_traffic_daily").to_pylist()
    assert len(rows) == len(expected)
    for row in rows:
        src = expected[
            (row["property_id"], row["date"].strftime("%Y%m%d"), row["source"], row["medium"], row["campaign"])
        ]
        assert (row["sessions"], row["engaged_sessions"], row["page_views"]) == (
            src["sessions"],
            src["engagedSessions"],
            src["screenPageViews"],
        )
        assert row["revenue"] == Decimal(str(src["totalRevenue"]))


def test_empty_report_has_no_rows_and_no_row_count(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 2)) as server:
        _, result, _ = run(tmp_path, server, start_date="2030-01-01")
    assert result.ok and [s.records for s in result.streams] == [0, 0]


def test_quota_per_hour_is_retried_per_day_is_not(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 25)) as server:
        server.fail(status=429, path=":runReport$", times=1)
        _, hourly, slept = run(tmp_path / "a", server, start_date="2026-06-25")
        server.fail(status=429, body=server.quota_per_day(), path=":runReport$", times=1)
        _, daily, _ = run(tmp_path / "b", server, start_date="2026-06-25", max_concurrency=1)
    assert hourly.ok and len(slept) == 1
    # One of the two report streams met the daily quota (whichever asked first): it is not retried.
    (error,) = [s.error for s in daily.streams if s.error]
    assert "Exhausted property tokens per day" in error and "after 1 attempt" in error


def test_permission_denied_and_bad_refresh_token(tmp_path):
    with FakeGA4(start=dt.date(2026, 6, 25)) as server:
        _, denied, _ = run(tmp_path / "a", server, property_ids=["111"], start_date="2026-06-25")
        _, refused, _ = run(tmp_path / "b", server, refresh_token="1//revoked", start_date="2026-06-25")
    assert "HTTP 403: User does not have sufficient permissions for this property." in denied.streams[0].error
    assert "refused the refresh token" in refused.streams[0].error and "1//revoked" not in refused.streams[0].error


def test_settings_need_a_date_dimension():
    with pytest.raises(Exception, match="dimensions must include 'date'"):
        build_source_settings(
            "ga4",
            GA4Settings,
            {
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
                "property_ids": ["1"],
                "dimensions": ["sessionSource"],
            },
        )


def _service_account_key(tmp_path, token_uri: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "demo",
                "private_key_id": "abc123",
                "private_key": private,
                "client_email": "kpihub@demo.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return str(path), public


def _trusted_key(server: FakeGA4, tmp_path) -> str:
    """A new service-account key file whose public key the fake trusts."""
    key_file, public = _service_account_key(tmp_path, f"{server.url}/token")
    server.service_account_public_key = public
    return key_file


def _without_oauth(settings: dict) -> dict:
    """Settings with the OAuth client fields taken out (a service account signs in instead)."""
    return {k: v for k, v in settings.items() if k not in ("client_id", "client_secret", "refresh_token")}


def test_service_account_key_file(tmp_path):
    pytest.importorskip("google.auth")
    with FakeGA4(start=dt.date(2026, 6, 25)) as server:
        key_file = _trusted_key(server, tmp_path)
        c = TestGA4Conformance()
        settings = _without_oauth(c.settings(server))
        p = c.pipeline(tmp_path / "ok", {**settings, "credentials_file": key_file, "start_date": "2026-06-25"})
        result = p.sync()
        (tmp_path / "other").mkdir()
        other_key, _ = _service_account_key(tmp_path / "other", f"{server.url}/token")  # a key the server does not know
        bad = c.pipeline(tmp_path / "bad", {**settings, "credentials_file": other_key, "start_date": "2026-06-25"})
        refused = bad.sync()
        grants = [r for r in server.requests if r.path == "/token"]
    assert result.ok, result.streams[0].error
    assert dict(urllib.parse.parse_qsl(grants[0].body.decode()))["grant_type"] == (
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    )
    error = refused.streams[0].error
    assert "refused the service account" in error and "BEGIN PRIVATE KEY" not in error


def _service_account_resync(
    tmp_path, page_size: int, expire_after: tuple[int, ...], token_down: int = 0, properties: int = 2
):
    """A service-account sync's tables and state, clean and then with report requests' tokens revoked
    after ``expire_after`` requests and the token endpoint failing ``token_down`` times; the faults."""
    pytest.importorskip("google.auth")
    with FakeGA4(start=dt.date(2026, 6, 1)) as server:
        key_file = _trusted_key(server, tmp_path)
        c = TestGA4Conformance()
        settings = {**_without_oauth(c.settings(server)), "credentials_file": key_file, "page_size": page_size}
        settings["max_attempts"] = 8
        settings["property_ids"] = settings["property_ids"][:properties]
        clean = c._tables_and_state(tmp_path / "clean", settings, server)
        faults = [server.fail(kind="expire", path=r":runReport$", after=n) for n in expire_after]
        if token_down:
            faults.append(server.fail(status=503, path=r"^/token$", after=1, times=token_down))
        again = c._tables_and_state(tmp_path / "faulty", settings, server, sleep=lambda s: None)
    return clean, again, [f.hits for f in faults]


def test_service_account_survives_expired_tokens_and_a_failing_token_endpoint(tmp_path):
    clean, again, hits = _service_account_resync(tmp_path, 20, (2, 5, 9), token_down=2)
    assert hits == [1, 1, 1, 2] and again == clean


def test_a_token_revoked_again_before_each_retry_is_renewed_each_time(tmp_path):
    # With pages in flight, another request's fault can revoke a token between a renewal and the
    # retry (CI saw a sync fail so). Here one property's one page, refused with each of three tokens.
    # (A fault counts the requests that reach it: one that fires stops the next from seeing the request.)
    clean, again, hits = _service_account_resync(tmp_path, 100_000, (0, 0, 0), properties=1)
    assert hits == [1, 1, 1] and again == clean


def test_auth_settings_are_one_of_two_kinds():
    with pytest.raises(Exception, match="set credentials_file .service account. or client_id"):
        build_source_settings("ga4", GA4Settings, {"property_ids": ["1"]})
    with pytest.raises(Exception, match="not both"):
        build_source_settings(
            "ga4", GA4Settings, {"property_ids": ["1"], "credentials_file": "/k.json", "client_id": "c"}
        )
