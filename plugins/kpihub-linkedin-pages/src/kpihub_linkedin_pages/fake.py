"""A fake LinkedIn Community Management API (organization page statistics) on 127.0.0.1.

What it serves, and where each shape comes from:

* ``GET /rest/organizationalEntityShareStatistics?q=organizationalEntity&organizationalEntity=
  urn%3Ali%3Aorganization%3A{id}&timeIntervals=(timeRange:(start:{ms},end:{ms}),timeGranularityType:DAY)``
  — organic statistics only, "only within the past 12 months, using a rolling 12-month window";
  without ``timeIntervals`` lifetime totals (learn.microsoft.com/en-us/linkedin/marketing/
  community-management/organizations/share-statistics). Elements ``{organizationalEntity,
  timeRange: {start, end}, totalShareStatistics: {impressionCount, uniqueImpressionsCount,
  clickCount, likeCount, commentCount, shareCount, engagement}}`` (Airbyte source-linkedin-pages
  ``manifest.yaml`` schema; ``engagement`` a number there, LinkedIn's ratio of interactions to
  impressions, so here a rounded ratio). One element per UTC day, zeros included.
* ``GET /rest/organizationalEntityFollowerStatistics`` with the same parameters — time-bound, "the
  aggregate follower count for both paid and organic followers during the days" as
  ``followerGains: {organicFollowerGain, paidFollowerGain}`` (the follower-statistics page;
  Airbyte's ``follower_statistics_time_bound`` schema). Gains are net changes here (a lost
  follower is a negative gain), so the total is the start count plus every gain.
* ``GET /rest/networkSizes/urn%3Ali%3Aorganization%3A{id}?edgeType=COMPANY_FOLLOWED_BY_MEMBER``
  → ``{"firstDegreeSize": n}``: "This endpoint no longer returns totalFollowerCounts. Use the
  networkSizes API" (the follower-statistics page; Airbyte's ``total_follower_count`` stream).
* ``GET /rest/organizations/{id}`` → ``{id, localizedName, vanityName, …}`` (Airbyte's
  ``organization_lookup``).
* Rest.li collection paging: ``start``/``count`` (default 10), ``paging: {start, count, total,
  links}`` (learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/pagination; that the
  statistics finders page like other collections is not confirmed: a client that pages by the
  declared total reads them either way).
* A time range starting more than 12 months or less than two days before the request is
  ``400 … Invalid timeIntervals parameter`` (the error Airbyte's connector matches).
* Headers ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0``. Errors
  ``{status, serviceErrorCode, code, message}``: 401 ``INVALID_ACCESS_TOKEN`` (65600), 403
  ``ACCESS_DENIED`` (100, "Not enough permissions to access: …", a member who is no page
  administrator), 426 ``NONEXISTENT_VERSION``, 429 ``TOO_MANY_REQUESTS`` (101) with or without
  ``Retry-After`` (LinkedIn documents no rate-limit headers).

With ``start``/``end`` the fake is a business's page over those dates (:func:`demo_spec`: the
demo business): about 1,500 impressions a day (fewer at weekends), 2-6 % of them interactions,
followers growing from 3,000; from the day after ``end`` to today a quiet page (elements of
zeros). The rolling 12 months hold either way: LinkedIn serves nothing older, nor does the fake.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import urllib.parse
from typing import Any

import pyarrow as pa

from kpihub import DemoSpec
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Normalizer, Paging, route

__all__ = ["FakeLinkedInPages", "demo_spec"]

DAY_MS = 86_400_000
EPOCH = dt.date(1970, 1, 1)
_INTERVALS = re.compile(r"\(timeRange:\(start:(\d+),end:(\d+)\),timeGranularityType:DAY\)")
_URN = "urn:li:organization:"
STATISTICS = r"^/rest/organizationalEntity(Share|Follower)Statistics$"
_STATS = (
    "impressionCount",
    "uniqueImpressionsCount",
    "clickCount",
    "likeCount",
    "commentCount",
    "shareCount",
    "organicFollowerGain",
    "paidFollowerGain",
)


def _ms(day: dt.date) -> int:
    return (day - EPOCH).days * DAY_MS


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


class FakeLinkedInPages(FakeAPIServer):
    """Seeded daily statistics per organization from ``days`` ago through today (UTC)."""

    paging = (Paging(STATISTICS, records="elements", param="start", offset=True),)

    def __init__(
        self,
        *,
        seed: int = 3,
        organizations: dict[str, str] | None = None,
        days: int = 400,
        token: str = "AQVfakeLinkedInPagesToken7",
        version: str = "202610",
        start: dt.date | None = None,
        end: dt.date | None = None,
        scale: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.token = token
        self.version = version
        self.organizations = organizations or {"2414183": "Kpihub Demo AS", "5012345": "Kpihub Labs"}
        self._rng = random.Random(seed)
        #: The days LinkedIn has not processed yet (the newest ``lag_days`` are left out of statistics).
        self.lag_days = 0
        #: organization -> day -> the day's statistics.
        self.days: dict[str, dict[dt.date, dict[str, int]]] = {o: {} for o in self.organizations}
        #: Followers each organization had before its first day.
        self.base: dict[str, int] = dict.fromkeys(self.organizations, 3_000 * scale)
        today = utc_today()
        if start is None:
            self.base = {o: self._rng.randint(500, 20_000) for o in self.organizations}
            for org in self.organizations:
                for back in range(days, -1, -1):
                    self.days[org][today - dt.timedelta(days=back)] = self._day()
            return
        for org in self.organizations:
            day = start
            while day <= max(end or today, today):
                active = end is None or day <= end
                self.days[org][day] = self._business_day(day, scale) if active else dict.fromkeys(_STATS, 0)
                day += dt.timedelta(days=1)

    def _day(self) -> dict[str, int]:
        rng = self._rng
        impressions = rng.randint(0, 4000)
        return {
            "impressionCount": impressions,
            "uniqueImpressionsCount": int(impressions * rng.uniform(0.5, 0.9)),
            "clickCount": int(impressions * rng.uniform(0, 0.03)),
            "likeCount": int(impressions * rng.uniform(0, 0.02)),
            "commentCount": int(impressions * rng.uniform(0, 0.004)),
            "shareCount": int(impressions * rng.uniform(0, 0.003)),
            "organicFollowerGain": rng.randint(-2, 9),
            "paidFollowerGain": rng.choice([0, 0, 0, 1, 3]),
        }

    def _business_day(self, day: dt.date, scale: int) -> dict[str, int]:
        """A company page's day: ~1,500 impressions (half at weekends), 2-6 % interactions, net follows."""
        rng = self._rng
        weekday = 1.15 if day.weekday() < 5 else 0.6  # B2B audiences read LinkedIn on work days
        impressions = int(1_500 * scale * weekday * rng.uniform(0.6, 1.4))
        interactions = round(impressions * rng.uniform(0.02, 0.06))
        clicks = round(interactions * rng.uniform(0.45, 0.6))
        likes = round(interactions * rng.uniform(0.3, 0.4))
        comments = round(interactions * rng.uniform(0.02, 0.05))
        return {
            "impressionCount": impressions,
            "uniqueImpressionsCount": int(impressions * rng.uniform(0.55, 0.8)),
            "clickCount": clicks,
            "likeCount": likes,
            "commentCount": comments,
            "shareCount": max(0, interactions - clicks - likes - comments),
            "organicFollowerGain": rng.randint(-6, 22) * scale,
            "paidFollowerGain": rng.choice([0, 0, 0, 1, 3]) * scale,
        }

    # -- the data -------------------------------------------------------------------------

    def total(self, org: str) -> int:
        """The follower count now: the start count plus every net gain so far."""
        return self.base[org] + sum(d["organicFollowerGain"] + d["paidFollowerGain"] for d in self.days[org].values())

    def followers_on(self, org: str, day: dt.date) -> int:
        """The true follower count at the end of ``day``."""
        return self.base[org] + sum(
            d["organicFollowerGain"] + d["paidFollowerGain"] for k, d in self.days[org].items() if k <= day
        )

    def social_daily(self, org: str, first: dt.date, last: dt.date) -> pa.RecordBatch:
        """The connector's ``social_daily`` rows for ``org`` over ``first..last``, from this fake's answers.

        As LinkedIn answered while those days were within its rolling 12 months (the followers walked
        back from the total on ``last``): for tests of a quarter today's 12 months no longer reach.
        """
        from kpihub_linkedin_pages.source import STATISTICS as SCHEMA
        from kpihub_linkedin_pages.source import PageStatistics, daily_rows

        days = [d for d in sorted(self.days[org]) if first <= d <= last]
        shares = {d: self._element(org, d, True) for d in days}
        gains = {d: self._element(org, d, False) for d in days}
        records = daily_rows(_Quiet(), org, first, last, shares, gains, self.followers_on(org, last))  # type: ignore[arg-type]
        batch = Normalizer("page_statistics", SCHEMA, primary_key=("organization_id", "date")).to_batch(records)
        return PageStatistics("page_statistics", SCHEMA).to_canonical(batch, None)  # type: ignore[arg-type]

    def restate(self, days: int = 2, *, follows: bool = True) -> list[tuple[str, dt.date]]:
        """LinkedIn revises the last ``days`` days: late interactions, and (``follows``) new follows."""
        changed = []
        with self.data_lock:
            for org, series in self.days.items():
                for day in sorted(series)[-days:]:
                    stats = series[day]
                    stats["impressionCount"] += self._rng.randint(1, 50)
                    stats["likeCount"] += self._rng.randint(1, 5)
                    stats["clickCount"] += self._rng.randint(0, 3)
                    if follows:
                        stats["organicFollowerGain"] += self._rng.randint(1, 3)
                    changed.append((org, day))
        return changed

    # -- protocol ---------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        known = {
            401: (65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
            403: (
                100,
                "ACCESS_DENIED",
                message or "Not enough permissions to access: organizationalEntityShareStatistics",
            ),
            426: (None, "NONEXISTENT_VERSION", f"Requested version {message} is not active"),
            429: (
                101,
                "TOO_MANY_REQUESTS",
                "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            ),
        }
        service, code, text = known.get(status, (None, "SERVER_ERROR", message))
        body: dict[str, Any] = {"status": status, "code": code, "message": text}
        if service is not None:
            body["serviceErrorCode"] = service
        return body

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") != f"Bearer {self.token}":
            return self.json(self.error_body(401, ""), 401)
        version = request.header("linkedin-version") or ""
        if version != self.version:
            return self.json(self.error_body(426, version), 426)
        if request.header("x-restli-protocol-version") != "2.0.0":
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Rest.li 2.0.0 required"}, 400)
        return None

    def _organization(self, urn: str) -> str | FakeResponse:
        org = urn[len(_URN) :] if urn.startswith(_URN) else ""
        if org not in self.organizations:
            path = "organizationalEntityShareStatistics.FINDER-organizationalEntity"
            return self.json(self.error_body(403, f"Not enough permissions to access: {path}.{self.version}"), 403)
        return org

    @route("GET", r"/rest/organizations/(?P<org>\d+)")
    def organization(self, request: FakeRequest) -> FakeResponse:
        org = self._organization(_URN + request.params["org"])
        if isinstance(org, FakeResponse):
            return org
        name = self.organizations[org]
        return self.json({"id": int(org), "localizedName": name, "vanityName": name.lower().replace(" ", "-")})

    @route("GET", r"/rest/networkSizes/(?P<urn>[^/]+)")
    def network_size(self, request: FakeRequest) -> FakeResponse:
        if request.query.get("edgeType") != "COMPANY_FOLLOWED_BY_MEMBER":
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "edgeType is required"}, 400)
        org = self._organization(urllib.parse.unquote(request.params["urn"]))
        if isinstance(org, FakeResponse):
            return org
        return self.json({"firstDegreeSize": self.total(org)})

    @route("GET", STATISTICS)
    def statistics(self, request: FakeRequest) -> FakeResponse:
        q = request.query
        if q.get("q") != "organizationalEntity":
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid finder"}, 400)
        org = self._organization(q.get("organizationalEntity", ""))
        if isinstance(org, FakeResponse):
            return org
        m = _INTERVALS.fullmatch(q.get("timeIntervals", ""))
        if not m:  # the lifetime form (no timeIntervals) is not what a daily connector asks for
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid timeIntervals"}, 400)
        start, end = int(m[1]), int(m[2])
        today = utc_today()
        if start < _ms(today.replace(year=today.year - 1)) or start > _ms(today - dt.timedelta(days=2)):
            message = "Invalid timeIntervals parameter: the start must be within 12 months and 2 days before now"
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": message}, 400)
        share = "Share" in request.path
        newest = today - dt.timedelta(days=self.lag_days)
        days = [d for d in sorted(self.days[org]) if start <= _ms(d) and _ms(d) + DAY_MS <= end and d <= newest]
        elements = [self._element(org, d, share) for d in days]
        first, count = int(q.get("start", "0")), int(q.get("count", "10"))
        page = elements[first : first + count]
        return self.json(
            {"paging": {"start": first, "count": count, "total": len(elements), "links": []}, "elements": page}
        )

    def _element(self, org: str, day: dt.date, share: bool) -> dict[str, Any]:
        stats = self.days[org][day]
        element: dict[str, Any] = {
            "organizationalEntity": _URN + org,
            "timeRange": {"start": _ms(day), "end": _ms(day) + DAY_MS},
        }
        if share:
            counts = {k: stats[k] for k in list(stats)[:6]}
            interactions = sum(stats[k] for k in ("clickCount", "likeCount", "commentCount", "shareCount"))
            ratio = interactions / stats["impressionCount"] if stats["impressionCount"] else 0.0
            element["totalShareStatistics"] = {**counts, "engagement": round(ratio, 6)}
        else:
            gains = {k: stats[k] for k in ("organicFollowerGain", "paidFollowerGain")}
            element["followerGains"] = gains
        return element


class _Quiet:
    """A stream context for :meth:`FakeLinkedInPages.social_daily`: what it would note, nobody reads."""

    def note(self, message: str, count: int = 1) -> None:
        pass


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """``kpihub demo``: the demo business's LinkedIn page over its dates, quiet since, served as LinkedIn would.

    LinkedIn serves page statistics for the last 12 months only, counted from the real date the
    demo runs: ``start_date`` stays the scored quarter's baseline quarter, and once that is more
    than 12 months ago the connector reads from the first day LinkedIn still serves and says so.
    """
    from kpihub.testing import DEMO_BUSINESS

    b = DEMO_BUSINESS
    organizations = {"2414183": b.name}
    server = FakeLinkedInPages(seed=seed, organizations=organizations, start=b.start, end=b.end, scale=scale)
    settings = {
        "access_token": server.token,
        "organization_ids": list(organizations),
        "start_date": "2026-01-01",  # the scored quarter and its baseline quarter
        "requests_per_second": None,
    }
    return DemoSpec(server=server, settings=settings)
