"""A fake Chrome UX Report API on 127.0.0.1, in the real wire format.

Shapes, from the API's own documentation (developer.chrome.com/docs/crux/api and …/docs/crux/history-api):

* ``POST /v1/records:queryRecord?key=…`` with ``{"origin"|"url": …, "formFactor"?: PHONE|DESKTOP|TABLET,
  "metrics"?: […]}`` answers ``{"record": {"key": {…}, "metrics": {<metric>: {"histogram": [three bins],
  "percentiles": {"p75": …}}}, "collectionPeriod": {"firstDate": {year, month, day}, "lastDate": …}}}``;
  without ``formFactor`` the key has none (every device together). CLS bin edges and p75 are strings with 2
  decimals; densities have 4 decimals.
* ``POST /v1/records:queryHistoryRecord`` takes the same body and ``collectionPeriodCount`` (1–40, default 25)
  and answers ``histogramTimeseries[].densities[]``, ``percentilesTimeseries.p75s[]`` and
  ``collectionPeriods[]``, oldest first. It is "updated each Monday … and contains data up until the previous
  Saturday (as per the standard 2-day lag)": the fake's ``today`` is a Monday, so the daily record's window
  (ending two days ago) is the history's latest week. A week without eligible data is ``"NaN"`` in every
  density and ``null`` in the p75s.
* A target CrUX does not know: ``404 {"error": {"code": 404, "message": "chrome ux report data not found",
  "status": "NOT_FOUND"}}`` (the response treosh/crux-api records). A bad key or body: Google's
  ``400 INVALID_ARGUMENT`` error shape; the quota: ``429 RESOURCE_EXHAUSTED`` (messages are the fake's own).
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, route

__all__ = ["DEMO_TARGETS", "FakeCrux", "Site", "demo_server"]

FORM_FACTORS = ("PHONE", "DESKTOP", "TABLET")
#: How much slower a device class is than the site's base (ALL: the mix of them).
DEVICE = {"PHONE": 1.3, "DESKTOP": 0.8, "TABLET": 1.1, "ALL": 1.1}
#: Bin edges as the API sends them: ints for milliseconds, 2-decimal strings for CLS.
EDGES: dict[str, tuple[Any, Any, Any]] = {
    "largest_contentful_paint": (0, 2500, 4000),
    "interaction_to_next_paint": (0, 200, 500),
    "cumulative_layout_shift": ("0.00", "0.10", "0.25"),
}
GOOD = {"largest_contentful_paint": 2500.0, "interaction_to_next_paint": 200.0, "cumulative_layout_shift": 0.1}


@dataclass
class Site:
    """One origin or URL CrUX knows: its base p75s (before the device factor) and how they drift.

    :param weekly_change: relative change of LCP and INP per week going back in time (0.01: a week ago
        was 1 % slower, so the site improves).
    :param eligible_from: the first window end with data (earlier weeks are "NaN"/null).
    :param gaps: window ends without eligible data (a quiet week).
    :param no_inp: too few interactions: INP is never reported.
    """

    lcp: float
    inp: float
    cls: float
    weekly_change: float = 0.0
    eligible_from: dt.date | None = None
    gaps: set[dt.date] = field(default_factory=set)
    no_inp: bool = False


class FakeCrux(FakeAPIServer):
    """The CrUX daily and history APIs over seeded sites; ``advance`` moves the release a week on."""

    def __init__(self, *, seed: int = 0, today: dt.date, sites: dict[tuple[str, str], Site]) -> None:
        super().__init__(seed=seed)
        if today.weekday() != 0:
            raise ValueError("the fake's today is a Monday, the day the History API is updated")
        self.today = today
        #: Values drift from this day's, so a window keeps its values whenever it is asked for (CrUX does not
        #: restate a published window).
        self.anchor = today - dt.timedelta(days=2)
        self.sites = sites
        self.api_key = f"crux-fake-key-{seed:04d}"
        self.queries = 0

    # -- the data ------------------------------------------------------------------------

    @property
    def latest(self) -> dt.date:
        """The last day of the newest window: two days ago (a Saturday)."""
        return self.today - dt.timedelta(days=2)

    def advance(self, weeks: int = 1) -> None:
        """A week (or more) later: new windows, the old ones unchanged (CrUX does not restate them)."""
        with self.data_lock:
            self.today += dt.timedelta(weeks=weeks)

    def window(self, kind: str, target: str, form_factor: str, end: dt.date) -> dict[str, Any] | None:
        """The metrics of the 28-day window ending ``end`` (None: no eligible data), the same whichever API asks."""
        site = self.sites[(kind, target)]
        if end in site.gaps or (site.eligible_from is not None and end < site.eligible_from):
            return None
        rng = random.Random(zlib.crc32(f"{self.seed}|{kind}|{target}|{form_factor}|{end.isoformat()}".encode()))
        weeks_back = (self.anchor - end).days / 7
        drift = (1 + site.weekly_change) ** weeks_back * DEVICE[form_factor]
        out = {
            "largest_contentful_paint": round(site.lcp * drift * rng.uniform(0.97, 1.03)),
            "interaction_to_next_paint": None if site.no_inp else round(site.inp * drift * rng.uniform(0.95, 1.05)),
            "cumulative_layout_shift": round(site.cls * rng.uniform(0.9, 1.1), 2),
        }
        return {m: (None if v is None else (v, _shares(m, v))) for m, v in out.items()}

    def history_ends(self, count: int) -> list[dt.date]:
        """The last days of the ``count`` newest weekly windows, oldest first."""
        return [self.latest - dt.timedelta(weeks=i) for i in reversed(range(count))]

    # -- the API -------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
        return {"error": {"code": status, "message": message, "status": names.get(status, "UNAVAILABLE")}}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.query.get("key") != self.api_key:
            return self.json(self.error_body(400, "API key not valid. Please pass a valid API key."), 400)
        return None

    def _target(self, request: FakeRequest) -> tuple[str, str, str, list[str]] | FakeResponse:
        query = request.json() or {}
        kinds = [k for k in ("origin", "url") if k in query]
        if len(kinds) != 1:
            return self.json(self.error_body(400, "Exactly one of origin or url must be given."), 400)
        kind, target = kinds[0], query[kinds[0]]
        if kind == "origin" and "/" in str(target).split("://", 1)[-1]:
            return self.json(self.error_body(400, f"Invalid value at 'origin' ({target}): not an origin."), 400)
        form_factor = query.get("formFactor", "ALL")
        if form_factor not in FORM_FACTORS and not (form_factor == "ALL" and "formFactor" not in query):
            return self.json(self.error_body(400, f"Invalid value at 'form_factor' ({form_factor})."), 400)
        if (kind, target) not in self.sites:
            return self.json(self.error_body(404, "chrome ux report data not found"), 404)
        return kind, target, form_factor, list(query.get("metrics") or EDGES)

    def _key(self, kind: str, target: str, form_factor: str) -> dict[str, str]:
        return {kind: target, **({"formFactor": form_factor} if form_factor != "ALL" else {})}

    @route("POST", r"/v1/records:queryRecord")
    def query_record(self, request: FakeRequest) -> FakeResponse:
        found = self._target(request)
        if isinstance(found, FakeResponse):
            return found
        kind, target, form_factor, metrics = found
        self.queries += 1
        data = self.window(kind, target, form_factor, self.latest)
        if data is None or all(data[m] is None for m in metrics if m in data):
            return self.json(self.error_body(404, "chrome ux report data not found"), 404)
        out = {}
        for m in metrics:
            if data.get(m) is None:
                continue
            p75, shares = data[m]
            edges = EDGES[m]
            bins = [{"start": edges[0], "end": edges[1], "density": shares[0]}]
            bins += [
                {"start": edges[1], "end": edges[2], "density": shares[1]},
                {"start": edges[2], "density": shares[2]},
            ]
            out[m] = {"histogram": bins, "percentiles": {"p75": _wire_p75(m, p75)}}
        first = self.latest - dt.timedelta(days=27)
        record = {
            "key": self._key(kind, target, form_factor),
            "metrics": out,
            "collectionPeriod": {"firstDate": _ymd(first), "lastDate": _ymd(self.latest)},
        }
        return self.json({"record": record})

    @route("POST", r"/v1/records:queryHistoryRecord")
    def query_history_record(self, request: FakeRequest) -> FakeResponse:
        found = self._target(request)
        if isinstance(found, FakeResponse):
            return found
        kind, target, form_factor, metrics = found
        count = (request.json() or {}).get("collectionPeriodCount", 25)
        if not isinstance(count, int) or not 1 <= count <= 40:
            return self.json(self.error_body(400, f"collectionPeriodCount must be between 1 and 40, not {count}"), 400)
        self.queries += 1
        ends = self.history_ends(count)
        windows = [self.window(kind, target, form_factor, end) for end in ends]
        if all(w is None for w in windows):
            return self.json(self.error_body(404, "chrome ux report data not found"), 404)
        out = {}
        for m in metrics:
            if all(w is None or w[m] is None for w in windows):
                continue  # a metric never reported (INP of a page without interactions) is absent
            edges = EDGES[m]
            cells = [None if w is None or w[m] is None else w[m] for w in windows]
            dens = [["NaN" if c is None else c[1][i] for c in cells] for i in range(3)]
            series = [{"start": edges[0], "end": edges[1], "densities": dens[0]}]
            series += [
                {"start": edges[1], "end": edges[2], "densities": dens[1]},
                {"start": edges[2], "densities": dens[2]},
            ]
            p75s = [None if c is None else _wire_p75(m, c[0]) for c in cells]
            out[m] = {"histogramTimeseries": series, "percentilesTimeseries": {"p75s": p75s}}
        periods = [{"firstDate": _ymd(e - dt.timedelta(days=27)), "lastDate": _ymd(e)} for e in ends]
        record = {"key": self._key(kind, target, form_factor), "metrics": out, "collectionPeriods": periods}
        return self.json({"record": record})


def _ymd(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


def _wire_p75(metric: str, value: float) -> Any:
    return f"{value:.2f}" if metric == "cumulative_layout_shift" else int(value)


def _shares(metric: str, p75: float) -> tuple[float, float, float]:
    """Good / needs-improvement / poor densities consistent with the p75: 75 % good exactly at the threshold."""
    ratio = GOOD[metric] / max(p75, 1e-9) if p75 else 4.0
    good = round(min(0.98, max(0.05, 1 - 0.25 / max(ratio, 1e-9) ** 1.5)), 4)
    poor = round((1 - good) * 0.35, 4)
    return good, round(1 - good - poor, 4), poor


#: The demo business's shop (kpihub.testing.DEMO_BUSINESS): faster every week, the checkout slow to respond on phones.
DEMO_ORIGIN = "https://www.nordlys.example"


def demo_server(seed: int = 7) -> FakeCrux:
    """The fake with the demo shop: ``today`` is the Monday ending the demo's Q2 2026."""
    sites = {
        ("origin", DEMO_ORIGIN): Site(lcp=1850, inp=140, cls=0.06, weekly_change=0.012),
        ("url", DEMO_ORIGIN + "/checkout"): Site(lcp=1950, inp=185, cls=0.04, weekly_change=0.008),
    }
    return FakeCrux(seed=seed, today=dt.date(2026, 6, 29), sites=sites)


#: Sample targets for ``kpihub demo``: Q2 2026 against Q1 (percent targets in percent, as the scorecard reads them).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "core_web_vitals_pass_rate", "period": "2026-Q2", "baseline": 50.0, "target": 75.0},
    {"kpi": "lcp_p75", "period": "2026-Q2", "baseline": 2800, "target": 2500},
]
