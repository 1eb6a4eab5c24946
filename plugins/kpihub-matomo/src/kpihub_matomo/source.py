"""The Matomo connector: page load times per page URL and day, and (optionally) a day's visits.

``page_performance`` reads ``Actions.getPageUrls`` (``flat=1``, ``showRawMetrics=1``): one row per
page URL and day with the six page timings' sums and counts (see :mod:`kpihub_matomo.rows` for why
those columns) → ``page_performance_daily``. ``traffic`` (off unless ``traffic = true``) reads
``API.get`` → ``web_traffic_daily``. Both are report streams: every sync re-reads ``lookback_days``
before its last day, because Matomo re-archives today every ``time_before_today_archive_considered_outdated``
seconds (900 by default, config/global.ini.php) and yesterday once the day is over, and the engine
replaces the re-read days. The days are the **site's** days, in the time zone Matomo has for the site.

A Python source, not a declarative file: the token goes in a POST form body (the toolkit's auth puts
keys in headers or the URL), the body is an object keyed by date, errors come with HTTP 200, and a
row's load time is worked out from twelve columns.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr

from kpihub import (
    MONEY,
    CheckResult,
    DemoSpec,
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
from kpihub.http import Requester
from kpihub_matomo import api
from kpihub_matomo.api import MatomoAPIError, TokenAuth, WireError
from kpihub_matomo.rows import TIMINGS, performance_row, traffic_row

PAGE_URLS = "Actions.getPageUrls"
TOTALS = "API.get"
SITE = "SitesManager.getSiteFromId"
TRAFFIC_COLUMNS = "nb_visits,nb_uniq_visitors,nb_pageviews,bounce_count,nb_conversions,revenue"
#: Re-reads of a date range whose first page changed while its later pages were read.
REREADS = 3
COUNT = {"minimum": "0"}


class MatomoSettings(SourceSettings):
    """``[sources.matomo]``: the Matomo URL, a token with view access, the site."""

    #: Where Matomo answers (``https://analytics.example.com``, ``https://example.matomo.cloud``, a path is kept).
    base_url: str
    #: A personal token (Administration → Personal → Security); sent in the POST body only.
    token_auth: SecretStr
    site_id: int = Field(ge=1)
    #: The site's time zone as Matomo has it; left out, read from Matomo. Given, a sync refuses a site
    #: whose zone differs (the days would be another zone's days than you expect).
    time_zone: str | None = None
    #: Also read the site's visits per day into web_traffic_daily (off: GA4 usually feeds that table).
    traffic: bool = False
    #: Days before the last synced day read again each sync (today's and yesterday's archives change).
    lookback_days: int = Field(default=2, ge=1, le=60)
    #: Days per request (a date range answered day by day).
    days_per_request: int = Field(default=31, ge=1, le=366)
    #: Rows per day per request (``filter_limit``); a day with more is paged with ``filter_offset``.
    page_size: int = Field(default=1000, ge=1, le=100_000)
    #: Requests at once: each may make Matomo archive on the spot (browser-triggered archiving).
    max_concurrency: int = Field(default=2, ge=1, le=8)
    #: Seconds per request: an answer Matomo archives on the spot can take a while.
    timeout: float = Field(default=120.0, gt=0)


@dataclass(frozen=True)
class Site:
    """What Matomo says of the site: its name, time zone (as Matomo writes it) and currency."""

    name: str
    time_zone: str
    currency: str | None

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """Today in the site's time zone (Matomo's ``today`` for its reports)."""
        return (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone(self.time_zone)).date()


def zone(name: str) -> dt.tzinfo:
    """An IANA zone, or Matomo's manual offsets (``UTC+5.5``, ``UTC-3``); one line naming it otherwise."""
    m = re.fullmatch(r"UTC([+-]\d{1,2}(?:\.\d+)?)?", name.strip())
    if m:
        hours = float(m.group(1) or 0)
        return dt.timezone(dt.timedelta(hours=hours))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} is neither an IANA zone nor Matomo's UTC±H") from None


def _fail(ctx: StreamContext[Any], message: str) -> SourceError:
    return SourceError(f"{ctx.source_id}/{ctx.stream}: {message}", source=ctx.source_id, stream=ctx.stream)


