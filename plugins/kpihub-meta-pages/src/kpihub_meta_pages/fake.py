"""A fake Graph API for Page and Instagram account insights on 127.0.0.1, in Meta's wire format.

What it answers, and where the shapes come from (written for this plugin, no copied fixtures):

* ``GET /v{N}.0/{page-id}/insights?metric=a,b&period=day&since=&until=`` → ``{"data": [{"name",
  "period": "day", "values": [{"value": 41, "end_time": "2026-06-02T07:00:00+0000"}], "title",
  "description", "id": "{page-id}/insights/{metric}/day"}], "paging": {"previous", "next"}}``
  (the response Meta's blog 2023-04-12 "Introducing new metric to the Page Insights API" shows).
  ``since`` is the first day, ``until`` the end of the range; each ``end_time`` closes a Pacific
  day ("since January 1 → end_time January 2 at 8:00 GMT", the Page Insights guide). ``paging``
  holds the adjacent time windows as ``since``/``until`` unix seconds — not more rows of this one,
  so a client that follows ``next`` walks into the future. A quiet day (nothing posted, nobody
  saw the Page) is a value of ``0`` — the follower total unchanged — not a missing value: Meta's
  answers carry ``{"value": 0, "end_time": …}`` for such days (nov/fb_graph#30 shows a Page's
  daily series of zeros), and only breakdown metrics leave zeros out ("Breakdown metrics for Page
  post and Page view insights will only return non-zero values", the Page Insights reference).
  Days Meta has not published yet (after :attr:`FakeMetaPages.published_through`; "Data used to
  calculate metrics may be delayed up to 48 hours") and days before the fake's first send no
  value; a range without any, ``data: []``. More than 93 days between since and until is refused
  ("There cannot be more than 93 days (8035200 s) between since and until", as quoted by
  clients that guard against it; Meta's reference documents 90).
* Page metrics answered: ``page_media_view``, ``page_total_media_view_unique``,
  ``page_post_engagements``, ``page_follows`` (the Page's total followers that day),
  ``page_views_total``. Any other — the retired ``page_impressions``, ``page_fans``,
  ``page_engaged_users`` … — is "(#100) The value must be a valid insights metric", as Meta
  answers retired metrics on every version (the deprecated-metrics page).
* ``GET /v{N}.0/{ig-user-id}/insights?metric=…&metric_type=total_value&period=day&since=&until=``
  (unix seconds) → ``{"data": [{"name", "period", "title", "description", "total_value":
  {"value": N}, "id"}]}``; ``views`` and ``total_interactions`` need ``metric_type=total_value``;
  ``reach`` and ``follower_count`` also come as a series (``values`` with ``end_time``);
  ``follower_count`` is new followers per day, for the last 30 days only. Unknown metrics get
  "(#100) metric[0] must be one of the following values: …" (the wording in
  janu-software/facebook-php-sdk#17). A quiet account-day answers each metric with
  ``total_value: {"value": 0}`` (Graph API Explorer shows an account's quiet days as zeros,
  mbilling/PBIConnectors#8); one Meta has not published yet, or has nothing for, answers
  ``data: []`` ("If insights data you are requesting does not exist or is currently unavailable,
  the API will return an empty data set instead of 0", the account insights reference). Only
  complete days are answered ("Instagram's period=day returns only complete days",
  airbytehq/airbyte#74006).
* ``GET /v{N}.0/{id}?fields=…`` describes a Page (``name``, ``followers_count``) or an account
  (``username``, ``followers_count``).
* Errors ``{"error": {"message", "type": "OAuthException", "code", "fbtrace_id"}}``: a bad token
  is code 190; throttling (see :meth:`FakeMetaPages.throttle`) is HTTP 400 with code 80001 (a
  Page) or 80002 (an Instagram account) and ``X-Business-Use-Case-Usage`` saying when access
  returns; every answer about a Page or account carries that header with the share spent.
* :meth:`FakeMetaPages.restate` revises recent days the way Meta fills them in late ("Data used
  to calculate metrics may be delayed up to 48 hours"); :meth:`FakeMetaPages.advance` adds a day.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from kpihub import DemoSpec
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub_meta_pages.graph import PACIFIC, pacific_midnight

__all__ = ["FakeMetaPages", "demo_spec", "demo_targets"]

PAGE_METRICS = {
    "page_media_view": "Content views",
    "page_total_media_view_unique": "Viewers",
    "page_post_engagements": "Post engagements",
    "page_follows": "Followers",
    "page_views_total": "Page views",
}
IG_METRICS = ("reach", "views", "total_interactions", "accounts_engaged", "follower_count", "likes", "comments")
IG_TOTAL_ONLY = {"views", "total_interactions", "accounts_engaged", "likes", "comments"}
DAY = 86_400
RATE_DOC = "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."


def _yesterday() -> dt.date:
    return dt.datetime.now(PACIFIC).date() - dt.timedelta(days=1)


def _end_time(day: dt.date) -> str:
    """The ``end_time`` of ``day``'s value: the next Pacific midnight, written in UTC."""
    end = dt.datetime.fromtimestamp(pacific_midnight(day + dt.timedelta(days=1)), dt.timezone.utc)
    return end.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _range(since: dt.date, until: dt.date) -> list[dt.date]:
    """The days from ``since`` up to, not including, ``until``."""
    return [since + dt.timedelta(days=i) for i in range((until - since).days)]


