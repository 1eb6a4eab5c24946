"""What the HTML report shows, gathered from one KPI engine (no chart or HTML here).

:func:`gather_report` takes a scorecard already built (:func:`kpihub.kpis.scorecard.build_scorecard`)
and adds what a page of charts needs: each KPI's history over the periods before the scored one
(one :meth:`~kpihub.kpis.engine.KPIEngine.series_batch` per grain), its breakdowns by channel,
campaign and platform where its tables have those dimensions, the cohort retention matrix, the
distribution of customer lifetime values, and how fresh each source's data is (from sync state).
A part the data rules out (no orders, too few repeat buyers) is left out with its reason in
:attr:`ReportData.notes`; it never hides the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kpihub.errors import KpihubError
from kpihub.kpis.compiler import DIMENSIONS, cohort_sql
from kpihub.kpis.engine import KPIEngine, KPISeries, SeriesRequest
from kpihub.kpis.periods import Grain, Period
from kpihub.kpis.scorecard import Scorecard, ScorecardRow
from kpihub.kpis.spec import KPI
from kpihub.secrets import first_line, redact

__all__ = [
    "BREAKDOWNS",
    "HISTORY",
    "Breakdown",
    "CLVDistribution",
    "CohortCell",
    "KPIReport",
    "Point",
    "ReportData",
    "SourceFreshness",
    "gather_report",
]

#: Periods in each KPI's time-series chart (the scored period and those before it).
HISTORY = 12
#: The breakdowns a KPI gets where every table it reads has the dimension.
BREAKDOWNS = ("channel", "campaign", "platform")
#: Values shown per breakdown (the largest; the rest are counted in :attr:`Breakdown.total`).
TOP = 10
#: Bars in the CLV histogram.
CLV_BINS = 20


@dataclass(frozen=True)
class Point:
    """One period of a KPI's history."""

    period: dt.date
    label: str
    value: float | None


@dataclass(frozen=True)
class Breakdown:
    """A KPI in its scored period per value of ``dimension``: the :data:`TOP` largest of ``total``."""

    dimension: str
    values: tuple[tuple[str, float | None], ...]
    total: int


@dataclass
class KPIReport:
    """One scorecard row with its KPI, its history and breakdowns (``note``: why there is no history)."""

    row: ScorecardRow
    kpi: KPI
    history: list[Point] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)
    note: str | None = None

    @property
    def key(self) -> str:
        """A row's id in the page: the KPI and its period (a KPI may be scored for two periods)."""
        return f"{self.row.kpi}-{self.row.period}"


@dataclass(frozen=True)
class SourceFreshness:
    """How fresh one source's data is: its latest sync, the furthest cursor, streams not ``ok``."""

    source: str
    streams: int
    synced_at: dt.datetime | None
    data_through: str | None
    not_ok: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortCell:
    """Of the customers acquired in ``cohort``, the share active ``age`` periods later (None: not seen yet)."""

    cohort: str
    age: int
    customers: int
    retention: float | None


@dataclass(frozen=True)
class CLVDistribution:
    """Customer lifetime values as a histogram: ``(low, high, customers)`` per bar, the last one open."""

    bins: tuple[tuple[float, float, int], ...]
    customers: int
    mean: float
    currency: str | None
    as_of: dt.date


@dataclass
class ReportData:
    """Everything one report shows."""

    generated_at: dt.datetime
    timezone: str
    currency: str | None
    scorecard: Scorecard
    kpis: list[KPIReport]
    freshness: list[SourceFreshness]
    cohort_title: str | None = None
    cohorts: list[CohortCell] = field(default_factory=list)
    clv: CLVDistribution | None = None
    #: Parts of the report left out, and why.
    notes: list[str] = field(default_factory=list)

    @property
    def periods(self) -> list[str]:
        """The scored periods, in the scorecard's order, each once."""
        return list(dict.fromkeys(r.period for r in self.scorecard))


def gather_report(
    engine: KPIEngine,
    kpis: Mapping[str, KPI],
    scorecard: Scorecard,
    *,
    history: int = HISTORY,
    now: dt.datetime | None = None,
) -> ReportData:
    """The report of ``scorecard`` (built on ``engine`` from ``kpis``): histories, breakdowns, cohorts, CLV."""
    reports = [KPIReport(row, kpis[row.kpi]) for row in scorecard if row.kpi in kpis]
    present = engine.tables()
    _histories(engine, reports, history, present)
    _breakdowns(engine, reports)
    currencies = {r.currency for r in scorecard if r.currency}
    data = ReportData(
        generated_at=now or dt.datetime.now(dt.timezone.utc),
        timezone=engine.timezone,
        currency=engine.currency or (currencies.pop() if len(currencies) == 1 else None),
        scorecard=scorecard,
        kpis=reports,
        freshness=source_freshness(engine.state()),
    )
    last = _last_month(scorecard)
    if last is not None:
        _cohorts(engine, kpis, last, present, data)
        _clv(engine, kpis, last, present, data)
    return data


