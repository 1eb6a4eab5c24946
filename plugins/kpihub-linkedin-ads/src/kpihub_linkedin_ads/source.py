"""The LinkedIn Ads connector: daily campaign analytics (``/rest/adAnalytics``) per ad account.

Analytics rows carry campaign URNs; each account's campaigns are listed once
per sync to resolve them to names. The endpoint does not paginate and caps a
response (15,000 elements), so each account is read in windows of
``window_days``. Dates are UTC days. Each account's rows are reconciled with its
``pivot=ACCOUNT`` analytics over the same days (impressions, clicks, cost): a
difference ends the stream ``mismatch``.
"""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr, field_validator

from kpihub import (
    MONEY,
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
from kpihub.http import BearerAuth, PageTokenPaginator, Requester

FIELDS = (
    "dateRange,pivotValues,impressions,clicks,costInLocalCurrency,externalWebsiteConversions,"
    "conversionValueInLocalCurrency"
)
#: A row without ``costInLocalCurrency`` has no reported cost: its spend is unknown, not 0.
#: (adAnalytics returns the metrics projected with ``fields=`` that it has for a row; cost is a
#: decimal string in the account currency: learn.microsoft.com/en-us/linkedin/marketing/
#: integrations/ads-reporting/ads-reporting and …/ads-reporting-schema.)
UNCOSTED = "rows without costInLocalCurrency: spend stored as null"
#: Raw columns reconciled with the account's own analytics, and the metric each is compared with.
#: ``pivot=ACCOUNT`` is the same analytics finder grouped by account, ``timeGranularity=ALL`` one
#: result over the whole range (learn.microsoft.com/en-us/linkedin/marketing/integrations/
#: ads-reporting/ads-reporting); only demographic pivots are approximated, so the account's numbers
#: are the campaign rows' sums. Conversions are not compared: with the "Last touch - each
#: campaign" model every campaign with an interaction is credited the conversion
#: (linkedin.com/help/lms/answer/a426349), so campaign rows may add up to more than the account's.
RECONCILED = {"impressions": "impressions", "clicks": "clicks", "cost_in_local_currency": "costInLocalCurrency"}


class LinkedInAdsSettings(SourceSettings):
    """``[sources.linkedin_ads]``: an OAuth access token and the ad accounts."""

    base_url: str = "https://api.linkedin.com"
    access_token: SecretStr
    #: ``LinkedIn-Version`` (YYYYMM); versions are sunset about a year after release.
    api_version: str = "202610"
    account_ids: list[str] = Field(min_length=1)
    lookback_days: int = Field(default=7, ge=0, le=90)
    window_days: int = Field(default=30, ge=1, le=365)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    #: Campaigns per page of the campaign search (``pageSize``; LinkedIn allows up to 1000).
    page_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("account_ids")
    @classmethod
    def _numeric(cls, ids: list[str]) -> list[str]:
        cleaned = [i.strip().rsplit(":", 1)[-1] for i in ids]  # urn:li:sponsoredAccount:123 or 123
        bad = [i for i in cleaned if not i.isdigit()]
        if bad:
            raise ValueError(f"ad account id {bad[0]!r} is not numeric")
        return cleaned


ANALYTICS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("campaign_name", pa.string()),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("impressions", pa.int64(), metadata={"minimum": "0"}),
        pa.field("clicks", pa.int64(), metadata={"minimum": "0"}),
        pa.field("cost_in_local_currency", MONEY, metadata={"minimum": "0"}),
        pa.field("conversions", pa.int64()),
        pa.field("conversion_value_in_local_currency", MONEY),
        pa.field("currency", pa.string()),
    ]
)


def date_range(start: dt.date, end: dt.date) -> str:
    """Rest.li 2.0 ``dateRange`` (structure characters stay unencoded)."""
    return (
        f"(start:(year:{start.year},month:{start.month},day:{start.day}),"
        f"end:(year:{end.year},month:{end.month},day:{end.day}))"
    )


