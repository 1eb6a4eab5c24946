"""The GA4 connector: ``runReport`` per property and date window, typed by the metric headers.

Rows are converted column-wise: each page's positional ``dimensionValues`` /
``metricValues`` lists are flattened by Arrow and cut into columns by stride,
then typed from ``metricHeaders`` (``TYPE_INTEGER`` → int64, ``TYPE_CURRENCY`` →
decimal, the rest → float64). Each sync re-reads ``lookback_days`` because GA4
data settles for days; rows merge on the dimensions.
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
from pydantic import Field, SecretStr, field_validator, model_validator

from kpihub import (
    MONEY,
    CheckResult,
    DemoSpec,
    Estimate,
    HTTPError,
    PlanContext,
    Requests,
    Source,
    SourceError,
    SourceSettings,
    Stream,
    StreamContext,
    interleave,
)
from kpihub.http import (
    Limit,
    OAuthRefreshToken,
    Observation,
    OffsetPaginator,
    Quota,
    Requester,
    RetryDecision,
    positional_batch,
    positional_type,
)

#: A report row as the paginator reads it with Arrow (off the GIL): values stay strings until cast.
ROW = positional_type(["dimensionValues", "metricValues"])
HEADER_TYPES = {"TYPE_INTEGER": pa.int64(), "TYPE_CURRENCY": MONEY}
DEFAULT_DIMENSIONS = ["date", "sessionSource", "sessionMedium", "sessionCampaignName"]
DEFAULT_METRICS = [
    "sessions",
    "totalUsers",
    "newUsers",
    "engagedSessions",
    "screenPageViews",
    "keyEvents",
    "totalRevenue",
]
#: Metrics whose report total is the sum of the rows (a users total counts each user once).
ADDITIVE_METRICS = frozenset(
    {
        "sessions",
        "newUsers",
        "engagedSessions",
        "screenPageViews",
        "eventCount",
        "conversions",
        "keyEvents",
        "totalRevenue",
        "purchaseRevenue",
        "userEngagementDuration",
    }
)
#: Types of common metrics, so the schema is known before the first response.
KNOWN = {
    "sessions": "TYPE_INTEGER",
    "totalUsers": "TYPE_INTEGER",
    "newUsers": "TYPE_INTEGER",
    "activeUsers": "TYPE_INTEGER",
    "engagedSessions": "TYPE_INTEGER",
    "screenPageViews": "TYPE_INTEGER",
    "eventCount": "TYPE_INTEGER",
    "conversions": "TYPE_FLOAT",
    "keyEvents": "TYPE_FLOAT",
    "totalRevenue": "TYPE_CURRENCY",
    "purchaseRevenue": "TYPE_CURRENCY",
    "engagementRate": "TYPE_FLOAT",
    "bounceRate": "TYPE_FLOAT",
    "userEngagementDuration": "TYPE_SECONDS",
    "averageSessionDuration": "TYPE_SECONDS",
}
#: Sessions by the page they started on and their default channel group (``landing_pages_daily``): the
#: Data API's ``landingPage`` ("the page path associated with the first pageview in a session", no query
#: string) and ``sessionDefaultChannelGroup`` (Direct, Organic Search, Paid Social, Email …); bounce rate
#: is (sessions − engagedSessions) ÷ sessions (developers.google.com/analytics/devguides/reporting/data/v1/api-schema).
LANDING_DIMENSIONS = ["date", "landingPage", "sessionDefaultChannelGroup"]
LANDING_METRICS = ["sessions", "engagedSessions"]
LANDING_CANONICAL = {
    "landingPage": "landing_page",
    "sessionDefaultChannelGroup": "channel_group",
    "sessions": "sessions",
    "engagedSessions": "engaged_sessions",
}
CANONICAL = {
    "sessionSource": "source",
    "sessionMedium": "medium",
    "sessionCampaignName": "campaign",
    "sessions": "sessions",
    "totalUsers": "users",
    "newUsers": "new_users",
    "engagedSessions": "engaged_sessions",
    "screenPageViews": "page_views",
    "keyEvents": "key_events",
    "totalRevenue": "revenue",
}


class GA4Settings(SourceSettings):
    """``[sources.ga4]``: OAuth client + refresh token (scope analytics.readonly) and properties."""

    base_url: str = "https://analyticsdata.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"
    #: A service-account key file (JSON) — or the three OAuth fields below.
    credentials_file: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    property_ids: list[str] = Field(min_length=1)
    dimensions: list[str] = Field(default_factory=lambda: list(DEFAULT_DIMENSIONS))
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    #: GA4 data settles for a few days; every sync reads these days again.
    lookback_days: int = Field(default=3, ge=0, le=60)
    #: Also read sessions by landing page × channel group (stream ``landing_pages_daily``): one more report
    #: per property and window.
    landing_pages: bool = True
    page_size: int = Field(default=100_000, ge=1, le=250_000)
    max_concurrency: int = Field(default=4, ge=1, le=10)

    @field_validator("property_ids")
    @classmethod
    def _numeric(cls, ids: list[str]) -> list[str]:
        cleaned = [i.strip().removeprefix("properties/") for i in ids]
        bad = [i for i in cleaned if not i.isdigit()]
        if bad:
            raise ValueError(f"property id {bad[0]!r} is not numeric")
        return cleaned

    @model_validator(mode="after")
    def _one_auth(self) -> GA4Settings:
        oauth = [self.client_id, self.client_secret, self.refresh_token]
        if self.credentials_file is None and not all(oauth):
            raise ValueError("set credentials_file (service account) or client_id, client_secret and refresh_token")
        if self.credentials_file is not None and any(oauth):
            raise ValueError("set either credentials_file or the OAuth client fields, not both")
        return self

    @field_validator("dimensions")
    @classmethod
    def _has_date(cls, dims: list[str]) -> list[str]:
        if "date" not in dims:
            raise ValueError("dimensions must include 'date' (reports are daily)")
        return dims


def arrow_type(header_type: str) -> pa.DataType:
    return HEADER_TYPES.get(header_type, pa.float64())


def report_schema(settings: GA4Settings) -> pa.Schema:
    """The raw table of the traffic report: the settings' dimensions and metrics."""
    return schema_of(settings.dimensions, settings.metrics)