def _period(row: ScorecardRow) -> Period | None:
    try:
        return Period.parse(row.period)
    except ValueError:
        return None


def _histories(engine: KPIEngine, reports: Sequence[KPIReport], n: int, present: set[str]) -> None:
    """Each report's history: the ``n`` periods up to its row's, one batch of series per grain."""
    asks: dict[Grain, list[tuple[KPIReport, Period, SeriesRequest]]] = {}
    for report in reports:
        period = _period(report.row)
        if report.row.status in ("no data", "n/a", "refused") or period is None:
            report.note = report.row.notes[0] if report.row.notes else f"no value ({report.row.status})"
            continue
        first = period.previous(n - 1)
        asks.setdefault(period.grain, []).append((report, period, SeriesRequest(report.kpi, first.start, period.end)))
    spans = engine.data_spans(present) if asks else {}
    for grain, jobs in asks.items():
        answers = engine.series_batch([ask for _, _, ask in jobs], grain=grain, tables=present)
        for (report, _, _), series in zip(jobs, answers, strict=True):
            if isinstance(series, KpihubError):
                report.note = redact(first_line(series))
            else:
                covered = _covered(spans, engine.input_tables(report.kpi))
                report.history = _points(series, grain, covered)


def _covered(spans: Mapping[str, tuple[dt.date, dt.date]], tables: Sequence[str]) -> tuple[dt.date, dt.date] | None:
    """The days some input table of a KPI has rows for (None: not known, e.g. tables with no time column)."""
    known = [spans[t] for t in tables if t in spans]
    return (min(f for f, _ in known), max(last for _, last in known)) if known else None


def _points(series: KPISeries, grain: Grain, covered: tuple[dt.date, dt.date] | None = None) -> list[Point]:
    """The series as points; a period no input table has a row in is a gap, never a 0 (a sum over no rows)."""
    points = []
    for start, value in sorted(series.values().items()):
        period = Period(start, grain)
        outside = covered is not None and (period.end <= covered[0] or period.start > covered[1])
        points.append(Point(start, period.label, None if outside else _float(value)))
    return points


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def breakdown_dimensions(kpi: KPI) -> list[str]:
    """The :data:`BREAKDOWNS` every table of ``kpi`` has, each once: ``platform`` is left out where it
    reads the same columns as ``channel`` (ad platforms' channel *is* the platform)."""
    if kpi.kind not in ("simple", "ratio"):
        return []
    tables = [m.table for m in kpi.measures.values()]
    chosen: dict[tuple[str, ...], str] = {}
    for dim in BREAKDOWNS:
        columns = tuple(DIMENSIONS[dim].get(t, "") for t in tables)
        if all(columns) and columns not in chosen:
            chosen[columns] = dim
    return list(chosen.values())


def _breakdowns(engine: KPIEngine, reports: Sequence[KPIReport]) -> None:
    """Every report's breakdowns: one ``series_many`` per (period, dimension) for all the KPIs it applies to."""
    groups: dict[tuple[Period, str], list[KPIReport]] = {}
    for report in reports:
        period = _period(report.row)
        if period is None or not report.history:
            continue
        for dim in breakdown_dimensions(report.kpi):
            groups.setdefault((period, dim), []).append(report)
    for (period, dim), group in groups.items():
        kpis = list({r.kpi.id: r.kpi for r in group}.values())
        done = engine.series_many(kpis, grain=period.grain, start=period.start, end=period.end, by=dim)
        for report in group:
            series = done[report.kpi.id]
            if isinstance(series, KPISeries) and series.table.num_rows:
                report.breakdowns.append(_top(series, dim, report.kpi.direction))


def _top(series: KPISeries, dim: str, direction: str) -> Breakdown:
    """The :data:`TOP` values of a breakdown, best first (nulls last)."""
    keys, values = series.table[dim].to_pylist(), series.table["value"].to_pylist()
    pairs = [(str(k), _float(v)) for k, v in zip(keys, values, strict=True)]
    sign = -1 if direction == "higher" else 1
    pairs.sort(key=lambda kv: (kv[1] is None, sign * (kv[1] or 0.0), kv[0]))
    return Breakdown(dim, tuple(pairs[:TOP]), len(pairs))