def analytics_url(
    account: str,
    start: dt.date,
    end: dt.date,
    *,
    pivot: str = "CAMPAIGN",
    granularity: str = "DAILY",
    fields: str = FIELDS,
) -> str:
    urn = urllib.parse.quote(f"urn:li:sponsoredAccount:{account}", safe="")
    return (
        f"/rest/adAnalytics?q=analytics&pivot={pivot}&timeGranularity={granularity}&dateRange={date_range(start, end)}"
        f"&accounts=List({urn})&fields={fields}"
    )


def expect_account_totals(ctx: StreamContext[LinkedInAdsSettings], account: str, start: dt.date, end: dt.date) -> None:
    """The account's analytics over the days read, for the engine to reconcile its rows with.

    No activity gives no element (every total 0); a count left out is 0, but a cost left out is
    unknown, so it is not compared (the rows without one are noted already).
    """
    fields = "pivotValues,dateRange," + ",".join(RECONCILED.values())
    url = analytics_url(account, start, end, pivot="ACCOUNT", granularity="ALL", fields=fields)
    elements = ctx.http.json("GET", url, stream=ctx.stream).get("elements") or []
    totals = next((e for e in elements if str((e.get("pivotValues") or [""])[0]).endswith(f":{account}")), {})
    for column, metric in RECONCILED.items():
        if column == "cost_in_local_currency":
            if elements and totals.get(metric) is None:
                continue
            ctx.expect_total(column, Decimal(totals.get(metric) or 0), where={"account_id": account})
        else:
            ctx.expect_total(column, int(totals.get(metric) or 0), where={"account_id": account})


def flatten(element: Mapping[str, Any], account: str, currency: str | None, names: Mapping[str, str]) -> dict[str, Any]:
    """One adAnalytics element as a flat record: URN -> campaign id and name, dateRange -> a date."""
    campaign = str((element.get("pivotValues") or ["?"])[0]).rsplit(":", 1)[-1]
    day = (element.get("dateRange") or {}).get("start") or {}
    return {
        "account_id": account,
        "campaign_id": campaign,
        "campaign_name": names.get(campaign),
        "date": f"{day.get('year'):04d}-{day.get('month'):02d}-{day.get('day'):02d}",
        "impressions": element.get("impressions"),
        "clicks": element.get("clicks"),
        "cost_in_local_currency": element.get("costInLocalCurrency"),
        "conversions": element.get("externalWebsiteConversions"),
        "conversion_value_in_local_currency": element.get("conversionValueInLocalCurrency"),
        "currency": currency,
    }


