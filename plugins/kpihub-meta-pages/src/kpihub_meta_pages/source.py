"""Facebook Page and Instagram account insights, one row per account and Pacific day -> social_daily.

``facebook_daily`` reads ``GET /{page-id}/insights?metric=…&period=day&since=&until=`` in windows
of at most ``days_per_request`` (90) days; ``instagram_daily`` reads ``GET /{ig-user-id}/insights
?metric=reach,views,total_interactions&metric_type=total_value&period=day`` one Pacific day at a
time (``total_value`` answers one total per request, not a series). Both re-read ``lookback_days``
before their last day every sync — Meta restates recent days — and the engine replaces those days.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr, field_validator, model_validator

from kpihub import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    HTTPError,
    MalformedResponseError,
    PlanContext,
    Requests,
    Source,
    SourceError,
    SourceSettings,
    Stream,
    StreamContext,
    interleave,
)
from kpihub.http import BearerAuth, Limit, Requester
from kpihub_meta_pages import graph
from kpihub_meta_pages.metrics import FACEBOOK, INSTAGRAM, Metric, choose, refusal, version_number

COUNT = {"minimum": "0"}
COLUMNS = ("impressions", "reach", "engagements", "followers")


def _schema(account: str, columns: tuple[str, ...]) -> pa.Schema:
    fields = [pa.field(account, pa.string(), nullable=False), pa.field("date", pa.date32(), nullable=False)]
    fields += [pa.field(c, pa.int64(), metadata=COUNT) for c in columns]
    # The metric each value came from: a deprecation swap (impressions -> views) stays visible.
    fields += [pa.field(f"{c}_metric", pa.string()) for c in columns]
    return pa.schema(fields)


FACEBOOK_DAILY = _schema("page_id", COLUMNS)
INSTAGRAM_DAILY = _schema("ig_user_id", COLUMNS[:3])


class MetaPagesSettings(SourceSettings):
    """``[sources.meta_pages]``: a token that reads the Pages and Instagram accounts, and their ids."""

    base_url: str = "https://graph.facebook.com"
    #: Graph API version; v25.0 works until 2028-07-29 (``kpihub doctor`` warns 90 days before).
    api_version: str = "v25.0"
    #: A Page access token (or a system-user token with ``read_insights`` on every Page and account).
    access_token: SecretStr
    page_ids: list[str] = Field(default_factory=list)
    #: Instagram professional account ids (``instagram_business_account`` of a Page).
    instagram_account_ids: list[str] = Field(default_factory=list)
    #: Days before the last synced day read again each sync: Meta fills in recent days late.
    lookback_days: int = Field(default=3, ge=0, le=28)
    #: Days per Page insights request; Meta documents 90 at most between since and until.
    days_per_request: int = Field(default=90, ge=1, le=90)
    #: Column -> metric, to pin a metric instead of the one chosen by version and date.
    facebook_metrics: dict[str, str] = Field(default_factory=dict)
    instagram_metrics: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int = Field(default=4, ge=1, le=16)

    @field_validator("api_version")
    @classmethod
    def _version(cls, version: str) -> str:
        version_number(version)
        return version

    @field_validator("page_ids", "instagram_account_ids")
    @classmethod
    def _numeric(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not str(i).strip().isdigit()]
        if bad:
            raise ValueError(f"id {bad[0]!r} is not numeric (Graph object ids are digits)")
        return [str(i).strip() for i in ids]

    @model_validator(mode="after")
    def _something_to_read(self) -> MetaPagesSettings:
        if not self.page_ids and not self.instagram_account_ids:
            raise ValueError("give page_ids, instagram_account_ids or both")
        for name, chains in (("facebook_metrics", FACEBOOK), ("instagram_metrics", INSTAGRAM)):
            unknown = sorted(set(getattr(self, name)) - set(chains))
            if unknown:
                raise ValueError(f"{name}: {unknown[0]!r} is not one of {sorted(chains)}")
        return self


def _days(first: dt.date, last: dt.date, size: int) -> Iterator[tuple[dt.date, dt.date]]:
    while first <= last:
        end = min(last, first + dt.timedelta(days=size - 1))
        yield first, end
        first = end + dt.timedelta(days=1)


def _malformed(ctx: StreamContext[Any], what: str) -> MalformedResponseError:
    return MalformedResponseError(f"{ctx.source_id}/{ctx.stream}: {what}", source=ctx.source_id, stream=ctx.stream)


def _count(ctx: StreamContext[Any], where: str, metric: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(ctx, f"{where}: metric {metric!r} sent {value!r}, not a count")
    return value


class _Insights(Stream[MetaPagesSettings]):
    """What both insights streams share: the window, the metrics, Meta's refusals."""

    chains: dict[str, tuple[Metric, ...]]
    setting: str
    platform: str
    account: str

    def metrics(self, s: MetaPagesSettings) -> dict[str, str]:
        return choose(self.chains, getattr(s, self.setting), version_number(s.api_version), dt.date.today())

    def window(self, ctx: StreamContext[MetaPagesSettings], state: Mapping[str, Any] | None) -> tuple[dt.date, dt.date]:
        s = ctx.settings
        first, last = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        return first, min(last, graph.last_complete_day())  # today is never answered: it is not over

    def missing(self, ctx: StreamContext[MetaPagesSettings], what: str, days: list[dt.date]) -> None:
        """Note the days Meta sent nothing for: not published yet (the last 48 hours), or none kept."""
        recent = graph.pacific_today() - dt.timedelta(days=graph.LATE_DAYS)
        late = sum(1 for d in days if d >= recent)
        where = f"{ctx.stream}: Meta"
        ctx.note(
            f"{where} has not published insights for {what} yet (up to 48 hours late): no rows, read again next sync",
            late,
        )
        ctx.note(
            f"{where} sent no insights for {what} on days older than 48 hours: no rows (it keeps none for them)",
            len(days) - late,
        )

    def get(
        self, ctx: StreamContext[MetaPagesSettings], url: str, params: dict[str, str], metrics: dict[str, str]
    ) -> dict[str, Any]:
        try:
            body = ctx.http.json("GET", url, stream=ctx.stream, params=params)
        except HTTPError as exc:
            text = str(exc).rsplit(": HTTP ", 1)[-1]
            if "(#100)" in text and "metric" in text:
                where = f"{ctx.source_id}/{ctx.stream}"
                message = refusal(where, metrics, text, self.setting)
                raise SourceError(message, source=ctx.source_id, stream=ctx.stream) from None
            raise
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise _malformed(ctx, f"{url}: expected {{'data': [...]}}")
        return body

    def by_metric(self, ctx: StreamContext[MetaPagesSettings], where: str, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for item in body["data"]:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise _malformed(ctx, f"{where}: an insights entry without a metric name: {str(item)[:80]}")
            if name in found:
                raise _malformed(ctx, f"{where}: metric {name!r} answered twice")
            if item.get("period") != "day":
                raise _malformed(ctx, f"{where}: metric {name!r} has period {item.get('period')!r}, asked for 'day'")
            found[name] = item
        return found

    def empty_row(self, account: str, day: dt.date, metrics: dict[str, str]) -> dict[str, Any]:
        row: dict[str, Any] = {self.account: account, "date": day.isoformat()}
        row.update(dict.fromkeys(metrics))
        row.update({f"{c}_metric": m for c, m in metrics.items()})
        return row

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[MetaPagesSettings]) -> pa.RecordBatch:
        n = batch.num_rows
        columns = {
            "date": batch.column("date"),
            "platform": pa.repeat(pa.scalar(self.platform), n),
            "account_id": batch.column(self.account),
        }
        columns.update({c: batch.column(c) for c in COLUMNS if c in batch.schema.names})
        return pa.RecordBatch.from_pydict(columns)