def _day(value: str) -> dt.date | None:
    """A ``since``/``until`` value (a date, or unix seconds) as the Pacific day it starts."""
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value), PACIFIC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


class FakeMetaPages(FakeAPIServer):
    # Insights answers carry paging links to the adjacent windows, named by ``since``: declared so
    # page hooks run between requests. ``opaque=False``: a timestamp cannot be handed out as an alias.
    paging = (Paging(r"/v\d+\.0/\d+/insights", records="data", param="since", next_link="paging.next", opaque=False),)

    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.date | None = None,
        end: dt.date | None = None,
        token: str = "EAAGfakePageToken0123456789",
        pages: Mapping[str, str] | None = None,
        instagram: Mapping[str, str] | None = None,
        scale: int = 1,
        calls_per_day: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(seed=seed)
        self.token = token
        #: The days with activity; after ``last_day`` the Page and account are quiet (zeros).
        self.last_day = end or _yesterday()
        self.first_day = start or self.last_day - dt.timedelta(days=59)
        #: The last day Meta has published (complete Pacific days only): later days answer nothing.
        self.published_through = max(self.last_day, _yesterday())
        self.pages = dict(pages or {"104000000000001": "Nordlys Outdoor", "104000000000002": "Nordlys Outlet"})
        self.instagram = dict(instagram or {"17841400000000001": "nordlys.outdoor"})
        self.scale = scale
        self._data_rng = random.Random(seed)
        self._revisions = random.Random(seed * 7919 + 3)
        #: Page id -> day -> metric -> value; Instagram account id -> day -> metric -> value.
        self.facebook: dict[str, dict[dt.date, dict[str, int]]] = {p: {} for p in self.pages}
        self.ig: dict[str, dict[dt.date, dict[str, int]]] = {a: {} for a in self.instagram}
        self.followers_count = {a: 0 for a in self.instagram}
        day = self.first_day
        while day <= self.last_day:
            self._add_day(day)
            day += dt.timedelta(days=1)
        #: Rate limits: calls per object and rolling 24 h (``None``: unlimited); forced refusals.
        self.calls_per_day = calls_per_day
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._refuse: dict[str, tuple[int, int]] = {}
        self._usage: dict[str, str] = {}

    # -- data -----------------------------------------------------------------------------

    def _add_day(self, day: dt.date) -> None:
        rng, k = self._data_rng, self.scale
        for days in self.facebook.values():
            views = int(rng.randint(1_500, 6_000) * k)
            last = days.get(day - dt.timedelta(days=1), {}).get("page_follows", 12_000 * k + rng.randint(0, 500))
            days[day] = {
                "page_media_view": views,
                "page_total_media_view_unique": int(views * rng.uniform(0.45, 0.8)),
                "page_post_engagements": int(views * rng.uniform(0.02, 0.06)),
                "page_follows": max(0, last + rng.randint(-4, 18) * k),
                "page_views_total": int(views * rng.uniform(0.01, 0.03)),
            }
        for account, days in self.ig.items():
            views = int(rng.randint(3_000, 9_000) * k)
            reach = int(views * rng.uniform(0.4, 0.7))
            gained = rng.randint(2, 30) * k
            days[day] = {
                "views": views,
                "reach": reach,
                "accounts_engaged": int(reach * rng.uniform(0.03, 0.08)),
                "total_interactions": int(views * rng.uniform(0.03, 0.07)),
                "follower_count": gained,
                "likes": int(views * 0.03),
                "comments": int(views * 0.004),
            }
            self.followers_count[account] += gained - rng.randint(0, 5) * k

    def advance(self) -> dt.date | None:
        """Add the next day's data (the day after :attr:`last_day`), unless that day has not begun in Pacific time."""
        day = self.last_day + dt.timedelta(days=1)
        if day > dt.datetime.now(PACIFIC).date():
            return None
        self._add_day(day)
        self.last_day = day
        self.published_through = max(self.published_through, day)
        return day

    def values(self, platform: str, account: str, day: dt.date) -> dict[str, int] | None:
        """What Meta answers for ``account`` on ``day``: its data, zeros on a quiet day, ``None`` if unpublished."""
        store = self.facebook if platform == "facebook" else self.ig
        days = store[account]
        if day > self.published_through or day < self.first_day:
            return None
        if day in days:
            return days[day]
        if platform == "facebook":
            return {**dict.fromkeys(PAGE_METRICS, 0), "page_follows": self._page_follows(account)}
        return dict.fromkeys(IG_METRICS, 0)

    def restate(self, days: int = 2, fraction: float = 1.0) -> list[tuple[str, str, dt.date]]:
        """Revise the last ``days`` days of ``fraction`` of the Pages and accounts (late views, engagements).

        Returns the (platform, account, day) keys changed.
        """
        rng, changed = self._revisions, []
        recent = [self.last_day - dt.timedelta(days=i) for i in range(days)]
        for platform, store in (("facebook", self.facebook), ("instagram", self.ig)):
            accounts = sorted(store)
            for account in rng.sample(accounts, max(1, round(len(accounts) * fraction))):
                for day in recent:
                    values = store[account].get(day)
                    if values is None:
                        continue
                    late = rng.randint(5, 400) * self.scale
                    views = "page_media_view" if platform == "facebook" else "views"
                    engaged = "page_post_engagements" if platform == "facebook" else "total_interactions"
                    values[views] += late
                    values[engaged] += max(1, late // 25)
                    changed.append((platform, account, day))
        return changed

    # -- protocol ---------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        code, text = {
            400: (100, message),
            401: (190, "Invalid OAuth access token - Cannot parse access token"),
            403: (200, "(#200) Requires read_insights permission"),
            429: (4, "(#4) Application request limit reached"),
            500: (1, "An unknown error occurred"),
        }.get(status, (2, "Service temporarily unavailable"))
        error: dict[str, Any] = {
            "message": text,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": f"A{self.rng.getrandbits(64):X}",
        }
        if code in (1, 2, 4):
            error["is_transient"] = True
        return {"error": error}

    def _error(self, message: str, code: int = 100, kind: str = "OAuthException") -> FakeResponse:
        body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AfakeTrace"}}
        return self.json(body, 400)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        token = request.query.get("access_token") or (request.header("authorization") or "")[7:]
        if token != self.token:
            return self._error("Invalid OAuth access token - Cannot parse access token", 190)
        return self._admit(request)

    def json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:  # type: ignore[override]
        """Answers about a Page or account carry its usage header, as Meta's do."""
        usage, self._usage = self._usage, {}
        return FakeAPIServer.json(data, status, {**usage, **(headers or {})})

    # -- rate limits ----------------------------------------------------------------------------

    def throttle(self, account: str, times: int = 1, minutes: int = 1) -> None:
        """Refuse the next ``times`` calls about ``account`` as over its BUC limit, regaining in ``minutes``."""
        self._refuse[account] = (times, minutes)

    def _admit(self, request: FakeRequest) -> FakeResponse | None:
        m = re.fullmatch(r"/v\d+\.0/(\d+)(?:/insights)?", request.path)
        if m is None or (m.group(1) not in self.pages and m.group(1) not in self.instagram):
            return None
        account = m.group(1)
        kind, code = ("pages", 80001) if account in self.pages else ("instagram", 80002)
        now = self.clock()
        calls = self._calls.setdefault(account, deque())
        while calls and calls[0] <= now - DAY:
            calls.popleft()
        times, minutes = self._refuse.get(account, (0, 0))
        full = self.calls_per_day is not None and len(calls) >= self.calls_per_day
        if full:
            minutes = max(1, int((calls[0] + DAY - now) // 60) + 1)
        share = 100 if full or times else int(100 * len(calls) / self.calls_per_day) if self.calls_per_day else 1
        entry = {
            "type": kind,
            "call_count": share,
            "total_cputime": share // 2,
            "total_time": share // 2,
            "estimated_time_to_regain_access": minutes if full or times else 0,
        }
        self._usage = {"X-Business-Use-Case-Usage": orjson.dumps({account: [entry]}).decode()}
        if times or full:
            if times:
                self._refuse[account] = (times - 1, minutes)
            noun = "Page" if kind == "pages" else "Instagram"
            message = f"(#{code}) There have been too many calls to this {noun} account. Wait a bit and try again. "
            return self._error(message + RATE_DOC, code)
        calls.append(now)
        return None

    # -- endpoints ---------------------------------------------------------------------------------

    @route("GET", r"/v(?P<v>\d+)\.0/(?P<id>\d+)")
    def node(self, request: FakeRequest) -> FakeResponse:
        oid = request.params["id"]
        fields = request.query.get("fields", "").split(",")
        if oid in self.pages:
            node = {"id": oid, "name": self.pages[oid], "followers_count": self._page_follows(oid)}
        elif oid in self.instagram:
            node = {"id": oid, "username": self.instagram[oid], "followers_count": self.followers_count[oid]}
        else:
            message = f"Unsupported get request. Object with ID '{oid}' does not exist"
            return self._error(message, 100, "GraphMethodException")
        return self.json({k: v for k, v in node.items() if k in fields or k == "id"})

    def _page_follows(self, page: str) -> int:
        days = self.facebook[page]
        return days[max(days)]["page_follows"] if days else 0

    @route("GET", r"/v(?P<v>\d+)\.0/(?P<id>\d+)/insights")
    def insights(self, request: FakeRequest) -> FakeResponse:
        oid, q = request.params["id"], request.query
        if oid not in self.pages and oid not in self.instagram:
            return self._error(f"(#100) Object with ID '{oid}' does not exist", 100, "GraphMethodException")
        metrics = [m for m in q.get("metric", "").split(",") if m]
        if not metrics:
            return self._error("(#100) The parameter metric is required")
        since, until = _day(q.get("since", "")), _day(q.get("until", ""))
        if since is None or until is None or until <= since:
            return self._error("(#100) since and until must be a time range (until after since)")
        if q.get("period") != "day":
            return self._error("(#100) this fake answers period=day")
        if oid in self.pages:
            return self._page_insights(request, oid, metrics, since, until)
        return self._ig_insights(request, oid, metrics, since, until)

    def _paging(self, request: FakeRequest, since: dt.date, until: dt.date) -> dict[str, str]:
        start, end = pacific_midnight(since), pacific_midnight(until)
        span = end - start
        keep = [(k, v) for k, v in request.query.items() if k not in ("since", "until", "access_token")]
        link = f"{self.url}{request.path}?"
        return {
            "previous": link + urllib.parse.urlencode([*keep, ("since", start - span), ("until", start)]),
            "next": link + urllib.parse.urlencode([*keep, ("since", end), ("until", end + span)]),
        }

    def _page_insights(
        self, request: FakeRequest, page: str, metrics: list[str], since: dt.date, until: dt.date
    ) -> FakeResponse:
        if (until - since).days > 93:
            return self._error("(#100) There cannot be more than 93 days (8035200 s) between since and until")
        bad = [m for m in metrics if m not in PAGE_METRICS]
        if bad:
            return self._error("(#100) The value must be a valid insights metric")
        answers = [(d, self.values("facebook", page, d)) for d in _range(since, until)]
        found = [(d, v) for d, v in answers if v is not None]
        data = []
        if found:
            for metric in metrics:
                values = [{"value": v[metric], "end_time": _end_time(d)} for d, v in found]
                data.append(self._item(page, metric, PAGE_METRICS[metric], values=values))
        return self.json({"data": data, "paging": self._paging(request, since, until)})

    @staticmethod
    def _item(account: str, metric: str, title: str, **value: Any) -> dict[str, Any]:
        return {
            "name": metric,
            "period": "day",
            **value,
            "title": title,
            "description": f"Daily: {title}",
            "id": f"{account}/insights/{metric}/day",
        }

    def _ig_insights(
        self, request: FakeRequest, ig: str, metrics: list[str], since: dt.date, until: dt.date
    ) -> FakeResponse:
        for i, metric in enumerate(metrics):
            if metric not in IG_METRICS:
                return self._error(f"(#100) metric[{i}] must be one of the following values: {', '.join(IG_METRICS)}")
        total = request.query.get("metric_type") == "total_value"
        series_only = [m for m in metrics if m in IG_TOTAL_ONLY]
        if series_only and not total:
            return self._error(
                f"(#100) The following metrics ({', '.join(series_only)}) should be specified with parameter "
                "metric_type=total_value"
            )
        answers = [(d, self.values("instagram", ig, d)) for d in _range(since, until)]
        found = [(d, v) for d, v in answers if v is not None]
        if "follower_count" in metrics and found and found[0][0] < _yesterday() - dt.timedelta(days=29):
            return self._error("(#100) follower_count is only available for the last 30 days")
        if not found:
            return self.json({"data": [], "paging": self._paging(request, since, until)})
        data = []
        for metric in metrics:
            if total:
                # A range's total; reach over several days counts each account once: at least the
                # largest day's (this fake's approximation), where the others add up.
                counts = [v[metric] for _, v in found]
                value = max(counts) if metric == "reach" else sum(counts)
                data.append(self._item(ig, metric, metric.replace("_", " "), total_value={"value": value}))
            else:
                values = [{"value": v[metric], "end_time": _end_time(d)} for d, v in found]
                data.append(self._item(ig, metric, metric.replace("_", " "), values=values))
        return self.json({"data": data, "paging": self._paging(request, since, until)})


#: Sample targets for ``kpihub demo``, 2026-Q2 against 2026-Q1 of the demo's organic social data:
#: this Page and account with kpihub-linkedin-pages' demo page, seed 7 (the test computes them
#: through the KPI engine from both fakes). Engagement is in percent; followers scale with --scale.
DEMO_Q1_ENGAGEMENT_PERCENT = 4.51
DEMO_Q1_FOLLOWERS = 22_202


def demo_targets(scale: int = 1) -> list[dict[str, Any]]:
    """The social targets of the demo business: a little better than 2026-Q1."""
    return [
        {"kpi": "social_engagement_rate", "period": "2026-Q2", "baseline": DEMO_Q1_ENGAGEMENT_PERCENT, "target": 4.8},
        {
            "kpi": "social_followers",
            "period": "2026-Q2",
            "baseline": DEMO_Q1_FOLLOWERS * scale,
            "target": 24_000 * scale,
        },
    ]


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """``kpihub demo``: the demo business's Page and Instagram account over its dates (quiet since), social targets."""
    from kpihub.testing import DEMO_BUSINESS

    b = DEMO_BUSINESS
    pages = {"104000000000001": b.name}
    instagram = {"17841400000000001": "nordlys.outdoor"}
    server = FakeMetaPages(seed=seed, start=b.start, end=b.end, pages=pages, instagram=instagram, scale=scale)
    settings = {
        "access_token": server.token,
        "page_ids": list(pages),
        "instagram_account_ids": list(instagram),
        "start_date": "2026-01-01",  # the scored quarter and its baseline quarter
        "requests_per_second": None,
    }
    return DemoSpec(server=server, settings=settings, targets=demo_targets(scale))