class CampaignAnalytics(Stream[LinkedInAdsSettings]):
    def read(
        self, ctx: StreamContext[LinkedInAdsSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        since, today = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        accounts = [self._account(ctx, s, acct, since, today) for acct in s.account_ids]
        for rows in interleave(accounts, max_workers=s.max_concurrency):
            # Noted here, in the consuming thread, not in the account workers.
            ctx.note(UNCOSTED, count=sum(r["cost_in_local_currency"] is None for r in rows))
            yield rows

    def estimate(self, plan: PlanContext[LinkedInAdsSettings]) -> Estimate:
        """Per account: the account, its campaign pages (at least the campaigns with rows a day last
        time), one analytics request per ``window_days`` of the window, and the account's totals."""
        s = plan.settings
        since, until = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        days = (until - since).days + 1
        per_day = plan.records_per_day()
        campaigns = None if per_day is None else math.ceil(per_day / len(s.account_ids))
        pages, at_least = plan.pages(campaigns, s.page_size)
        windows = math.ceil(days / s.window_days)
        requests: list[Requests] = []
        for acct in s.account_ids:
            requests += [
                Requests(1, f"/rest/adAccounts/{acct}"),
                Requests(pages, f"/rest/adAccounts/{acct}/adCampaigns"),
                Requests(windows + 1, "/rest/adAnalytics"),  # the windows, then the account's totals
            ]
        rows = None if per_day is None else math.ceil(per_day * days)
        basis = f"{days} days in {windows} window(s) of {s.window_days} × {len(s.account_ids)} account(s)"
        return Estimate("window", since, until, tuple(requests), rows, at_least, basis)

    @staticmethod
    def _account(
        ctx: StreamContext[LinkedInAdsSettings], s: LinkedInAdsSettings, acct: str, since: dt.date, until: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        currency = ctx.http.json("GET", f"/rest/adAccounts/{acct}", stream=ctx.stream).get("currency")
        names: dict[str, str] = {}
        paginator = PageTokenPaginator("elements", token_path="metadata.nextPageToken", param="pageToken")
        query = {"q": "search", "pageSize": s.page_size}
        for _, campaigns in ctx.pages(paginator, "GET", f"/rest/adAccounts/{acct}/adCampaigns", params=query):
            names.update({str(c["id"]): c.get("name") for c in campaigns})
        start = since
        while start <= until:
            end = min(until, start + dt.timedelta(days=s.window_days - 1))
            body = ctx.http.json("GET", analytics_url(acct, start, end), stream=ctx.stream)
            # No activity: no elements (and the paging block is not a cursor to follow).
            rows = [flatten(e, acct, currency, names) for e in body.get("elements") or []]
            if rows:
                yield rows
            start = end + dt.timedelta(days=1)
        expect_account_totals(ctx, acct, since, until)

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[LinkedInAdsSettings]) -> pa.RecordBatch:
        return ad_performance_batch(
            platform="linkedin_ads",
            date=batch.column("date"),
            time_zone="UTC",  # adAnalytics days are UTC
            account_id=batch.column("account_id"),
            campaign_id=batch.column("campaign_id"),
            campaign_name=batch.column("campaign_name"),
            impressions=batch.column("impressions"),
            clicks=batch.column("clicks"),
            spend=batch.column("cost_in_local_currency"),
            conversions=batch.column("conversions"),
            conversion_value=batch.column("conversion_value_in_local_currency"),
            currency=batch.column("currency"),
            omitted_as_zero=("impressions", "clicks", "conversions", "conversion_value"),  # not spend
        )


class LinkedInAdsSource(Source[LinkedInAdsSettings]):
    """LinkedIn Marketing API (ads reporting)."""

    name = "linkedin_ads"
    title = "LinkedIn Ads"
    settings_class = LinkedInAdsSettings

    def streams(self, settings: LinkedInAdsSettings) -> list[Stream[LinkedInAdsSettings]]:
        return [
            CampaignAnalytics(
                "campaign_analytics",
                ANALYTICS,
                primary_key=("account_id", "campaign_id", "date"),
                cursor_field="date",
                canonical_table="ad_performance_daily",
                reconcile_by=("account_id",),
            )
        ]

    def auth(self, settings: LinkedInAdsSettings) -> httpx.Auth:
        return BearerAuth(settings.access_token)

    def headers(self, settings: LinkedInAdsSettings) -> dict[str, str]:
        return {"LinkedIn-Version": settings.api_version, "X-Restli-Protocol-Version": "2.0.0"}

    def diagnose(self, settings: LinkedInAdsSettings, http: Requester | None) -> list[Diagnosis]:
        """Is ``api_version`` still supported: estimated offline from its date, then asked of LinkedIn."""
        from kpihub_linkedin_ads.versions import diagnose

        return [diagnose(settings.api_version, settings.account_ids[0], dt.date.today(), http)]

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_linkedin_ads.fake import FakeLinkedInAds

        b = DEMO_BUSINESS
        server = FakeLinkedInAds(
            seed=seed,
            start=b.start,
            end=b.end,
            accounts={"507123456": b.currency},
            campaign_names=[c.name for c in b.campaigns_on("linkedin_ads")],
        )
        settings = {
            "access_token": server.token,
            "account_ids": ["507123456"],
            "start_date": b.start.isoformat(),
            "requests_per_second": None,
        }
        return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)

    def check(self, settings: LinkedInAdsSettings, http: Requester) -> CheckResult:
        try:
            names = [
                http.json("GET", f"/rest/adAccounts/{a}", stream="check").get("name") for a in settings.account_ids
            ]
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"connected to {', '.join(map(str, names))}")


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "cpm", "period": "2026-Q2", "baseline": 27.8, "target": 27.0},
]