def schema_of(dimensions: list[str], metrics: list[str]) -> pa.Schema:
    fields = [pa.field("property_id", pa.string(), nullable=False)]
    for d in dimensions:
        fields.append(pa.field(d, pa.date32() if d == "date" else pa.string(), nullable=False))
    fields += [pa.field(m, arrow_type(KNOWN.get(m, "TYPE_FLOAT"))) for m in metrics]
    fields += [pa.field("time_zone", pa.string()), pa.field("currency", pa.string())]
    return pa.schema(fields)


class Report(Stream[GA4Settings]):
    """The traffic report: the settings' dimensions and metrics, into ``web_traffic_daily``."""

    def dimensions(self, settings: GA4Settings) -> list[str]:
        return settings.dimensions

    def metrics(self, settings: GA4Settings) -> list[str]:
        return settings.metrics

    def read(self, ctx: StreamContext[GA4Settings], state: Mapping[str, Any] | None) -> Iterator[pa.RecordBatch]:
        s = ctx.settings
        since, today = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        jobs = [self._property(ctx, s, prop, since, today) for prop in s.property_ids]
        yield from interleave(jobs, max_workers=s.max_concurrency)

    def estimate(self, plan: PlanContext[GA4Settings]) -> Estimate:
        """One report per property and ``page_size`` rows of the window (the last run's rows a day
        per property), each costing :data:`TOKENS_PER_REPORT` of the property's quotas."""
        s = plan.settings
        since, until = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        days = (until - since).days + 1
        per_day = plan.records_per_day()
        rows = None if per_day is None else math.ceil(per_day * days)
        per_property = None if rows is None else math.ceil(rows / len(s.property_ids))
        pages, at_least = plan.pages(per_property, s.page_size)
        basis = (
            f"{days} days × {len(s.property_ids)} propert{'y' if len(s.property_ids) == 1 else 'ies'}"
            + ("; rows unknown before a first sync" if per_day is None else f" × ~{per_day:,.1f} rows a day")
            + f"; ~{TOKENS_PER_REPORT} tokens a report"
        )
        requests = tuple(
            Requests(pages, f"/v1beta/properties/{prop}:runReport", "POST", cost=TOKENS_PER_REPORT)
            for prop in s.property_ids
        )
        return Estimate("window", since, until, requests, rows, at_least, basis)

    def _property(
        self, ctx: StreamContext[GA4Settings], s: GA4Settings, prop: str, since: dt.date, until: dt.date
    ) -> Iterator[pa.RecordBatch]:
        body = {
            "dateRanges": [{"startDate": since.isoformat(), "endDate": until.isoformat()}],
            "dimensions": [{"name": d} for d in self.dimensions(s)],
            "metrics": [{"name": m} for m in self.metrics(s)],
            "keepEmptyRows": False,
            "metricAggregations": ["TOTAL"],
            "returnPropertyQuota": True,
        }
        paginator = OffsetPaginator("rows", limit=s.page_size, where="body", total_path="rowCount", record_type=ROW)
        first = True
        for page, rows in ctx.pages(paginator, "POST", f"/v1beta/properties/{prop}:runReport", json=body):
            if first:
                first = False
                self._expect_totals(ctx, prop, page)
                _note_metadata(ctx, prop, page.get("metadata") or {})
            if rows:
                yield self._batch(ctx, prop, page, rows)

    def _expect_totals(self, ctx: StreamContext[GA4Settings], prop: str, page: Mapping[str, Any]) -> None:
        """The report's ``totals`` row, for the engine to reconcile the loaded rows with.

        Only metrics that add up over rows: a total of users counts each user once.
        """
        (totals,) = page.get("totals") or [None]
        if not totals:
            return
        for header, value in zip(page.get("metricHeaders", []), totals.get("metricValues", []), strict=False):
            if header["name"] in ADDITIVE_METRICS and header["name"] in self.schema.names:
                ctx.expect_total(header["name"], Decimal(value["value"]), where={"property_id": prop})

    def _batch(
        self, ctx: StreamContext[GA4Settings], prop: str, page: Mapping[str, Any], rows: list[Any]
    ) -> pa.RecordBatch:
        """The page's rows as string columns by header; the engine casts them to the schema."""
        dims = [h["name"] for h in page.get("dimensionHeaders", [])]
        mets = page.get("metricHeaders", [])
        for header in mets:
            declared = self.schema.field(header["name"]).type
            if arrow_type(header["type"]) != declared:
                raise SourceError(
                    f"{ctx.source_id}/{ctx.stream}: metric {header['name']!r} is {header['type']} in the API "
                    f"but {declared} in the schema",
                    source=ctx.source_id,
                    stream=ctx.stream,
                )
        try:
            batch = positional_batch(rows, {"dimensionValues": dims, "metricValues": [h["name"] for h in mets]})
        except ValueError as exc:
            raise SourceError(
                f"{ctx.source_id}/{ctx.stream}: property {prop}: {exc}", source=ctx.source_id, stream=ctx.stream
            ) from None
        meta = page.get("metadata") or {}
        n = len(rows)
        for name, value in (
            ("property_id", prop),
            ("time_zone", meta.get("timeZone")),
            ("currency", meta.get("currencyCode")),
        ):
            batch = batch.append_column(name, pa.repeat(pa.scalar(value, pa.string()), n))
        return batch

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[GA4Settings]) -> pa.RecordBatch:
        n = batch.num_rows
        out: dict[str, pa.Array] = {
            "date": batch.column("date"),
            "time_zone": batch.column("time_zone"),
            "property_id": batch.column("property_id"),
            "currency": batch.column("currency"),
        }
        for name, target in CANONICAL.items():
            if name in batch.schema.names:
                out[target] = batch.column(name)
        for key in ("source", "medium", "campaign"):
            out.setdefault(key, pa.repeat(pa.scalar("(not set)"), n))
        return pa.RecordBatch.from_pydict(out)


