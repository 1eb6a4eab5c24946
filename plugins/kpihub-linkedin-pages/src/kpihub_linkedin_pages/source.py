"""LinkedIn organization page statistics: organic share and follower statistics per UTC day -> ``social_daily``.

Per organization and sync: the follower total (``/rest/networkSizes``), the time-bound share
statistics and follower gains over the window (``timeIntervals`` by ``DAY``), and the total again.
A day's followers are the total walked back over the later days' gains; where a later day has no
gains yet, or the total moved while the statistics were read, they are null, never a guess.
See the README for the sources of every rule.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr, field_validator

from kpihub import (
    CheckResult,
    DemoSpec,
    HTTPError,
    MalformedResponseError,
    PaginationError,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
)
from kpihub.http import BearerAuth, get_path

SHARES = "/rest/organizationalEntityShareStatistics"
FOLLOWERS = "/rest/organizationalEntityFollowerStatistics"
DAY_MS = 86_400_000
EPOCH = dt.date(1970, 1, 1)
#: The interaction counts whose sum is a day's engagements (``engagement`` itself is a ratio).
INTERACTIONS = ("click_count", "like_count", "comment_count", "share_count")
SHARE_FIELDS = {
    "impression_count": "impressionCount",
    "unique_impressions_count": "uniqueImpressionsCount",
    "click_count": "clickCount",
    "like_count": "likeCount",
    "comment_count": "commentCount",
    "share_count": "shareCount",
    "engagement": "engagement",
}
MOVED = "followers stored as null: the follower total changed on every read of the statistics"
#: Times a page that came back empty or repeating is asked for again.
REPEATS = 3
NO_TOTAL = "followers stored as null: networkSizes gave no firstDegreeSize"


class LinkedInPagesSettings(SourceSettings):
    """``[sources.linkedin_pages]``: an OAuth token of a page administrator and the organizations."""

    base_url: str = "https://api.linkedin.com"
    #: OAuth 2.0 token with ``rw_organization_admin`` (the member administers the pages).
    access_token: SecretStr
    #: ``LinkedIn-Version`` (YYYYMM); versions are sunset about a year after release.
    api_version: str = "202610"
    organization_ids: list[str] = Field(min_length=1)
    #: Days before the last one loaded read again (LinkedIn revises recent statistics); LinkedIn
    #: refuses a time range that starts less than two days ago.
    lookback_days: int = Field(default=3, ge=2, le=90)
    #: Elements per request (Rest.li ``count``; a year of days is 366).
    page_size: int = Field(default=100, ge=1, le=1000)
    #: Reads of the statistics while the follower total keeps moving, before followers are null.
    follower_reads: int = Field(default=3, ge=1, le=10)

    @field_validator("organization_ids")
    @classmethod
    def _numeric(cls, ids: list[str]) -> list[str]:
        cleaned = [i.strip().rsplit(":", 1)[-1] for i in ids]  # urn:li:organization:123 or 123
        bad = [i for i in cleaned if not i.isdigit()]
        if bad:
            raise ValueError(f"organization id {bad[0]!r} is not numeric")
        return cleaned


STATISTICS = pa.schema(
    [
        pa.field("organization_id", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        *(pa.field(name, pa.int64(), metadata={"minimum": "0"}) for name in list(SHARE_FIELDS)[:-1]),
        # LinkedIn's own rate ((clicks + likes + comments + shares) / impressions): kept raw, never added up.
        pa.field("engagement", pa.float64()),
        pa.field("organic_follower_gain", pa.int64()),
        pa.field("paid_follower_gain", pa.int64()),
        pa.field("followers", pa.int64(), metadata={"minimum": "0"}),
    ]
)


def ms(day: dt.date) -> int:
    """Midnight UTC of ``day`` in epoch milliseconds (LinkedIn's ``timeRange`` unit)."""
    return (day - EPOCH).days * DAY_MS


def statistics_url(path: str, organization: str, first: dt.date, last: dt.date) -> str:
    """A time-bound statistics finder in Rest.li 2.0 syntax: the URN encoded, the structure not."""
    urn = urllib.parse.quote(f"urn:li:organization:{organization}", safe="")
    intervals = f"(timeRange:(start:{ms(first)},end:{ms(last + dt.timedelta(days=1))}),timeGranularityType:DAY)"
    return f"{path}?q=organizationalEntity&organizationalEntity={urn}&timeIntervals={intervals}"


def earliest_day(today: dt.date) -> dt.date:
    """The first day of LinkedIn's rolling 12 months of share statistics."""
    try:
        a_year_ago = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        a_year_ago = today.replace(year=today.year - 1, day=28)
    return a_year_ago + dt.timedelta(days=1)


class PageStatistics(Stream[LinkedInPagesSettings]):
    def read(
        self, ctx: StreamContext[LinkedInPagesSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        s = ctx.settings
        since, today = ctx.report_window(state, lookback_days=s.lookback_days, start_date=s.start_date)
        first = earliest_day(today)
        if since < first:
            message = f"{since} is before LinkedIn's rolling 12 months of page statistics: read from {first}"
            ctx.log.warning(message)
            ctx.note(message)
            since = first
            ctx.window = (since, today)  # rows LinkedIn no longer serves are kept, not replaced
        for organization in s.organization_ids:
            yield self._organization(ctx, organization, since, today)

    def _organization(
        self, ctx: StreamContext[LinkedInPagesSettings], organization: str, since: dt.date, today: dt.date
    ) -> list[dict[str, Any]]:
        total: int | None = None
        for _ in range(ctx.settings.follower_reads):
            before = follower_total(ctx, organization)
            shares = elements(ctx, SHARES, organization, since, today)
            gains = elements(ctx, FOLLOWERS, organization, since, today)
            total = follower_total(ctx, organization)
            if total == before:
                break
            ctx.log.info("organization %s: the follower total moved while reading; reading again", organization)
        else:
            # A follow between the reads is in the total but maybe not in the gains: no exact walk back.
            ctx.note(MOVED)
            total = None
        return daily_rows(ctx, organization, since, today, shares, gains, total)

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[LinkedInPagesSettings]) -> pa.RecordBatch:
        counted = pc.is_valid(batch.column("impression_count"))
        interactions = [pc.fill_null(batch.column(c), 0) for c in INTERACTIONS]
        total = pc.add(pc.add(interactions[0], interactions[1]), pc.add(interactions[2], interactions[3]))
        return pa.RecordBatch.from_pydict(
            {
                "date": batch.column("date"),
                "platform": pa.array(["linkedin"] * batch.num_rows, pa.string()),
                "account_id": batch.column("organization_id"),
                "impressions": batch.column("impression_count"),
                "reach": batch.column("unique_impressions_count"),
                # A day without share statistics has unknown engagements, not 0.
                "engagements": pc.if_else(counted, total, pa.scalar(None, pa.int64())),
                "followers": batch.column("followers"),
            }
        )


def follower_total(ctx: StreamContext[LinkedInPagesSettings], organization: str) -> int | None:
    """The organization's follower count now: ``networkSizes`` ``firstDegreeSize``."""
    urn = urllib.parse.quote(f"urn:li:organization:{organization}", safe="")
    body = ctx.http.json("GET", f"/rest/networkSizes/{urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER", stream=ctx.stream)
    size = body.get("firstDegreeSize") if isinstance(body, dict) else None
    if size is None:
        ctx.note(NO_TOTAL)
    return None if size is None else int(size)


def elements(
    ctx: StreamContext[LinkedInPagesSettings], path: str, organization: str, since: dt.date, today: dt.date
) -> dict[dt.date, dict[str, Any]]:
    """The day elements of a time-bound statistics finder, by UTC day, in Rest.li ``start``/``count`` pages.

    Paged by hand: httpx would replace the Rest.li query (whose parentheses must stay unencoded) with
    the paging parameters. A page that comes back without elements before ``paging.total`` is
    reached, or with only days already read, is asked for again, then fails the stream.
    """
    size = ctx.settings.page_size
    url = statistics_url(path, organization, since, today)
    out: dict[dt.date, dict[str, Any]] = {}
    start, again = 0, 0
    while True:
        body = ctx.http.json("GET", f"{url}&start={start}&count={size}", stream=ctx.stream)
        page = body.get("elements") if isinstance(body, dict) else None
        total = get_path(body, "paging.total") if isinstance(body, dict) else None
        days = [element_day(e, ctx.stream, path) for e in page or []]
        short = not days and total is not None and start < int(total)
        if short or (days and all(d in out for d in days)):
            again += 1
            if again > REPEATS:
                raise PaginationError(
                    f"linkedin_pages/{ctx.stream}: {path} for organization {organization}: the page at "
                    f"start={start} of {total} came back {'empty' if short else 'repeating read days'} "
                    f"{again} times",
                    source="linkedin_pages",
                    stream=ctx.stream,
                )
            continue
        again = 0
        out.update(zip(days, page or [], strict=True))
        start += len(days)
        if not days or total is None or start >= int(total):
            return out


def element_day(element: Mapping[str, Any], stream: str, path: str) -> dt.date:
    """The UTC day an element covers; anything but one whole day is a malformed response."""
    span = element.get("timeRange") or {}
    start, end = span.get("start"), span.get("end")
    if not isinstance(start, int) or end != start + DAY_MS or start % DAY_MS:
        raise MalformedResponseError(
            f"linkedin_pages/{stream}: {path}: element timeRange {span!r} is not one UTC day",
            source="linkedin_pages",
            stream=stream,
        )
    return EPOCH + dt.timedelta(days=start // DAY_MS)


def net_gain(gains: Mapping[str, Any]) -> int:
    """Organic plus paid follower gain; both spellings (``…Gain`` documented, ``…Gains`` seen)."""
    organic = gains.get("organicFollowerGain", gains.get("organicFollowerGains")) or 0
    paid = gains.get("paidFollowerGain", gains.get("paidFollowerGains")) or 0
    return int(organic) + int(paid)


def daily_rows(
    ctx: StreamContext[LinkedInPagesSettings],
    organization: str,
    since: dt.date,
    today: dt.date,
    shares: Mapping[dt.date, Mapping[str, Any]],
    gains: Mapping[dt.date, Mapping[str, Any]],
    total: int | None,
) -> list[dict[str, Any]]:
    """One row per day with statistics (and today, which carries the total as read).

    followers(d) = total − Σ gains of the days after d up to today; a day whose gains LinkedIn has
    not reported yet stops the walk, and the days before it keep null followers.
    """
    followers: dict[dt.date, int] = {}
    running, day = total, today
    while running is not None and day >= since:
        followers[day] = running
        gain = (gains.get(day) or {}).get("followerGains")
        if gain is None:
            if day > since:
                ctx.note(f"followers before {day} stored as null: LinkedIn reports no follower gains for {day} yet")
            break
        running -= net_gain(gain)
        day -= dt.timedelta(days=1)
    rows = []
    for day in sorted({*shares, *gains, today}):
        if not since <= day <= today:
            continue
        stats = (shares.get(day) or {}).get("totalShareStatistics") or {}
        gain = (gains.get(day) or {}).get("followerGains") or {}
        rows.append(
            {
                "organization_id": organization,
                "date": day.isoformat(),  # as JSON would carry it: the normalizer reads ISO dates
                **{column: stats.get(field) for column, field in SHARE_FIELDS.items()},
                "organic_follower_gain": gain.get("organicFollowerGain", gain.get("organicFollowerGains")),
                "paid_follower_gain": gain.get("paidFollowerGain", gain.get("paidFollowerGains")),
                "followers": followers.get(day),
            }
        )
    return rows


class LinkedInPagesSource(Source[LinkedInPagesSettings]):
    """LinkedIn Community Management API (organization page statistics)."""

    name = "linkedin_pages"
    title = "LinkedIn Pages"
    settings_class = LinkedInPagesSettings

    def streams(self, settings: LinkedInPagesSettings) -> list[Stream[LinkedInPagesSettings]]:
        return [
            PageStatistics(
                "page_statistics",
                STATISTICS,
                primary_key=("organization_id", "date"),
                cursor_field="date",
                canonical_table="social_daily",
            )
        ]

    def auth(self, settings: LinkedInPagesSettings) -> httpx.Auth:
        return BearerAuth(settings.access_token)

    def headers(self, settings: LinkedInPagesSettings) -> dict[str, str]:
        return {"LinkedIn-Version": settings.api_version, "X-Restli-Protocol-Version": "2.0.0"}

    def check(self, settings: LinkedInPagesSettings, http: Any) -> CheckResult:
        try:
            names = [
                http.json("GET", f"/rest/organizations/{o}", stream="check").get("localizedName")
                for o in settings.organization_ids
            ]
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"connected to {', '.join(map(str, names))}")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub_linkedin_pages.fake import demo_spec

        return demo_spec(seed=seed, scale=scale)
