"""A fake Matomo Reporting API on 127.0.0.1, in Matomo's wire format (written for this plugin from
matomo-org/matomo's source; no copied responses).

* ``POST /index.php?module=API&method=…&format=JSON`` with ``token_auth`` in the form body. A token
  in the URL is ignored, as Matomo ignores a "secure only" token sent as a GET parameter; no valid
  token is HTTP 401 with ``{"result": "error", "message": …}`` (``NoAccessException``, code 401).
  Every other error is HTTP **200** with that body: an unknown method, another site, a bad date.
* ``Actions.getPageUrls`` (``flat=1``): per day a list of rows ``{"label": "/shop", "nb_visits",
  "nb_hits", "avg_time_<x>", "nb_hits_with_time_<x>", "min_time_<x>", "max_time_<x>",
  "avg_page_load_time", "url", "segment"}`` for the six timings ``x``; ``sum_time_<x>`` only with
  ``showRawMetrics=1`` (seconds, as MySQL decimal strings: ``"171.2340"``); some counts come as
  strings too. The root page's label is ``/index`` (Matomo's default action name). Sorted by
  ``nb_hits`` (or ``filter_sort_column``), then ``filter_offset``/``filter_limit`` per day's table.
* ``API.get`` (``columns=``): per day an object of the site's totals, ``[]`` for a day without data.
* ``SitesManager.getSiteFromId``: the site's name, ``timezone`` and ``currency``.
* A date range with ``period=day`` answers ``{"YYYY-MM-DD": …}`` for every day asked; days after the
  fake's ``today`` (or before its data) are ``[]``.
* Today is partial (``today_share`` of a day) and yesterday may be re-archived: :meth:`advance` moves
  ``today`` on (the old today is then complete), :meth:`restate` re-archives days (new values).
  :attr:`on_page_urls` runs after each ``Actions.getPageUrls`` answer (a re-archive between pages).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kpihub import DemoSpec
from kpihub.testing import DEMO_BUSINESS, FakeAPIServer, FakeRequest, FakeResponse, route
from kpihub_matomo.rows import TIMINGS

__all__ = ["DEMO_PAGES", "FakeMatomo", "Page", "demo_spec"]

#: How a page load's time splits over the six timings (a typical shop page).
SPLIT = {
    "network": 0.06,
    "server": 0.20,
    "transfer": 0.04,
    "dom_processing": 0.38,
    "dom_completion": 0.27,
    "on_load": 0.05,
}
NO_ACCESS = "You can't access this resource as it requires 'view' access for the website id = {site}."
BAD_TOKEN = "Unable to authenticate with the provided token. It is either invalid or expired."


@dataclass(frozen=True)
class Page:
    """A page of the fake site: its timed loads a day and its average load time (ms) on the first day.

    :param untimed: share of page views that send no timing (older browsers, blocked APIs).
    :param before_onload: share of timed views without DOM completion and on-load times (tracked early).
    """

    path: str
    loads: int
    ms: float
    untimed: float = 0.05
    before_onload: float = 0.0


class FakeMatomo(FakeAPIServer):
    """One Matomo site with seeded page timings and visits from ``start`` to ``end`` (and ``today``)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        pages: list[Page],
        start: dt.date,
        today: dt.date,
        end: dt.date | None = None,
        site_id: int = 1,
        time_zone: str = "Europe/Oslo",
        currency: str = "EUR",
        site_url: str = "https://www.nordlys.example",
        scale: int = 1,
        speedup_per_day: float = 1 / 3000,
        today_share: float = 0.4,
    ) -> None:
        super().__init__(seed=seed)
        self.pages, self.first_day, self.today, self.end = pages, start, today, end
        self.site_id, self.time_zone, self.currency, self.site_url = site_id, time_zone, currency, site_url
        self.scale, self.speedup_per_day, self.today_share = scale, speedup_per_day, today_share
        self.token = hashlib.md5(f"kpihub-matomo-fake-{seed}".encode()).hexdigest()  # 32 hex, as Matomo's
        #: Re-archives per day (a restated day has new values).
        self.versions: dict[dt.date, int] = {}
        #: Honour ``showRawMetrics=1`` (False: a Matomo that always drops ``sum_time_*``).
        self.raw_metrics = True
        self.on_page_urls: Callable[[FakeRequest], None] | None = None

    # -- the data ------------------------------------------------------------------------

    def advance(self, days: int = 1) -> None:
        """Later: the old today is complete and archived, a new partial today begins."""
        with self.data_lock:
            self.today += dt.timedelta(days=days)

    def restate(self, *days: dt.date) -> None:
        """Re-archive ``days``: their numbers change (late tracking requests, an invalidation)."""
        with self.data_lock:
            for day in days:
                self.versions[day] = self.versions.get(day, 0) + 1

    def has_data(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.today and (self.end is None or day <= self.end)

    def truth(self, day: dt.date, page: Page) -> dict[str, Any]:
        """One page's day: page views, visits, and per timing the views carrying it and their Σ ms."""
        key = f"{self.seed}|{day}|{page.path}|{self.versions.get(day, 0)}|{day == self.today}"
        rng = random.Random(zlib.crc32(key.encode()))
        share = self.today_share if day == self.today else 1.0
        timed = int(page.loads * self.scale * rng.uniform(0.8, 1.2) * share)
        per = page.ms * (1 - (day - self.first_day).days * self.speedup_per_day) * rng.uniform(0.9, 1.1)
        early = int(timed * page.before_onload)
        hits = {t: timed - early if t in ("dom_completion", "on_load") else timed for t in TIMINGS}
        sums = {t: round(per * SPLIT[t] * hits[t]) for t in TIMINGS}
        views = timed + int(timed * page.untimed)
        return {"views": views, "visits": int(views * 0.8), "hits": hits, "ms": sums, "per": per}

    def totals(self, day: dt.date) -> dict[str, Any]:
        rng = random.Random(zlib.crc32(f"{self.seed}|totals|{day}|{self.versions.get(day, 0)}".encode()))
        views = sum(self.truth(day, p)["views"] for p in self.pages)
        visits = int(views / rng.uniform(1.9, 2.3))
        conversions = int(visits * rng.uniform(0.01, 0.03))
        return {
            "nb_visits": visits,
            "nb_uniq_visitors": int(visits * 0.86),
            "nb_pageviews": views,
            "bounce_count": int(visits * rng.uniform(0.3, 0.5)),
            "nb_conversions": conversions,
            "revenue": round(conversions * rng.uniform(60, 110), 2),
        }

    # -- the wire ------------------------------------------------------------------------

    def label(self, path: str) -> str:
        return path + "index" if path.endswith("/") else path

    def page_row(self, day: dt.date, page: Page, raw: bool) -> dict[str, Any]:
        t = self.truth(day, page)
        url = self.site_url + page.path
        row: dict[str, Any] = {"label": self.label(page.path), "nb_visits": t["visits"], "nb_hits": t["views"]}
        row["sum_time_spent"] = t["views"] * 41
        load = 0.0
        for i, timing in enumerate(TIMINGS):
            n, ms = t["hits"][timing], t["ms"][timing]
            avg = round(ms / 1000 / n, 3) if n else 0
            load += avg
            row[f"avg_time_{timing}"] = avg
            row[f"nb_hits_with_time_{timing}"] = str(n) if i % 2 else n  # numbers or strings, as Matomo mixes
            row[f"min_time_{timing}"] = f"{avg * 0.2:.3f}"
            row[f"max_time_{timing}"] = f"{avg * 6:.3f}"
            if raw:
                row[f"sum_time_{timing}"] = f"{ms / 1000:.4f}"
        row["avg_page_load_time"] = round(load, 3)
        row["url"] = url
        row["segment"] = "pageUrl==" + urllib.parse.quote(urllib.parse.quote(url, safe=""), safe="")
        return row

    def error_body(self, status: int, message: str) -> Any:
        return {"result": "error", "message": message}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        form = urllib.parse.parse_qs(request.body.decode("latin-1"), keep_blank_values=True)
        token = (form.get("token_auth") or [""])[-1]
        if token == self.token and request.method == "POST":
            return None
        site = request.query.get("idSite", "")
        message = BAD_TOKEN if token else NO_ACCESS.format(site=site)  # a token in the URL counts as none
        return self.json(self.error_body(401, message), 401)

    def _error(self, message: str) -> FakeResponse:
        return self.json(self.error_body(200, message), 200)  # Matomo's errors come with HTTP 200

    def _days(self, request: FakeRequest) -> list[dt.date] | FakeResponse:
        q = request.query
        if q.get("period") != "day":
            return self._error(
                f"The period '{q.get('period')}' is not supported. Try any of the following instead: day"
            )
        try:
            first, last = (dt.date.fromisoformat(d) for d in q.get("date", "").split(","))
        except ValueError:
            return self._error(
                f"Date format must be: YYYY-MM-DD, or 'today' or 'yesterday' ... (date={q.get('date')!r})"
            )
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    @route("POST", r"/index\.php")
    def api(self, request: FakeRequest) -> FakeResponse:
        q = request.query
        if q.get("module") != "API" or q.get("format") != "JSON":
            return self._error("This fake answers module=API&format=JSON only")
        if q.get("idSite") != str(self.site_id):
            return self._error(
                f"An unexpected website was found in the request: website id was set to '{q.get('idSite')}' ."
            )
        handler = {
            "SitesManager.getSiteFromId": self._site,
            "Actions.getPageUrls": self._page_urls,
            "API.get": self._totals,
        }.get(q.get("method", ""))
        if handler is None:
            module = q.get("method", "").split(".")[0]
            return self._error(
                f"The method '{q.get('method')}' does not exist or is not available in the module "
                f"'\\Piwik\\Plugins\\{module}\\API'."
            )
        return handler(request)

    def _site(self, request: FakeRequest) -> FakeResponse:
        return self.json(
            {
                "idsite": str(self.site_id),
                "name": "Nordlys Outdoor",
                "main_url": self.site_url,
                "ts_created": f"{self.first_day} 00:00:00",
                "ecommerce": "1",
                "timezone": self.time_zone,
                "currency": self.currency,
                "type": "website",
            }
        )

    def _page_urls(self, request: FakeRequest) -> FakeResponse:
        days = self._days(request)
        if isinstance(days, FakeResponse):
            return days
        q = request.query
        if q.get("flat") != "1":
            return self._error("this fake answers Actions.getPageUrls with flat=1 only")
        raw = self.raw_metrics and q.get("showRawMetrics") == "1"
        limit, offset = int(q.get("filter_limit", "100")), int(q.get("filter_offset", "0"))
        column, order = q.get("filter_sort_column", "nb_hits"), q.get("filter_sort_order", "desc")
        body: dict[str, Any] = {}
        for day in days:
            rows = [self.page_row(day, p, raw) for p in self.pages] if self.has_data(day) else []
            rows.sort(key=lambda r: float(r[column]) if column != "label" else r[column], reverse=order == "desc")
            body[day.isoformat()] = rows[offset:] if limit < 0 else rows[offset : offset + limit]
        response = self.json(body)
        if self.on_page_urls is not None:
            self.on_page_urls(request)
        return response

    def _totals(self, request: FakeRequest) -> FakeResponse:
        days = self._days(request)
        if isinstance(days, FakeResponse):
            return days
        wanted = [c for c in request.query.get("columns", "").split(",") if c]
        body: dict[str, Any] = {}
        for day in days:
            row = self.totals(day) if self.has_data(day) else None
            body[day.isoformat()] = [] if row is None else {k: v for k, v in row.items() if not wanted or k in wanted}
        return self.json(body)


#: The demo shop's pages (the loads and times kpihub-files' demo made by hand): slowly getting faster.
DEMO_PAGES = [
    Page("/", 900, 1900),
    Page("/shop", 700, 2600),
    Page("/product", 1200, 2300),
    Page("/checkout", 150, 3100),
]

#: ``kpihub demo``'s target: Q2 2026 against Q1 (its baseline, as the engine computes Q1 from this fake).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "avg_page_load_seconds", "period": "2026-Q2", "baseline": 1.99, "target": 1.85},
]


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """``kpihub demo``: the demo business's Matomo site over its dates (every day archived and complete)."""
    b = DEMO_BUSINESS
    today = dt.datetime.now(dt.timezone.utc).date()
    server = FakeMatomo(
        seed=seed,
        pages=DEMO_PAGES,
        start=b.start,
        end=b.end,
        today=max(today, b.end + dt.timedelta(days=1)),
        time_zone=b.time_zone,
        currency=b.currency,
        scale=scale,
    )
    settings = {
        "token_auth": server.token,
        "site_id": server.site_id,
        "start_date": b.start.isoformat(),
        "days_per_request": 92,
        "requests_per_second": None,
    }
    return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)
