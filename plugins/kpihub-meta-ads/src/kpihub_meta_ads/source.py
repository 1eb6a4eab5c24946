"""The Meta Ads connector: daily campaign insights per ad account (sync or async report runs).

Windows up to ``async_after_days`` are read with ``GET act_{id}/insights``;
longer ones start an async report run, poll it and page its rows, as Meta
asks for large requests. Each sync re-reads ``lookback_days`` (attribution
windows revise recent days); rows merge on (account, campaign, date). Rows of
deleted and archived campaigns are asked for too, and each account's rows are
reconciled with its ``level=account`` insights for the same days (impressions,
clicks, spend): a difference ends the stream ``mismatch``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import orjson
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
    SourceError,
    SourceSettings,
    Stream,
    StreamContext,
    ad_performance_batch,
    interleave,
)
from kpihub.http import BearerAuth, Limit, NextLinkPaginator, Observation, Requester, RetryDecision

FIELDS = "account_id,account_currency,campaign_id,campaign_name,impressions,clicks,spend,actions,action_values"
#: The account-level totals the campaign rows are reconciled with (raw column = insights field).
#: Conversions are not compared: each ad set counts them with its own attribution setting.
ACCOUNT_FIELDS = ("impressions", "clicks", "spend")
#: Every effective status of an ad, so that rows of deleted and archived campaigns are read too.
#: Their stats stay in the account's ("we include the stats of all children objects, no matter if
#: the child is active, archived, or deleted"), but ``act_{id}/insights?level=ad`` "does not return
#: stats for the deleted object"; "you can query insights for DELETED objects using the
#: ad.effective_status filter" (developers.facebook.com/documentation/ads-commerce/marketing-api/
#: best-practices/manage-your-ad-object-status). Values: the ad's effective_status enum (ibid.,
#: and the list used in github.com/facebook/facebook-python-business-sdk/issues/292).
AD_STATUSES = (
    "ACTIVE",
    "PAUSED",
    "DELETED",
    "ARCHIVED",
    "PENDING_REVIEW",
    "DISAPPROVED",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
    "CAMPAIGN_PAUSED",
    "ADSET_PAUSED",
    "IN_PROCESS",
    "WITH_ISSUES",
)
EVERY_STATUS = orjson.dumps([{"field": "ad.effective_status", "operator": "IN", "value": list(AD_STATUSES)}]).decode()
#: Error codes Meta uses for throttling (rate-limiting docs; Airbyte's facebook-marketing tests).
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
#: The rate windows of each ad account (developers.facebook.com/docs/graph-api/overview/rate-limiting,
#: .../docs/marketing-apis/rate-limiting): its business use cases per rolling hour (insights calls,
#: and the account object itself) and its API-level score per 300 s. Their sizes grow with the
#: account's active ads and are not sent: the budget learns them from the usage percentages.
ACCOUNT_LIMITS = (
    Limit("ads_insights", None, 3600.0, path=r"/act_(\d+)/insights$"),
    Limit("ads_management", None, 3600.0, path=r"/act_(\d+)$"),
    Limit("ad_account", None, 300.0, path=r"/act_(\d+)(?:/|$)"),
)


class MetaAdsSettings(SourceSettings):
    """``[sources.meta_ads]``: a system-user access token and the ad accounts."""

    base_url: str = "https://graph.facebook.com"
    #: The Marketing API version in the URL; ``kpihub doctor`` says when it expires (kpihub_meta_ads.versions).
    api_version: str = "v26.0"
    access_token: SecretStr
    #: Ad account ids (``act_123`` or ``123``).
    account_ids: list[str] = Field(min_length=1)
    #: Action types counted as conversions (their ``action_values`` are the conversion value).
    conversion_action_types: list[str] = Field(default_factory=lambda: ["offsite_conversion.fb_pixel_purchase"])
    #: Days before the last synced day that every sync reads again (attribution windows).
    lookback_days: int = Field(default=28, ge=0, le=90)
    #: Windows longer than this many days use an async report run.
    async_after_days: int = Field(default=31, ge=1)
    poll_seconds: float = Field(default=5.0, gt=0)
    max_polls: int = Field(default=120, ge=1)
    page_size: int = Field(default=500, ge=1, le=5000)
    max_concurrency: int = Field(default=4, ge=1, le=16)

    @field_validator("account_ids")
    @classmethod
    def _strip_act(cls, ids: list[str]) -> list[str]:
        cleaned = [i.strip().removeprefix("act_") for i in ids]
        bad = [i for i in cleaned if not i.isdigit()]
        if bad:
            raise ValueError(f"ad account id {bad[0]!r} is not numeric")
        return cleaned


TS = pa.timestamp("us", tz="UTC")
INSIGHTS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("account_currency", pa.string()),
        pa.field("time_zone", pa.string()),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("campaign_name", pa.string()),
        pa.field("date_start", pa.date32(), nullable=False),
        pa.field("date_stop", pa.date32()),
        pa.field("impressions", pa.int64(), metadata={"wire": "string", "minimum": "0"}),
        pa.field("clicks", pa.int64(), metadata={"wire": "string", "minimum": "0"}),
        pa.field("spend", MONEY, metadata={"minimum": "0"}),
        pa.field("conversions", pa.float64(), metadata={"wire": "string"}),
        pa.field("conversion_value", MONEY),
    ]
)


def throttle(response: httpx.Response) -> RetryDecision | None:
    """Meta throttles with HTTP 400 and an error code; the usage headers say how long."""
    try:
        error = orjson.loads(response.content).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if _throttled(response.status_code, error):
        wait = regain_seconds(response.headers.get("X-Business-Use-Case-Usage"))
        return RetryDecision(True, wait or account_reset_seconds(response.headers), "throttled")
    if response.status_code >= 500 or error.get("code") in (1, 2):
        return RetryDecision(True, None, "transient")
    return RetryDecision(False)


def _throttled(status: int, error: Mapping[str, Any]) -> bool:
    return error.get("code") in THROTTLE_CODES or status == 429 or bool(error.get("is_transient") and status < 500)


def _header_json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def regain_seconds(header: str | None) -> float | None:
    """``estimated_time_to_regain_access`` (minutes) from X-Business-Use-Case-Usage, in seconds."""
    usage = _header_json(header)
    if not isinstance(usage, dict):
        return None
    entries = [e for v in usage.values() if isinstance(v, list) for e in v if isinstance(e, dict)]
    minutes = max((e.get("estimated_time_to_regain_access") or 0 for e in entries), default=0)
    return minutes * 60.0 if minutes else None


def account_reset_seconds(headers: httpx.Headers) -> float | None:
    """X-Ad-Account-Usage's ``reset_time_duration`` (seconds) once the account's score is spent."""
    usage = _header_json(headers.get("X-Ad-Account-Usage"))
    if not isinstance(usage, dict) or float(usage.get("acc_id_util_pct") or 0) < 100:
        return None
    return float(usage.get("reset_time_duration") or 0) or None


def observe_rate(response: httpx.Response) -> list[Observation]:
    """The usage headers, as shares of the ad account's windows (:data:`ACCOUNT_LIMITS`).

    ``X-Business-Use-Case-Usage`` gives per business object (the ad account) and use case the
    percentages of the hour's ``call_count``, ``total_cputime`` and ``total_time`` (Meta throttles
    when one reaches 100) and the minutes until a throttled account regains access;
    ``X-Ad-Account-Usage`` the account's score (``acc_id_util_pct``) and, spent, when it resets.
    """
    refused = False
    if response.status_code >= 400:
        try:
            error = orjson.loads(response.content).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        refused = isinstance(error, dict) and _throttled(response.status_code, error)
    out = []
    try:
        for key, entries in (_header_json(response.headers.get("X-Business-Use-Case-Usage")) or {}).items():
            for e in entries:
                share = max(float(e.get(k) or 0) for k in ("call_count", "total_cputime", "total_time")) / 100
                minutes = float(e.get("estimated_time_to_regain_access") or 0)
                wait = minutes * 60 if minutes > 0 else None
                out.append(Observation(str(e["type"]), str(key), share=share, wait=wait, refused=refused))
        account = re.search(r"/act_(\d+)", response.request.url.path)
        usage = _header_json(response.headers.get("X-Ad-Account-Usage"))
        if account and isinstance(usage, dict):
            pct = float(usage.get("acc_id_util_pct") or 0)
            wait = account_reset_seconds(response.headers) if refused else None
            out.append(Observation("ad_account", account.group(1), share=pct / 100, wait=wait, refused=refused))
    except (AttributeError, KeyError, TypeError, ValueError):
        pass  # a header that is not the documented shape says nothing
    return out


class Insights(Stream[MetaAdsSettings]):
    def read(
        self, ctx: StreamContext[MetaAdsSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        since, today = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        accounts = [self._account(ctx, s, acct, since, today) for acct in s.account_ids]
        yield from interleave(accounts, max_workers=s.max_concurrency)

    def _account(
        self, ctx: StreamContext[MetaAdsSettings], s: MetaAdsSettings, acct: str, since: dt.date, until: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        base = f"/{s.api_version}"
        info = ctx.http.json(
            "GET", f"{base}/act_{acct}", stream=ctx.stream, params={"fields": "currency,timezone_name"}
        )
        time_range = orjson.dumps({"since": since.isoformat(), "until": until.isoformat()}).decode()
        params = {
            "fields": FIELDS,
            "level": "campaign",
            "time_increment": "1",
            "time_range": time_range,
            "filtering": EVERY_STATUS,
            "limit": str(s.page_size),
        }
        url = f"{base}/act_{acct}/insights"
        if (until - since).days + 1 > s.async_after_days:
            url = self._run_report(ctx, s, url, params)
            params = {"limit": str(s.page_size)}
        read = 0
        for _, rows in ctx.pages(NextLinkPaginator("data"), "GET", url, params=params):
            read += len(rows)
            yield [self._flatten(r, info, s.conversion_action_types) for r in rows]
        self._expect_account_totals(ctx, f"{base}/act_{acct}/insights", acct, time_range, read)

    @staticmethod
    def _expect_account_totals(
        ctx: StreamContext[MetaAdsSettings], url: str, acct: str, time_range: str, rows: int
    ) -> None:
        """The ad account's own insights over the same days, for the engine to reconcile its rows with.

        ``level=account`` without ``time_increment`` is one row for the whole range (no delivery,
        no row: every total is 0). Spend strings carry cents, so the rows may each be half a cent
        off what they add up to: allowed, per row read.
        """
        params = {"level": "account", "fields": ",".join(ACCOUNT_FIELDS), "time_range": time_range}
        data = ctx.http.json("GET", url, stream=ctx.stream, params=params).get("data") or [{}]
        totals = data[0]
        for field in ACCOUNT_FIELDS:
            value = Decimal(totals.get(field) or 0)
            tolerance = 0.005 * (rows + 1) if field == "spend" else None
            ctx.expect_total(field, value, where={"account_id": acct}, tolerance=tolerance)

    @staticmethod
    def _run_report(ctx: StreamContext[MetaAdsSettings], s: MetaAdsSettings, url: str, params: dict[str, str]) -> str:
        run = ctx.http.json("POST", url, stream=ctx.stream, params=params)["report_run_id"]
        for _ in range(s.max_polls):
            status = ctx.http.json("GET", f"/{s.api_version}/{run}", stream=ctx.stream)
            state = status.get("async_status")
            if state == "Job Completed":
                return f"/{s.api_version}/{run}/insights"
            if state in ("Job Failed", "Job Skipped"):
                raise SourceError(
                    f"{ctx.source_id}/{ctx.stream}: async report {run} ended as {state!r}",
                    source=ctx.source_id,
                    stream=ctx.stream,
                )
            ctx.http.wait(s.poll_seconds)
        raise SourceError(
            f"{ctx.source_id}/{ctx.stream}: async report {run} not done after {s.max_polls} polls",
            source=ctx.source_id,
            stream=ctx.stream,
        )

    @staticmethod
    def _flatten(row: dict[str, Any], info: Mapping[str, Any], types: list[str]) -> dict[str, Any]:
        # actions / action_values are short lists per row (absent when empty).
        wanted = set(types)
        conversions = sum(
            (Decimal(a["value"]) for a in row.get("actions", ()) if a.get("action_type") in wanted), Decimal(0)
        )
        value = sum(
            (Decimal(a["value"]) for a in row.get("action_values", ()) if a.get("action_type") in wanted), Decimal(0)
        )
        out = {k: v for k, v in row.items() if k not in ("actions", "action_values")}
        out["conversions"] = str(conversions)
        out["conversion_value"] = str(value)
        out["time_zone"] = info.get("timezone_name")
        out.setdefault("account_currency", info.get("currency"))
        return out

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[MetaAdsSettings]) -> pa.RecordBatch:
        return ad_performance_batch(
            platform="meta_ads",
            date=batch.column("date_start"),
            time_zone=batch.column("time_zone"),
            account_id=batch.column("account_id"),
            campaign_id=batch.column("campaign_id"),
            campaign_name=batch.column("campaign_name"),
            impressions=batch.column("impressions"),
            clicks=batch.column("clicks"),
            spend=batch.column("spend"),
            conversions=batch.column("conversions"),
            conversion_value=batch.column("conversion_value"),
            currency=batch.column("account_currency"),
        )

    def estimate(self, plan: PlanContext[MetaAdsSettings]) -> Estimate:
        """Per account: the account, the insights pages of the window's rows and the account's totals;
        past ``async_after_days`` also the report run and at least one poll of it."""
        s = plan.settings
        since, until = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        days, per_day = (until - since).days + 1, plan.records_per_day()
        rows = None if per_day is None else math.ceil(per_day * days)
        pages, at_least = plan.pages(None if rows is None else math.ceil(rows / len(s.account_ids)), s.page_size)
        run = days > s.async_after_days
        requests: list[Requests] = []
        for acct in s.account_ids:
            base = f"/{s.api_version}/act_{acct}"
            requests += [Requests(1, base), Requests(pages + 1, f"{base}/insights")]  # + the totals
            if run:  # the run, then its status until done (how often is not known before)
                requests += [Requests(1, f"{base}/insights", "POST"), Requests(1, f"/{s.api_version}/report_run")]
        basis = f"{days} days × {len(s.account_ids)} account(s)" + (", an async report run each" if run else "")
        return Estimate("window", since, until, tuple(requests), rows, at_least or run, basis)


class MetaAdsSource(Source[MetaAdsSettings]):
    """Meta (Facebook/Instagram) Ads via the Marketing API."""

    name = "meta_ads"
    title = "Meta Ads"
    settings_class = MetaAdsSettings

    def streams(self, settings: MetaAdsSettings) -> list[Stream[MetaAdsSettings]]:
        return [
            Insights(
                "campaign_insights",
                INSIGHTS,
                primary_key=("account_id", "campaign_id", "date_start"),
                cursor_field="date_start",
                canonical_table="ad_performance_daily",
                reconcile_by=("account_id",),
            )
        ]

    def auth(self, settings: MetaAdsSettings) -> httpx.Auth:
        # A header, not ?access_token=: tokens stay out of URLs, logs and next links.
        return BearerAuth(settings.access_token)

    classify = staticmethod(throttle)
    observe_rate = staticmethod(observe_rate)

    def rate_limits(self, settings: MetaAdsSettings) -> list[Limit]:
        """Each ad account's business use cases per hour and its score per 300 s (sizes learnt)."""
        return list(ACCOUNT_LIMITS)

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_meta_ads.fake import FakeMetaAds

        b = DEMO_BUSINESS
        server = FakeMetaAds(
            seed=seed,
            start=b.start,
            end=b.end,
            accounts={"101010101": (b.currency, b.time_zone)},
            campaign_names=[c.name for c in b.campaigns_on("meta_ads")],
        )
        settings = {
            "access_token": server.token,
            "account_ids": ["act_101010101"],
            "start_date": b.start.isoformat(),
            "requests_per_second": None,
            "poll_seconds": 0.05,
        }
        return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)

    def diagnose(self, settings: MetaAdsSettings, http: Requester | None) -> list[Diagnosis]:
        """Is ``api_version`` still served by the Marketing API (offline, from Meta's version history)?"""
        from kpihub_meta_ads.versions import diagnose

        return [diagnose(settings.api_version, dt.date.today())]

    def check(self, settings: MetaAdsSettings, http: Requester) -> CheckResult:
        version = settings.api_version
        try:
            names = [
                http.json("GET", f"/{version}/act_{a}", stream="check", params={"fields": "name"})["name"]
                for a in settings.account_ids
            ]
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"connected to {', '.join(names)}")


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "ad_spend", "period": "2026-Q2", "baseline": 34200, "target": 34000},
    {"kpi": "cpa", "period": "2026-Q2", "baseline": 25.6, "target": 24},
]
