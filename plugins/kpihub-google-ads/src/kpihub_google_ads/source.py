"""The Google Ads connector: daily campaign performance through ``googleAds:searchStream``.

One GAQL query per customer account and date window; accounts are read in
parallel under ``max_concurrency``. Each sync re-reads ``lookback_days``
before its cursor because conversions are attributed to past days as they
arrive; rows merge on (customer, campaign, date), so re-reads never duplicate.
Each account's rows are reconciled with its account-level report for the same
days (impressions, clicks, cost): a difference ends the stream ``mismatch``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr, field_validator

from kpihub import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    HTTPError,
    PlanContext,
    Requests,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
    ad_performance_batch,
    interleave,
)
from kpihub.http import Limit, OAuthRefreshToken, Requester
from kpihub_google_ads import quota
from kpihub_google_ads.quota import retry_delay

__all__ = ["GoogleAdsSettings", "GoogleAdsSource", "retry_delay"]

GAQL = (
    "SELECT customer.id, customer.currency_code, customer.time_zone, campaign.id, campaign.name, segments.date, "
    "metrics.impressions, metrics.clicks, metrics.cost_micros, metrics.conversions, metrics.conversions_value "
    "FROM campaign WHERE segments.date BETWEEN '{start}' AND '{end}' ORDER BY segments.date"
)
#: The account itself, for rows that come without their ``customer`` object.
CUSTOMER_GAQL = "SELECT customer.id, customer.currency_code, customer.time_zone FROM customer"
#: The account-level report for the same days, to reconcile the campaign rows with.
#:
#: ``FROM customer`` is the account report (the Google Ads API team: "the equivalent for the
#: ACCOUNT_PERFORMANCE_REPORT is the Customer view", mail-archive.com/adwords-api@googlegroups.com/
#: msg94799.html; whose metrics are the account's, "matching with the metrics on the Campaign tab",
#: …/msg61130.html). Segmented by date like the campaign
#: query, so both count the same days in the account's time zone; rows whose metrics are all zero
#: are left out of both (developers.google.com/google-ads/api/docs/reporting/zero-metrics), which
#: changes no sum. Conversions are not compared: ``metrics.conversions`` counts the conversion
#: actions of each campaign's goals, and a campaign may have goals of its own instead of the
#: account's (developers.google.com/google-ads/api/docs/conversions/goals/campaign-goals).
ACCOUNT_GAQL = (
    "SELECT customer.id, metrics.impressions, metrics.clicks, metrics.cost_micros, segments.date "
    "FROM customer WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
#: Raw columns reconciled, and the account report's metric each is compared with (int64: JSON strings).
RECONCILED = {"impressions": "impressions", "clicks": "clicks", "cost_micros": "costMicros"}


class GoogleAdsSettings(SourceSettings):
    """``[sources.google_ads]``: OAuth client, refresh token, developer token, accounts."""

    base_url: str = "https://googleads.googleapis.com"
    #: The API version in the URL; ``kpihub doctor`` says when it is sunset (kpihub_google_ads.versions).
    api_version: str = "v26"
    token_url: str = "https://oauth2.googleapis.com/token"
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    developer_token: SecretStr
    #: Manager account the accounts are reached through (digits; dashes allowed).
    login_customer_id: str | None = None
    #: Accounts to read (``123-456-7890`` or ``1234567890``).
    customer_ids: list[str] = Field(min_length=1)
    #: Days before the last synced day that every sync reads again (late conversions).
    lookback_days: int = Field(default=14, ge=0, le=90)
    #: Accounts read at once.
    max_concurrency: int = Field(default=4, ge=1, le=16)
    #: The developer token's operations per sliding 24 hours by its access level (basic: 15000;
    #: explorer: 2880 on production accounts), spent proactively; unset for standard access
    #: (unlimited), and a refusal is honoured either way.
    daily_operations: int | None = Field(default=None, ge=1)

    @field_validator("customer_ids")
    @classmethod
    def _digits(cls, ids: list[str]) -> list[str]:
        cleaned = [i.replace("-", "").strip() for i in ids]
        bad = [i for i in cleaned if not re.fullmatch(r"\d{10}", i)]
        if bad:
            raise ValueError(f"customer id {bad[0]!r} is not 10 digits")
        return cleaned

    @field_validator("login_customer_id")
    @classmethod
    def _login_digits(cls, value: str | None) -> str | None:
        return value.replace("-", "").strip() if value else value


def _f(name: str, type_: pa.DataType, path: str, wire: str | None = None, minimum: str | None = None) -> pa.Field:
    meta = {"path": path, **({"wire": wire} if wire else {}), **({"minimum": minimum} if minimum else {})}
    return pa.field(name, type_, metadata=meta)


PERFORMANCE = pa.schema(
    [
        _f("customer_resource_name", pa.string(), "customer.resourceName"),
        _f("customer_id", pa.string(), "customer.id"),
        _f("currency_code", pa.string(), "customer.currencyCode"),
        _f("time_zone", pa.string(), "customer.timeZone"),
        _f("campaign_resource_name", pa.string(), "campaign.resourceName"),
        _f("campaign_id", pa.string(), "campaign.id"),
        _f("campaign_name", pa.string(), "campaign.name"),
        _f("date", pa.date32(), "segments.date"),
        # int64 metrics arrive as JSON strings, doubles as numbers.
        _f("impressions", pa.int64(), "metrics.impressions", "string", minimum="0"),
        _f("clicks", pa.int64(), "metrics.clicks", "string", minimum="0"),
        _f("cost_micros", pa.int64(), "metrics.costMicros", "string", minimum="0"),
        _f("conversions", pa.float64(), "metrics.conversions"),
        _f("conversions_value", pa.float64(), "metrics.conversionsValue"),
    ]
)


def _results(chunks: Any) -> Iterator[list[dict[str, Any]]]:
    """The rows of each searchStream chunk (a stream with no rows has a chunk without ``results``)."""
    for chunk in chunks if isinstance(chunks, list) else [chunks]:
        if chunk.get("results"):
            yield chunk["results"]


def _has_customer(row: Mapping[str, Any]) -> bool:
    customer = row.get("customer") or {}
    return all(customer.get(k) for k in ("id", "currencyCode", "timeZone"))


def _customer(ctx: StreamContext[GoogleAdsSettings], url: str, cid: str) -> dict[str, Any]:
    """The account's id, currency and time zone, for rows that lack them.

    A row carries only what the query selected (developers.google.com/google-ads/api/docs/query/structure)
    and leaves out fields at their proto3 default (protobuf.dev/programming-guides/json), and bodies
    have been seen without ``customer``; the id is the one in the request URL
    (``/v{N}/customers/{customer_id}/googleAds:searchStream``), the rest comes from the customer resource.
    """
    found = {"id": cid}
    for results in _results(ctx.http.json("POST", url, stream=ctx.stream, json={"query": CUSTOMER_GAQL})):
        found.update({k: v for k, v in (results[0].get("customer") or {}).items() if k != "id"})
    return found


def _expect_account_totals(ctx: StreamContext[GoogleAdsSettings], url: str, cid: str, query: str) -> None:
    """The account report's impressions, clicks and cost (micros) over the days just read, for the
    engine to reconcile this account's campaign rows with (a metric at 0 is left out of the JSON)."""
    totals = dict.fromkeys(RECONCILED, 0)
    for results in _results(ctx.http.json("POST", url, stream=ctx.stream, json={"query": query})):
        for row in results:
            metrics = row.get("metrics") or {}
            for column, metric in RECONCILED.items():
                totals[column] += int(metrics.get(metric) or 0)
    for column, total in totals.items():
        ctx.expect_total(column, total, where={"customer_id": cid})