def _malformed(ctx: StreamContext[Any], message: str) -> MalformedResponseError:
    return MalformedResponseError(f"{ctx.source_id}/{ctx.stream}: {message}", source=ctx.source_id, stream=ctx.stream)


def ask(ctx: StreamContext[MatomoSettings], method: str, params: Mapping[str, Any]) -> Any:
    """``api.call`` for a stream: Matomo's error body fails the stream, naming it and Matomo's message."""
    try:
        return api.call(ctx.http, method, {"idSite": ctx.settings.site_id, **params}, stream=ctx.stream)
    except MatomoAPIError as exc:
        when = f" for {params['date']}" if "date" in params else ""
        raise _fail(ctx, f"Matomo answered {method}{when} with an error: {exc.message}") from None


def site_info(http: Requester, s: MatomoSettings, stream: str) -> Site:
    body = api.call(http, SITE, {"idSite": s.site_id}, stream=stream)
    if not isinstance(body, dict) or not isinstance(body.get("timezone"), str):
        raise WireError(f"{SITE} sent no timezone for site {s.site_id}")
    currency = body.get("currency") if isinstance(body.get("currency"), str) else None
    return Site(str(body.get("name") or s.site_id), body["timezone"], currency)


class _Report(Stream[MatomoSettings]):
    """What both report streams share: the site, the window in its days, the date-range requests."""

    def site(self, ctx: StreamContext[MatomoSettings]) -> Site:
        s = ctx.settings
        try:
            site = site_info(ctx.http, s, ctx.stream)
            zone(site.time_zone)
        except MatomoAPIError as exc:
            raise _fail(ctx, f"Matomo answered {SITE} with an error: {exc.message}") from None
        except (WireError, ValueError) as exc:
            raise _malformed(ctx, str(exc)) from None
        if s.time_zone is not None and s.time_zone != site.time_zone:
            raise _fail(
                ctx,
                f"site {s.site_id} is in time zone {site.time_zone!r} in Matomo, not {s.time_zone!r} as configured "
                "(its days would not be the days you expect): fix time_zone or leave it out",
            )
        return site

    def window(self, ctx: StreamContext[MatomoSettings], state: Mapping[str, Any] | None, site: Site) -> list[Any]:
        """The (first, last) chunks of the days to read: the lookback window, ending on the site's today."""
        s = ctx.settings
        first, _ = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        last = site.today()
        ctx.window = (first, last)  # the site's today, which may be a day ahead of (or behind) UTC's
        chunks = []
        while first <= last:
            end = min(last, first + dt.timedelta(days=s.days_per_request - 1))
            chunks.append((first, end))
            first = end + dt.timedelta(days=1)
        return chunks

    def estimate(self, plan: PlanContext[MatomoSettings]) -> Estimate:
        """One request per ``days_per_request`` days of the window (at least: a full day pages on)."""
        s = plan.settings
        first, last = plan.report_window(lookback_days=s.lookback_days, start_date=s.start_date)
        n = max(0, (last - first).days + 1)
        requests = (
            Requests(1, api.API_PATH, "POST"),
            Requests(math.ceil(n / s.days_per_request), api.API_PATH, "POST"),
        )
        return Estimate("window", first, last, requests, None, True, f"{n} days, {s.days_per_request} a request")