class FacebookDaily(_Insights):
    chains = FACEBOOK
    setting = "facebook_metrics"
    platform = "facebook"
    account = "page_id"

    def read(
        self, ctx: StreamContext[MetaPagesSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        first, last = self.window(ctx, state)
        metrics = self.metrics(s)
        pages = [self._page(ctx, page, metrics, first, last) for page in s.page_ids]
        yield from interleave(pages, max_workers=s.max_concurrency)

    def _page(
        self, ctx: StreamContext[MetaPagesSettings], page: str, metrics: dict[str, str], first: dt.date, last: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        url = f"/{s.api_version}/{page}/insights"
        for since, until in _days(first, last, s.days_per_request):
            # ``until`` is the end of the range: the day after the last one asked for.
            params = {
                "metric": ",".join(metrics.values()),
                "period": "day",
                "since": since.isoformat(),
                "until": (until + dt.timedelta(days=1)).isoformat(),
            }
            body = self.get(ctx, url, params, metrics)
            yield self._rows(ctx, page, metrics, body, since, until)

    def _rows(
        self,
        ctx: StreamContext[MetaPagesSettings],
        page: str,
        metrics: dict[str, str],
        body: dict[str, Any],
        first: dt.date,
        last: dt.date,
    ) -> list[dict[str, Any]]:
        where = f"page {page}, {first}..{last}"
        found = self.by_metric(ctx, where, body)
        rows: dict[dt.date, dict[str, Any]] = {}
        for column, metric in metrics.items():
            if metric not in found:
                ctx.note(f"facebook_daily: Meta sent no {metric!r} values for page {page}: {column} stored as null")
                continue
            for value in found[metric].get("values") or []:
                day = graph.day_of(value["end_time"])
                if not first <= day <= last:
                    raise _malformed(ctx, f"{where}: {metric!r} sent a value for {day} (end_time {value['end_time']})")
                row = rows.setdefault(day, self.empty_row(page, day, metrics))
                if row[column] is not None:
                    raise _malformed(ctx, f"{where}: {metric!r} sent two values for {day}")
                row[column] = _count(ctx, where, metric, value.get("value"))
        # A quiet day is a value of 0; a day without any value is one Meta has not published (or keeps none for).
        self.missing(ctx, f"page {page}", [d for d, _ in _days(first, last, 1) if d not in rows])
        return [rows[d] for d in sorted(rows)]

    def estimate(self, plan: PlanContext[MetaPagesSettings]) -> Estimate:
        """One request per Page and ``days_per_request`` days of the window."""
        s = plan.settings
        first, last = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        last = min(last, graph.last_complete_day(plan.now))
        days = max(0, (last - first).days + 1)
        per_page = math.ceil(days / s.days_per_request)
        requests = tuple(Requests(per_page, f"/{s.api_version}/{p}/insights") for p in s.page_ids)
        rows = days * len(s.page_ids)
        return Estimate("window", first, last, requests, rows, False, f"{days} days × {len(s.page_ids)} Page(s)")


class InstagramDaily(_Insights):
    chains = INSTAGRAM
    setting = "instagram_metrics"
    platform = "instagram"
    account = "ig_user_id"

    def read(
        self, ctx: StreamContext[MetaPagesSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        first, last = self.window(ctx, state)
        metrics = self.metrics(s)
        # One request per day: each account's days are read as a few ranges side by side.
        size = max(1, math.ceil(((last - first).days + 1) / s.max_concurrency))
        ranges = [
            self._account(ctx, ig, metrics, since, until)
            for ig in s.instagram_account_ids
            for since, until in _days(first, last, size)
        ]
        yield from interleave(ranges, max_workers=s.max_concurrency)

    def _account(
        self, ctx: StreamContext[MetaPagesSettings], ig: str, metrics: dict[str, str], first: dt.date, last: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        url = f"/{ctx.settings.api_version}/{ig}/insights"
        rows = []
        for day, _ in _days(first, last, 1):
            params = {
                "metric": ",".join(metrics.values()),
                "metric_type": "total_value",
                "period": "day",
                "since": str(graph.pacific_midnight(day)),
                "until": str(graph.pacific_midnight(day + dt.timedelta(days=1))),
            }
            row = self._row(ctx, ig, metrics, self.get(ctx, url, params, metrics), day)
            if row is not None:
                rows.append(row)
            if len(rows) >= 31:
                yield rows
                rows = []
        if rows:
            yield rows

    def _row(
        self,
        ctx: StreamContext[MetaPagesSettings],
        ig: str,
        metrics: dict[str, str],
        body: dict[str, Any],
        day: dt.date,
    ) -> dict[str, Any] | None:
        # "If insights data you are requesting does not exist or is currently unavailable, the API
        # will return an empty data set instead of 0" (the Instagram account insights reference).
        if not body["data"]:
            self.missing(ctx, f"account {ig}", [day])
            return None
        where = f"instagram account {ig}, {day}"
        found = self.by_metric(ctx, where, body)
        row = self.empty_row(ig, day, metrics)
        for column, metric in metrics.items():
            if metric not in found:
                ctx.note(f"instagram_daily: Meta sent no {metric!r} for account {ig} on some days: stored as null")
                continue
            total = found[metric].get("total_value")
            if not isinstance(total, dict):
                raise _malformed(ctx, f"{where}: metric {metric!r} has no total_value (asked metric_type=total_value)")
            row[column] = _count(ctx, where, metric, total.get("value"))
        return row

    def estimate(self, plan: PlanContext[MetaPagesSettings]) -> Estimate:
        """One request per Instagram account and day of the window (``total_value`` has no series)."""
        s = plan.settings
        first, last = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        last = min(last, graph.last_complete_day(plan.now))
        days = max(0, (last - first).days + 1)
        ids = s.instagram_account_ids
        requests = tuple(Requests(days, f"/{s.api_version}/{ig}/insights") for ig in ids)
        return Estimate("window", first, last, requests, days * len(ids), False, f"{days} days × {len(ids)} account(s)")


class MetaPagesSource(Source[MetaPagesSettings]):
    """Organic Facebook Page and Instagram insights via the Meta Graph API."""

    name = "meta_pages"
    title = "Meta Pages & Instagram (organic)"
    settings_class = MetaPagesSettings

    def streams(self, settings: MetaPagesSettings) -> list[Stream[MetaPagesSettings]]:
        out: list[Stream[MetaPagesSettings]] = []
        common: dict[str, Any] = {"cursor_field": "date", "canonical_table": "social_daily"}
        # Settings name at least one kind of account (validated); settings naming neither are the
        # unvalidated defaults `kpihub plugins` and the catalogue's "fed by" describe: both streams.
        neither = not settings.page_ids and not settings.instagram_account_ids
        if settings.page_ids or neither:
            out.append(
                FacebookDaily(
                    "facebook_daily",
                    FACEBOOK_DAILY,
                    primary_key=("page_id", "date"),
                    canonical_scope={"platform": "facebook"},
                    **common,
                )
            )
        if settings.instagram_account_ids or neither:
            out.append(
                InstagramDaily(
                    "instagram_daily",
                    INSTAGRAM_DAILY,
                    primary_key=("ig_user_id", "date"),
                    canonical_scope={"platform": "instagram"},
                    **common,
                )
            )
        return out

    def auth(self, settings: MetaPagesSettings) -> httpx.Auth:
        # A header, not ?access_token=: the token stays out of URLs, paging links and logs.
        return BearerAuth(settings.access_token)

    classify = staticmethod(graph.throttle)
    observe_rate = staticmethod(graph.observe_rate)

    def rate_limits(self, settings: MetaPagesSettings) -> list[Limit]:
        """Each Page's and account's BUC calls per 24 h, the app's per hour (sizes learnt from headers)."""
        return list(graph.LIMITS)

    def check(self, settings: MetaPagesSettings, http: Requester) -> CheckResult:
        version, names = settings.api_version, []
        try:
            for page in settings.page_ids:
                body = http.json("GET", f"/{version}/{page}", stream="check", params={"fields": "name"})
                names.append(f"Page {body.get('name', page)!r}")
            for ig in settings.instagram_account_ids:
                body = http.json("GET", f"/{version}/{ig}", stream="check", params={"fields": "username"})
                names.append(f"Instagram @{body.get('username', ig)}")
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"connected to {', '.join(names)}")

    def diagnose(self, settings: MetaPagesSettings, http: Requester | None) -> list[Diagnosis]:
        return [graph.diagnose_version(settings.api_version, dt.date.today())]

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub_meta_pages.fake import demo_spec

        return demo_spec(seed=seed, scale=scale)