class CampaignPerformance(Stream[GoogleAdsSettings]):
    def read(
        self, ctx: StreamContext[GoogleAdsSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        settings = ctx.settings
        start, today = ctx.report_window(state, lookback_days=settings.lookback_days, start_date=settings.start_date)
        days = {"start": start.isoformat(), "end": today.isoformat()}
        accounts = [self._account(ctx, settings, cid, days) for cid in settings.customer_ids]
        yield from interleave(accounts, max_workers=settings.max_concurrency)

    @staticmethod
    def _account(
        ctx: StreamContext[GoogleAdsSettings], settings: GoogleAdsSettings, cid: str, days: Mapping[str, str]
    ) -> Iterator[list[Any]]:
        url = f"/{settings.api_version}/customers/{cid}/googleAds:searchStream"
        account: dict[str, Any] = {}
        for results in _results(ctx.http.json("POST", url, stream=ctx.stream, json={"query": GAQL.format(**days)})):
            if any(not _has_customer(row) for row in results) and not account:
                account = _customer(ctx, url, cid)
            yield [
                row if _has_customer(row) else {**row, "customer": {**account, **(row.get("customer") or {})}}
                for row in results
            ]
        _expect_account_totals(ctx, url, cid, ACCOUNT_GAQL.format(**days))

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[GoogleAdsSettings]) -> pa.RecordBatch:
        micros = pc.cast(pc.fill_null(batch.column("cost_micros"), 0), pa.decimal128(20, 0))
        spend = pc.multiply(micros, pa.scalar(Decimal("0.000001"), pa.decimal128(7, 6)))  # micros -> money
        return ad_performance_batch(
            platform="google_ads",
            date=batch.column("date"),
            time_zone=batch.column("time_zone"),
            account_id=batch.column("customer_id"),
            campaign_id=batch.column("campaign_id"),
            campaign_name=batch.column("campaign_name"),
            impressions=batch.column("impressions"),
            clicks=batch.column("clicks"),
            spend=spend,
            conversions=batch.column("conversions"),
            conversion_value=batch.column("conversions_value"),
            currency=batch.column("currency_code"),
        )

    def estimate(self, plan: PlanContext[GoogleAdsSettings]) -> Estimate:
        """Per account two searchStream requests, whatever the rows (a stream has no pages): the
        window's campaign rows and the account's totals."""
        s = plan.settings
        since, until = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        days, per_day = (until - since).days + 1, plan.records_per_day()
        rows = None if per_day is None else math.ceil(per_day * days)
        path = f"/{s.api_version}/customers/{{}}/googleAds:searchStream"
        requests = tuple(Requests(2, path.format(cid), "POST") for cid in s.customer_ids)
        basis = f"{days} days × {len(s.customer_ids)} account(s), 2 searchStream requests each"
        return Estimate("window", since, until, requests, rows, False, basis)


class GoogleAdsSource(Source[GoogleAdsSettings]):
    """Google Ads (OAuth refresh token + developer token)."""

    name = "google_ads"
    title = "Google Ads"
    settings_class = GoogleAdsSettings

    def streams(self, settings: GoogleAdsSettings) -> list[Stream[GoogleAdsSettings]]:
        return [
            CampaignPerformance(
                "campaign_performance",
                PERFORMANCE,
                primary_key=("customer_id", "campaign_id", "date"),
                cursor_field="date",
                canonical_table="ad_performance_daily",
                reconcile_by=("customer_id",),
            )
        ]

    def auth(self, settings: GoogleAdsSettings) -> httpx.Auth:
        return OAuthRefreshToken(
            settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
        )

    def headers(self, settings: GoogleAdsSettings) -> dict[str, str]:
        headers = {"developer-token": settings.developer_token.get_secret_value()}
        if settings.login_customer_id:
            headers["login-customer-id"] = settings.login_customer_id
        return headers

    classify = staticmethod(quota.classify)
    observe_rate = staticmethod(quota.observe_rate)

    def rate_limits(self, settings: GoogleAdsSettings) -> list[Limit]:
        """Requests per minute per customer and developer token, operations per 24 hours (:mod:`.quota`)."""
        return quota.rate_limits(settings.daily_operations)

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_google_ads.fake import FakeGoogleAds

        b = DEMO_BUSINESS
        server = FakeGoogleAds(
            seed=seed,
            start=b.start,
            end=b.end,
            accounts={"1234567890": (b.currency, b.time_zone)},
            campaign_names=[c.name for c in b.campaigns_on("google_ads")],
        )
        settings = {
            "token_url": "{base_url}/token",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "refresh_token": server.refresh_token,
            "developer_token": server.developer_token,
            "customer_ids": ["1234567890"],
            "start_date": b.start.isoformat(),
            "requests_per_second": None,
        }
        return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)

    def diagnose(self, settings: GoogleAdsSettings, http: Requester | None) -> list[Diagnosis]:
        """Is ``api_version`` still served (offline, from Google's sunset dates)?"""
        from kpihub_google_ads.versions import diagnose

        return [diagnose(settings.api_version, dt.date.today())]

    def check(self, settings: GoogleAdsSettings, http: Requester) -> CheckResult:
        day = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
        try:
            for cid in settings.customer_ids:
                url = f"/{settings.api_version}/customers/{cid}/googleAds:searchStream"
                http.json("POST", url, stream="check", json={"query": GAQL.format(start=day, end=day)})
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        except Exception as exc:  # the token endpoint refused (OAuthError) or the like
            return CheckResult(False, str(exc).splitlines()[0])
        return CheckResult(True, f"connected to {len(settings.customer_ids)} Google Ads account(s)")


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "ctr", "period": "2026-Q2", "baseline": 2.44, "target": 2.6},
    {"kpi": "cpc", "period": "2026-Q2", "baseline": 1.14, "target": 1.05},
    {"kpi": "roas", "period": "2026-Q2", "baseline": 4.0, "target": 4.4},
]