class LandingPages(Report):
    """Sessions by landing page × default channel group, into ``landing_pages_daily``."""

    def dimensions(self, settings: GA4Settings) -> list[str]:
        return LANDING_DIMENSIONS

    def metrics(self, settings: GA4Settings) -> list[str]:
        return LANDING_METRICS

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[GA4Settings]) -> pa.RecordBatch:
        out = {name: batch.column(name) for name in ("date", "time_zone", "property_id")}
        out |= {target: batch.column(name) for name, target in LANDING_CANONICAL.items()}
        return pa.RecordBatch.from_pydict(out)


def _note_metadata(ctx: StreamContext[GA4Settings], prop: str, meta: Mapping[str, Any]) -> None:
    """GA4's warnings about a report's numbers become notes in the sync summary and the scorecard."""
    if meta.get("subjectToThresholding"):
        ctx.note(f"property {prop}: GA4 applied thresholding (rows with few users are withheld)")
    for sampling in meta.get("samplingMetadatas") or []:
        read, space = sampling.get("samplesReadCount"), sampling.get("samplingSpaceSize")
        ctx.note(f"property {prop}: GA4 sampled the report ({read} of {space} events read)")
    if meta.get("dataLossFromOtherRow"):
        ctx.note(f"property {prop}: GA4 rolled some dimension combinations into an '(other)' row")