class PagePerformance(_Report):
    """Page URLs × days with their page timings (``Actions.getPageUrls``, flat, raw metrics)."""

    def read(
        self, ctx: StreamContext[MatomoSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        site = self.site(ctx)
        chunks = self.window(ctx, state, site)
        readers = [self._chunk(ctx, site, first, last) for first, last in chunks]
        yield from interleave(readers, max_workers=ctx.settings.max_concurrency)

    def _chunk(
        self, ctx: StreamContext[MatomoSettings], site: Site, first: dt.date, last: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        for _ in range(REREADS):
            rows, stable = self._pages(ctx, first, last)
            if stable:
                break
            ctx.note(f"{ctx.stream}: Matomo re-archived days of {first}..{last} while they were paged: read again")
        else:
            raise _fail(
                ctx,
                f"Matomo re-archived {first}..{last} while it was paged, {REREADS} times in a row; "
                "sync again later, or raise page_size so a day fits one request",
            )
        out = []
        for day, day_rows in rows.items():
            for row in day_rows.values():
                try:
                    out.append(performance_row(day, row, site.time_zone))
                except WireError as exc:
                    raise _malformed(ctx, f"{PAGE_URLS}: {exc}") from None
        averaged = sum(r["load_time_from"] == "average" for r in out)
        if averaged:
            ctx.note(
                f"{ctx.stream}: Matomo sent averages, not sums (showRawMetrics ignored): load times are "
                "avg_time_* × page views, within 0.5 ms a page view and timing",
                count=averaged,
            )
        if out:
            yield out

    def _pages(
        self, ctx: StreamContext[MatomoSettings], first: dt.date, last: dt.date
    ) -> tuple[dict[dt.date, dict[str, Any]], bool]:
        """Every row of every day of ``first..last`` by label, paging full days on with ``filter_offset``.

        Matomo pages each day's table separately, so the next request asks only for the span of the days
        that filled a page. Rows are sorted by label, so a re-archive between pages shifts them: when more
        than one page was needed, the first page is asked again and must not have changed.
        """
        s = ctx.settings
        rows: dict[dt.date, dict[str, Any]] = {d: {} for d in api.days(first, last)}
        span: tuple[dt.date, dt.date] | None = (first, last)
        offset, opening = 0, None
        while span is not None:
            body = self._page(ctx, span, offset)
            opening = body if opening is None else opening
            full = []
            for day, day_rows in body.items():
                seen: set[str] = set()
                for row in day_rows:
                    if not isinstance(row, dict) or not isinstance(row.get("label"), str):
                        raise _malformed(ctx, f"{PAGE_URLS}: {day}: a row without a label: {str(row)[:80]}")
                    if row["label"] in seen:  # two rows of one page: not a shift, and not to be dropped
                        raise _malformed(ctx, f"{PAGE_URLS}: {day}: page {row['label']!r} is in the answer twice")
                    seen.add(row["label"])
                    rows[day][row["label"]] = row  # a label of an earlier page (rows shifted): its newer values
                if len(day_rows) >= s.page_size:
                    full.append(day)
            span = (min(full), max(full)) if full else None
            offset += s.page_size
        stable = offset == s.page_size or self._page(ctx, (first, last), 0) == opening
        return rows, stable

    def _page(
        self, ctx: StreamContext[MatomoSettings], span: tuple[dt.date, dt.date], offset: int
    ) -> dict[dt.date, list[Any]]:
        first, last = span
        params = {
            "period": "day",
            "date": f"{first.isoformat()},{last.isoformat()}",
            "flat": 1,
            "showRawMetrics": 1,  # keeps sum_time_* (temporary metrics otherwise dropped)
            "filter_limit": ctx.settings.page_size,
            "filter_offset": offset,
            "filter_sort_column": "label",  # a stable order to page in (the default sorts by hits)
            "filter_sort_order": "asc",
        }
        try:
            body = api.per_day(ask(ctx, PAGE_URLS, params), first, last)
        except WireError as exc:
            raise _malformed(ctx, f"{PAGE_URLS}: {exc}") from None
        bad = [d for d, v in body.items() if not isinstance(v, list)]
        if bad:
            raise _malformed(ctx, f"{PAGE_URLS}: {bad[0]}: expected a list of rows, got {str(body[bad[0]])[:80]}")
        return body

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[MatomoSettings]) -> pa.RecordBatch:
        names = ("date", "page", "page_loads", "load_time_ms_total")
        return pa.RecordBatch.from_arrays([batch.column(n) for n in names], names=list(names))


class Traffic(_Report):
    """The site's visits, page views, bounces and goal conversions per day (``API.get``)."""

    def read(
        self, ctx: StreamContext[MatomoSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        site = self.site(ctx)
        readers = [self._chunk(ctx, site, first, last) for first, last in self.window(ctx, state, site)]
        yield from interleave(readers, max_workers=ctx.settings.max_concurrency)

    def _chunk(
        self, ctx: StreamContext[MatomoSettings], site: Site, first: dt.date, last: dt.date
    ) -> Iterator[list[dict[str, Any]]]:
        params = {"period": "day", "date": f"{first.isoformat()},{last.isoformat()}", "columns": TRAFFIC_COLUMNS}
        try:
            body = api.per_day(ask(ctx, TOTALS, params), first, last)
            rows = [traffic_row(d, v, ctx.settings.site_id, site.time_zone, site.currency) for d, v in body.items()]
        except WireError as exc:
            raise _malformed(ctx, f"{TOTALS}: {exc}") from None
        out = [r for r in rows if r is not None]
        if out:
            yield out

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[MatomoSettings]) -> pa.RecordBatch:
        n = batch.num_rows
        everything = pa.repeat(pa.scalar("(all)"), n)  # API.get is the site's total, not cut by channel
        visits, bounces = batch.column("visits"), batch.column("bounces")
        engaged = pc.subtract(visits, bounces)
        columns = {
            "date": batch.column("date"),
            "time_zone": batch.column("time_zone"),
            "property_id": batch.column("site_id"),
            "source": everything,
            "medium": everything,
            "campaign": everything,
            "sessions": visits,
            "users": batch.column("unique_visitors"),
            "engaged_sessions": engaged,
            "page_views": batch.column("page_views"),
            "key_events": batch.column("conversions"),
            "revenue": batch.column("revenue"),
            "currency": batch.column("currency"),
        }
        return pa.RecordBatch.from_pydict(columns)


def performance_schema() -> pa.Schema:
    fields = [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("page", pa.string(), nullable=False),
        pa.field("time_zone", pa.string()),
        pa.field("page_views", pa.int64(), metadata=COUNT),
        pa.field("visits", pa.int64(), metadata=COUNT),
        pa.field("page_loads", pa.int64(), metadata=COUNT),
        pa.field("load_time_ms_total", pa.float64(), metadata=COUNT),
    ]
    for timing in TIMINGS:
        fields += [pa.field(f"{timing}_hits", pa.int64(), metadata=COUNT)]
        fields += [pa.field(f"{timing}_ms_total", pa.float64(), metadata=COUNT)]
    fields += [pa.field("matomo_avg_page_load_s", pa.float64()), pa.field("load_time_from", pa.string())]
    return pa.schema(fields)


TRAFFIC_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("site_id", pa.string(), nullable=False),
        pa.field("time_zone", pa.string()),
        pa.field("visits", pa.int64(), metadata=COUNT),
        pa.field("unique_visitors", pa.int64(), metadata=COUNT),
        pa.field("page_views", pa.int64(), metadata=COUNT),
        pa.field("bounces", pa.int64(), metadata=COUNT),
        pa.field("conversions", pa.float64(), metadata=COUNT),
        pa.field("revenue", MONEY),
        pa.field("currency", pa.string()),
    ]
)


class MatomoSource(Source[MatomoSettings]):
    """The Matomo Reporting API (self-hosted Matomo 4+ or Matomo Cloud)."""

    name = "matomo"
    title = "Matomo (page performance, visits)"
    settings_class = MatomoSettings

    def streams(self, settings: MatomoSettings) -> list[Stream[MatomoSettings]]:
        out: list[Stream[MatomoSettings]] = [
            PagePerformance(
                "page_performance",
                performance_schema(),
                primary_key=("date", "label"),
                cursor_field="date",
                canonical_table="page_performance_daily",
                on_new_field="ignore",
            )
        ]
        if settings.traffic:
            out.append(
                Traffic(
                    "traffic",
                    TRAFFIC_SCHEMA,
                    primary_key=("date", "site_id"),
                    cursor_field="date",
                    canonical_table="web_traffic_daily",
                    on_new_field="ignore",
                )
            )
        return out

    def auth(self, settings: MatomoSettings) -> TokenAuth:
        return TokenAuth(settings.token_auth)

    def parallel_streams(self, settings: MatomoSettings) -> int:
        return min(settings.max_parallel_streams, settings.max_concurrency)

    def check(self, settings: MatomoSettings, http: Requester) -> CheckResult:
        try:
            site = site_info(http, settings, "check")
        except HTTPError as exc:
            return CheckResult(False, str(exc).splitlines()[0])
        except MatomoAPIError as exc:
            return CheckResult(False, f"Matomo answered {SITE} with an error: {exc.message}")
        except WireError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"connected to Matomo: site {settings.site_id} {site.name!r} ({site.time_zone})")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub_matomo.fake import demo_spec

        return demo_spec(seed=seed, scale=scale)