def _last_month(scorecard: Scorecard) -> Period | None:
    """The last month any scored period covers: where the cohort matrix ends and the CLV fit is made."""
    ends = [p.end for p in (_period(r) for r in scorecard) if p is not None]
    return Period.containing(max(ends) - dt.timedelta(days=1), "month") if ends else None


def _cohorts(engine: KPIEngine, kpis: Mapping[str, KPI], last: Period, present: set[str], data: ReportData) -> None:
    """The retention matrix of the first cohort KPI (``customer_retention_m1`` first): 12 monthly cohorts."""
    cohort = sorted((k for k in kpis.values() if k.kind == "cohort"), key=lambda k: k.id != "customer_retention_m1")
    if not cohort:
        return
    kpi = cohort[0]
    if any(t not in present for t in kpi.tables):
        data.notes.append(f"No cohort retention: table {', '.join(kpi.tables)} not synced")
        return
    first = last.previous(HISTORY - 1)
    sql = cohort_sql(kpi, grain="month", start=first.start, end=last.end, ages=range(HISTORY), timezone=engine.timezone)
    try:
        cells = engine.query(kpi, sql).to_pylist()
    except KpihubError as exc:
        data.notes.append(f"No cohort retention: {redact(first_line(exc))}")
        return
    data.cohort_title = kpi.title
    data.cohorts = [
        CohortCell(Period(c["cohort"], "month").label, int(c["age"]), int(c["customers"] or 0), _float(c["retention"]))
        for c in cells
    ]


def _clv(engine: KPIEngine, kpis: Mapping[str, KPI], last: Period, present: set[str], data: ReportData) -> None:
    """The CLV distribution of the ``clv`` model KPI, fitted on the data up to the last scored day."""
    kpi = kpis.get("clv")
    if kpi is None or kpi.kind != "model":
        return
    if any(t not in present for t in engine.input_tables(kpi)):
        data.notes.append("No CLV distribution: table orders not synced")
        return
    from kpihub.models import fit_clv

    as_of = last.end - dt.timedelta(days=1)
    try:
        fit = fit_clv(engine, kpi, as_of=as_of)
    except KpihubError as exc:
        data.notes.append(f"No CLV distribution: {redact(first_line(exc))}")
        return
    values = [float(v) for v in fit.customers["clv"].to_pylist() if v is not None]
    if values:
        data.clv = clv_distribution(values, currency=data.currency, as_of=as_of)


def clv_distribution(values: Sequence[float], *, currency: str | None, as_of: dt.date) -> CLVDistribution:
    """:data:`CLV_BINS` equal bars up to the 99th percentile; the last bar also holds the top 1 %."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    top = float(np.quantile(array, 0.99))
    low = min(0.0, float(array.min()))
    edges = np.linspace(low, top if top > low else low + 1.0, CLV_BINS + 1)
    counts, _ = np.histogram(np.clip(array, low, edges[-1]), bins=edges)
    bins = tuple((float(a), float(b), int(n)) for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True))
    return CLVDistribution(bins, len(array), float(array.mean()), currency, as_of)


def source_freshness(state: Mapping[str, Any]) -> list[SourceFreshness]:
    """Per source (the part of a state key before the dot): its streams, latest ``synced_at``, the furthest
    ``cursor`` and the streams whose last sync was not ``ok`` (state entries read defensively)."""
    by_source: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for key, entry in state.items():
        if isinstance(entry, Mapping):
            source, _, stream = str(key).partition(".")
            by_source.setdefault(source, []).append((stream or source, entry))
    return [_freshness(source, streams) for source, streams in sorted(by_source.items())]


def _freshness(source: str, streams: list[tuple[str, Mapping[str, Any]]]) -> SourceFreshness:
    synced = [t for _, e in streams if (t := _timestamp(e.get("synced_at"))) is not None]
    dated = [e for _, e in streams if e.get("cursor_type") in ("date", "timestamp") and e.get("cursor")]
    cursors = [str(e["cursor"]) for e in dated]
    ordered = sorted(streams, key=lambda item: item[0])
    bad = tuple(f"{s}: {e['status']}" for s, e in ordered if e.get("status") not in (None, "ok"))
    return SourceFreshness(source, len(streams), max(synced, default=None), max(cursors, default=None), bad)


def _timestamp(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