def classify(response: httpx.Response) -> RetryDecision | None:
    """Quota: per-hour exhaustion waits in the budget for tokens to return; per-day exhaustion stops
    the stream until midnight Pacific Time (a quota that does not come back within the run)."""
    if response.status_code != 429:
        return None
    try:
        message = orjson.loads(response.content)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if "per day" in message:
        return RetryDecision(False, None, "quota", quota=daily_quota())
    return RetryDecision(True, None, "quota")


#: The Data API's report methods, keyed per property (each property has its own token quotas).
REPORT_PATH = r"/properties/(\d+):run\w*Report"
#: Core tokens of a standard property per hour and per day (Analytics 360: ten times as many), as
#: ``kpihub plan`` assumes them; at run time ``propertyQuota`` says what is left
#: (developers.google.com/analytics/devguides/reporting/data/v1/quotas).
TOKENS_PER_HOUR, TOKENS_PER_DAY = 40_000, 200_000
#: What ``kpihub plan`` assumes a report costs: "most requests consume fewer than 10 tokens"
#: (the PropertyQuota reference); the cost grows with rows, columns and the date range.
TOKENS_PER_REPORT = 10


def daily_quota() -> Quota:
    """ "Daily quotas refresh at midnight PST" (developers.google.com/analytics/devguides/reporting/data/v1/quotas)."""
    from zoneinfo import ZoneInfo

    pacific = ZoneInfo("America/Los_Angeles")
    today = dt.datetime.now(pacific).date()
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), pacific)
    return Quota("GA4 property tokens per day are exhausted", resets_at=midnight.astimezone(dt.timezone.utc))


def observe_rate(response: httpx.Response) -> list[Observation]:
    """``propertyQuota`` (asked for with ``returnPropertyQuota``): this report's tokens and what remains."""
    if response.status_code != 200:
        return []
    content = response.content
    at = content.rfind(b'"propertyQuota"')  # after the rows: read only its own object
    m = re.search(REPORT_PATH, response.request.url.path)
    if at < 0 or m is None:
        return []
    start = content.find(b"{", at)
    depth, end = 0, start
    for end in range(start, len(content)):
        depth += {123: 1, 125: -1}.get(content[end], 0)
        if depth == 0:
            break
    try:
        quota = orjson.loads(content[start : end + 1])
        hour, day = quota["tokensPerHour"], quota["tokensPerDay"]
        cost = float(hour.get("consumed", 0))
        out = [Observation("tokens_hour", m.group(1), remaining=float(hour["remaining"]), cost=cost)]
        out.append(Observation("tokens_day", m.group(1), remaining=float(day["remaining"]), cost=cost))
        if float(day["remaining"]) < max(1.0, cost):  # the next report cannot be paid for today
            out.append(Observation("tokens_day", m.group(1), quota=daily_quota()))
        return out
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return []


class GA4Source(Source[GA4Settings]):
    """Google Analytics 4 (Data API v1beta)."""

    name = "ga4"
    title = "Google Analytics 4"
    settings_class = GA4Settings
    classify = staticmethod(classify)
    observe_rate = staticmethod(observe_rate)

    def rate_limits(self, settings: GA4Settings) -> list[Limit]:
        """Tokens per hour (rolling) and per day, per property; their sizes come from ``propertyQuota``."""
        return [
            Limit("tokens_hour", None, 3600.0, path=REPORT_PATH, title="GA4 tokens per hour of property"),
            Limit("tokens_day", None, 86_400.0, path=REPORT_PATH, title="GA4 tokens per day of property"),
        ]

    def plan_limits(self, settings: GA4Settings) -> list[Limit]:
        """The same windows at a standard property's documented sizes."""
        return [
            Limit("tokens_hour", TOKENS_PER_HOUR, 3600.0, path=REPORT_PATH, title="GA4 tokens per hour of property"),
            Limit("tokens_day", TOKENS_PER_DAY, 86_400.0, path=REPORT_PATH, title="GA4 tokens per day of property"),
        ]

    def streams(self, settings: GA4Settings) -> list[Stream[GA4Settings]]:
        streams: list[Stream[GA4Settings]] = [
            Report(
                "traffic_daily",
                report_schema(settings),
                primary_key=("property_id", *settings.dimensions),
                cursor_field="date",
                canonical_table="web_traffic_daily",
                reconcile_by=("property_id",),
            )
        ]
        if settings.landing_pages:
            streams.append(
                LandingPages(
                    "landing_pages_daily",
                    schema_of(LANDING_DIMENSIONS, LANDING_METRICS),
                    primary_key=("property_id", *LANDING_DIMENSIONS),
                    cursor_field="date",
                    canonical_table="landing_pages_daily",
                    reconcile_by=("property_id",),
                )
            )
        return streams

    def auth(self, settings: GA4Settings) -> httpx.Auth:
        if settings.credentials_file:
            from kpihub_ga4.service_account import ServiceAccountAuth

            return ServiceAccountAuth(settings.credentials_file)
        # The settings validator ensures them.
        assert settings.client_id and settings.client_secret and settings.refresh_token
        return OAuthRefreshToken(
            settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
        )

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_ga4.fake import FakeGA4

        b = DEMO_BUSINESS
        channels = [(c.utm_source, c.utm_medium, c.utm_campaign) for c in b.campaigns]
        channels += [
            ("google", "organic", "(organic)"),
            ("(direct)", "(none)", "(not set)"),
            ("newsletter", "email", "monthly_digest"),
        ]
        server = FakeGA4(
            seed=seed, start=b.start, end=b.end, properties={"312345678": (b.currency, b.time_zone)}, channels=channels
        )
        settings = {
            "token_url": "{base_url}/token",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "refresh_token": server.refresh_token,
            "property_ids": ["312345678"],
            "start_date": b.start.isoformat(),
            "requests_per_second": None,
        }
        return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)

    def check(self, settings: GA4Settings, http: Requester) -> CheckResult:
        body = {
            "dateRanges": [{"startDate": "yesterday", "endDate": "yesterday"}],
            "metrics": [{"name": "sessions"}],
            "limit": "1",
        }
        try:
            for prop in settings.property_ids:
                http.json("POST", f"/v1beta/properties/{prop}:runReport", stream="check", json=body)
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        except SourceError as exc:
            return CheckResult(False, str(exc))
        n = len(settings.property_ids)
        return CheckResult(True, f"connected to {n} GA4 propert{'y' if n == 1 else 'ies'}")


#: Sample targets for ``kpihub demo``: the demo business's Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "sessions", "period": "2026-Q2", "baseline": 320000, "target": 330000},
    {"kpi": "engagement_rate", "period": "2026-Q2", "baseline": 60.0, "target": 61.0},
    {"kpi": "web_conversion_rate", "period": "2026-Q2", "baseline": 2.56, "target": 2.7},
    {"kpi": "traffic_to_lead", "period": "2026-Q2", "baseline": 1.94, "target": 2.2},
]
