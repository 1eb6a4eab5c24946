"""Scorecards: each KPI's actual over a period against its baseline and target.

Status rule (documented in docs/kpis.md):

* For an additive KPI (a count or a sum) in a period that is still running,
  the actual is projected to the full period at the current run rate
  (``actual ÷ elapsed fraction``); ratios and averages are judged as they are.
* With a baseline: ``progress = (value − baseline) ÷ (target − baseline)``.
  **on track** when progress ≥ 1, **at risk** when progress ≥ ``at_risk_from``
  (default 0.5: more than half-way from baseline to target), else **off track**.
* Without a baseline: **on track** when the target is met, **at risk** within
  10 % of it (attainment ≥ 0.9), else **off track**.
* ``attainment`` is actual ÷ target (target ÷ actual when lower is better).
* ``change`` is the relative change against the previous period (``change_yoy``: against the
  same period a year before); for a score (NPS, −100 … +100) it is the difference in points,
  since a relative change of a value that can be zero or negative means nothing.

A KPI the data makes impossible to compute (money in two currencies without FX
rates, a missing FX rate, too few customers to fit a model) is a row with
status **refused** and the one-line reason in its notes; a KPI not defined at
the period's grain is **n/a** (its note says which grain to ask for); the
other KPIs are scored as usual. Under the rows, :attr:`Scorecard.data_quality`
lists the streams whose last sync was not ``ok`` (read from the destination's
sync state), and each row whose input tables such a stream feeds is marked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from kpihub.errors import KPIError, KpihubError
from kpihub.kpis.catalog import STAGE_ORDER
from kpihub.kpis.compiler import GrainError
from kpihub.kpis.engine import KPIEngine, KPISeries, SeriesRequest
from kpihub.kpis.periods import Grain, Period
from kpihub.kpis.spec import KPI
from kpihub.kpis.targets import Target
from kpihub.secrets import redact

__all__ = [
    "NOT_APPLICABLE",
    "REFUSED",
    "Scorecard",
    "ScorecardRow",
    "StreamQuality",
    "build_scorecard",
    "judge",
    "scorecard_table",
    "stream_quality",
]

#: The status of a row whose KPI the data makes impossible to compute; the reason is its note.
REFUSED = "refused"
#: The status of a row whose KPI is not defined at the period's grain (the note names the grain to ask for).
NOT_APPLICABLE = "n/a"
#: A KPI on a scorecard with targets that has none of its own.
NOT_TARGETED = "not targeted"


@dataclass(frozen=True)
class StreamQuality:
    """What the last sync of one stream said about its data, when that was not ``ok``.

    Read from the stream's sync-state entry: ``status`` (``incomplete``, ``mismatch``,
    ``stopped``, ...), ``notes``, ``reconciliation`` and ``canonical_table`` (the
    table(s) it feeds; else the connector's stream declaration, when known).
    """

    stream: str
    status: str
    notes: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    reconciliation: Mapping[str, Any] | None = field(default=None, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "status": self.status,
            "notes": list(self.notes),
            "tables": list(self.tables),
            "reconciliation": dict(self.reconciliation) if self.reconciliation is not None else None,
        }

    def describe(self) -> str:
        """``hubspot.deals: incomplete — <notes>; reconciliation: a.b=1`` (one line)."""
        details = list(self.notes)
        if self.reconciliation:
            pairs = ", ".join(f"{k}={v}" for k, v in _flatten(self.reconciliation))
            details.append(f"reconciliation: {pairs}")
        return f"{self.stream}: {self.status}" + (f" — {'; '.join(details)}" if details else "")


@dataclass
class ScorecardRow:
    kpi: str
    title: str
    unit: str
    stage: str | None
    period: str
    actual: float | None
    previous: float | None = None
    change: float | None = None
    last_year: float | None = None
    change_yoy: float | None = None
    baseline: float | None = None
    target: float | None = None
    attainment: float | None = None
    progress: float | None = None
    status: str = ""
    currency: str | None = None
    notes: list[str] = field(default_factory=list)
    #: Streams feeding this KPI's input tables whose last sync was not ``ok``.
    data_quality: list[StreamQuality] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.status == REFUSED

    def as_dict(self) -> dict[str, Any]:
        """The row for JSON: notes in one string, ``data_quality`` a list of stream objects."""
        out = asdict(self)
        out["notes"] = "; ".join(self.notes)
        out["data_quality"] = [q.as_dict() for q in self.data_quality]
        return out


class Scorecard(list[ScorecardRow]):
    """The rows of a scorecard (a list, as before), with the refused rows and the data-quality facts."""

    def __init__(self, rows: Iterable[ScorecardRow] = (), data_quality: Iterable[StreamQuality] = ()) -> None:
        super().__init__(rows)
        #: Every stream whose last sync was not ``ok``, whether or not a row reads what it feeds.
        self.data_quality: list[StreamQuality] = list(data_quality)
        #: The last day any canonical table has data for (``None``: no data).
        self.data_end: dt.date | None = None

    @property
    def refused(self) -> list[ScorecardRow]:
        """Rows whose KPI was refused for the data (the reason is the row's note)."""
        return [r for r in self if r.refused]

    def affected(self, quality: StreamQuality) -> list[ScorecardRow]:
        """Rows that read a table ``quality``'s stream feeds."""
        return [r for r in self if quality in r.data_quality]


def judge(
    actual: float | None, target: Target, *, additive: bool, period: Period, today: dt.date
) -> tuple[str, float | None, float | None]:
    """``(status, progress, attainment)`` of ``actual`` against ``target`` (rule above)."""
    if actual is None:
        return "no data", None, None
    value = actual
    elapsed = period.elapsed(today)
    if additive and 0 < elapsed < 1:
        value = actual / elapsed
    higher = target.direction == "higher"
    if higher:
        attainment = value / target.target if target.target else None
    else:
        attainment = target.target / value if value else None
    if target.baseline is not None and target.baseline != target.target:
        progress = (value - target.baseline) / (target.target - target.baseline)
        if progress >= 1:
            return "on track", progress, attainment
        return ("at risk" if progress >= target.at_risk_from else "off track"), progress, attainment
    met = value >= target.target if higher else value <= target.target
    if met:
        return "on track", None, attainment
    return ("at risk" if attainment is not None and attainment >= 0.9 else "off track"), None, attainment


def build_scorecard(
    engine: KPIEngine,
    kpis: Mapping[str, KPI],
    *,
    targets: Sequence[Target] = (),
    period: Period | None = None,
    periods: Sequence[Period] | None = None,
    grain: Grain = "month",
    today: dt.date | None = None,
    only: Sequence[str] | None = None,
    state: Mapping[str, Any] | None = None,
    stream_tables: Mapping[str, Sequence[str]] | None = None,
) -> Scorecard:
    """One row per target (or per KPI when there are no targets), grouped by funnel stage.

    ``periods`` scores a series: every KPI in every period, each judged against the target set for
    that period (or one with no period). Otherwise one period: ``period``, a target's own, or the
    last complete period of the data (:func:`default_period`). With targets, the KPIs that have
    none (all, or those in ``only``) follow as ``not targeted`` rows. A KPI refused for the data is
    a ``refused`` row (the others are still scored); an error that is not a
    :class:`~kpihub.errors.KpihubError` is a bug and propagates. ``state`` is the sync state
    (default: the engine's destination's), ``stream_tables`` maps ``<source_id>.<stream>`` to the
    canonical tables it feeds where its state entry does not say.
    """
    today = today or dt.date.today()
    engine = engine if engine.catalog else engine.with_catalog(kpis)
    for kpi_id in only or ():
        if kpi_id not in kpis:
            raise KPIError(f"unknown KPI {kpi_id!r}")
    ends = _DataEnds(engine)  # asked of the destination only where a row or the default period needs it

    def fallback() -> Period:
        return period or default_period(ends.get(), grain, today)

    if periods is not None:
        jobs = _series_jobs(kpis, targets, only, periods)
    else:
        jobs = _period_jobs(kpis, targets, only, period, fallback)
    quality = stream_quality(engine.state() if state is None else state, stream_tables)
    present = engine.tables()  # once for the scorecard, not once per KPI
    answers = _series_of(engine, jobs, present)
    rows = []
    inputs: dict[str, set[str]] = {}
    for kpi, p, t in jobs:
        row = _row(engine, kpi, p, t, today, present, answers)
        if targets and t is None:
            # Asked for by name, a KPI with no target is always shown; the rest of the catalogue
            # only where it has a value, under "not targeted" (no wall of "no data" rows). A refused
            # KPI is always shown: the data ruled it out, and that must not pass silently.
            asked = bool(only) and kpi.id in (only or ())
            if not asked and row.status != REFUSED and (row.status != "" or row.actual is None):
                continue
            if row.status == "":
                row.status = NOT_TARGETED
        if kpi.id not in inputs:  # a series scores each KPI in many periods: its tables once
            inputs[kpi.id] = _input_tables(engine, kpi)
        _mark(row, inputs[kpi.id], quality)
        _note_data_end(row, inputs[kpi.id], ends, p)
        rows.append(row)
    rows.sort(key=lambda r: (r.status == NOT_TARGETED, STAGE_ORDER.get(r.stage or "", 4), r.kpi, r.period))
    card = Scorecard(rows, quality)
    known = ends.known()
    card.data_end = max(known.values()) if known else None
    return card


class _DataEnds:
    """The data's last day per table, queried once and only when asked for."""

    def __init__(self, engine: KPIEngine) -> None:
        self.engine = engine
        self._ends: dict[str, dt.date] | None = None

    def get(self) -> dict[str, dt.date]:
        if self._ends is None:
            self._ends = self.engine.data_ends()
        return self._ends

    def known(self) -> dict[str, dt.date]:
        return self._ends or {}


def default_period(ends: Mapping[str, dt.date], grain: Grain, today: dt.date) -> Period:
    """The last complete period of the data: the one before the period the day after the data's
    last day falls in (``today``'s, when the data is current or there is none)."""
    last = max(ends.values()) if ends else None
    day = min(last + dt.timedelta(days=1), today) if last is not None else today
    return Period.containing(day, grain).previous()


def _period_jobs(
    kpis: Mapping[str, KPI],
    targets: Sequence[Target],
    only: Sequence[str] | None,
    period: Period | None,
    fallback: Callable[[], Period],
) -> list[tuple[KPI, Period, Target | None]]:
    jobs: list[tuple[KPI, Period, Target | None]] = []
    for t in targets:
        if not only or t.kpi in only:
            jobs.append((kpis[t.kpi], period or t.period or fallback(), t))
    targeted = {t.kpi for t in targets}
    # The KPIs with no target are scored for the period the targets are (the latest of theirs).
    theirs = max((t.period for t in targets if t.period is not None), default=None)
    for kpi_id in only or (sorted(kpis) if not targets else sorted(set(kpis) - targeted)):
        if kpi_id not in targeted:
            jobs.append((kpis[kpi_id], period or theirs or fallback(), None))
    return jobs


def _series_jobs(
    kpis: Mapping[str, KPI], targets: Sequence[Target], only: Sequence[str] | None, periods: Sequence[Period]
) -> list[tuple[KPI, Period, Target | None]]:
    chosen = list(only) if only else sorted(kpis)
    jobs: list[tuple[KPI, Period, Target | None]] = []
    for kpi_id in chosen:
        own = [t for t in targets if t.kpi == kpi_id]
        for p in periods:
            exact = [t for t in own if t.period == p] or [t for t in own if t.period is None]
            jobs.append((kpis[kpi_id], p, exact[0] if exact else None))
    return jobs


def _note_data_end(row: ScorecardRow, tables: set[str], data_ends: _DataEnds, period: Period) -> None:
    """Say where the data ends when a row has no value because its tables stop before its period."""
    if row.actual is not None or row.status in (REFUSED, NOT_APPLICABLE):
        return
    ends = data_ends.get()
    known = {t: ends[t] for t in tables if t in ends}
    if known and max(known.values()) < period.start:
        table, last = max(known.items(), key=lambda item: item[1])
        row.notes.append(f"no data in {period.label}: {table} ends {last.isoformat()}")


#: A job's series: (KPI object id, start, end) → the series or the error computing it raised.
_Answers = dict[tuple[int, dt.date, dt.date], KPISeries | KpihubError]


def _ranges(period: Period) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """The two series a row reads: this and the previous period, and the same period last year."""
    last_year = period.same_last_year()
    return (period.previous().start, period.end), (last_year.start, last_year.end)


def _series_of(engine: KPIEngine, jobs: Sequence[tuple[KPI, Period, Target | None]], present: set[str]) -> _Answers:
    """Every job's series, one :meth:`~KPIEngine.series_batch` per grain: the simple and ratio KPIs over
    the same tables are one scan for all their periods (the values and errors of one ``series`` each)."""
    wanted: dict[Grain, dict[tuple[int, dt.date, dt.date], SeriesRequest]] = {}
    for kpi, period, _ in jobs:
        try:
            if engine.missing_tables(kpi, present):
                continue  # a "no data" row
        except KPIError:
            continue  # a definition its row refuses
        for start, end in _ranges(period):
            wanted.setdefault(period.grain, {})[(id(kpi), start, end)] = SeriesRequest(kpi, start, end)
    answers: _Answers = {}
    for grain, asks in wanted.items():
        answers.update(zip(asks, engine.series_batch(list(asks.values()), grain=grain, tables=present), strict=True))
    return answers


def _row(
    engine: KPIEngine,
    kpi: KPI,
    period: Period,
    target: Target | None,
    today: dt.date,
    present: set[str],
    answers: _Answers,
) -> ScorecardRow:
    """The scored row, or a ``refused`` one: one KPI the data rules out does not hide the others."""
    try:
        return _scored_row(engine, kpi, period, target, today, present, answers)
    except KpihubError as exc:  # mixed currencies, a missing FX rate, a model without enough data, a failed query
        return _refused_row(kpi, period, target, exc)


def _refused_row(kpi: KPI, period: Period, target: Target | None, exc: KpihubError) -> ScorecardRow:
    status = NOT_APPLICABLE if isinstance(exc, GrainError) else REFUSED
    row = ScorecardRow(kpi.id, kpi.title, kpi.unit, kpi.stage, period.label, None, status=status)
    if target is not None:
        row.baseline, row.target = target.baseline, target.target
    row.notes.append(_one_line(exc))
    return row


def _scored_row(
    engine: KPIEngine,
    kpi: KPI,
    period: Period,
    target: Target | None,
    today: dt.date,
    present: set[str],
    answers: _Answers,
) -> ScorecardRow:
    row = ScorecardRow(kpi.id, kpi.title, kpi.unit, kpi.stage, period.label, None)
    missing = engine.missing_tables(kpi, present)
    if missing:
        row.status = "no data"
        row.notes.append(f"table {missing[0]} not synced")
        if target is not None:  # the row still shows what was aimed for
            row.baseline, row.target = target.baseline, target.target
        return row
    (start, end), (ly_start, ly_end) = _ranges(period)
    series, last_year = answers[(id(kpi), start, end)], answers[(id(kpi), ly_start, ly_end)]
    # An error is returned, not raised again: raised here, it would hold this frame (and the engine) alive.
    if isinstance(series, KpihubError):
        return _refused_row(kpi, period, target, series)
    if isinstance(last_year, KpihubError) and not isinstance(last_year, KPIError):
        return _refused_row(kpi, period, target, last_year)
    values = series.values()
    row.actual = values.get(period.start)
    row.previous = values.get(period.previous().start)
    row.currency = series.currency
    row.change = _change(row.actual, row.previous, kpi.unit)
    if row.actual is not None:
        row.notes.extend(kpi.notes)  # a default that shapes the value (revenue payback: no gross margin set)
    if isinstance(last_year, KPIError):  # e.g. too little history a year back to fit a model: only the trend is lost
        row.notes.append(f"no value for {period.same_last_year().label}: {_one_line(last_year)}")
    else:
        row.last_year = last_year.values().get(ly_start)
    row.change_yoy = _change(row.actual, row.last_year, kpi.unit)
    if period.elapsed(today) < 1:
        row.notes.append(f"period in progress ({period.elapsed(today):.0%} elapsed)")
    if target is None:
        return row
    row.baseline, row.target = target.baseline, target.target
    row.status, row.progress, row.attainment = judge(
        row.actual, target, additive=kpi.additive, period=period, today=today
    )
    row.notes.extend(f"not SMART: {issue}" for issue in target.issues)
    return row


def _one_line(exc: BaseException) -> str:
    """An error as the one line a note holds (secrets masked: notes are printed and exported)."""
    return (redact(exc).strip().splitlines() or [type(exc).__name__])[0]


def _input_tables(engine: KPIEngine, kpi: KPI) -> set[str]:
    try:
        return set(engine.input_tables(kpi))
    except KPIError:  # a definition the row already refused: nothing to mark
        return set()


def _mark(row: ScorecardRow, tables: set[str], quality: Sequence[StreamQuality]) -> None:
    """Mark ``row`` with every stream not ``ok`` that feeds one of its input ``tables``."""
    for q in quality:
        if tables & set(q.tables):
            row.data_quality.append(q)
            said = q.status if q.status != "ok" else "; ".join(q.notes)
            row.notes.append(f"data quality: last sync of {q.stream}: {said}")


def stream_quality(
    state: Mapping[str, Any], stream_tables: Mapping[str, Sequence[str]] | None = None
) -> list[StreamQuality]:
    """The streams whose last sync was not ``ok`` — or was, with the connector's notes on the data
    (``data_notes``: GA4's thresholding or sampling) — from sync-state entries read defensively.

    An entry without a ``status`` (written before syncs recorded one) or with ``ok`` says
    nothing; any other value, even one this version does not know, is listed as it is.
    ``notes`` may be a list or one string; ``canonical_table`` a name or a list of names.
    """
    found = []
    for key, entry in sorted(state.items(), key=lambda item: str(item[0])):
        if not isinstance(entry, Mapping) or "status" not in entry:
            continue
        # An ok sync is listed only when its connector said how its numbers read (GA4 thresholding).
        data_notes = _strings(entry.get("data_notes"), every=True)
        if entry["status"] == "ok" and not data_notes:
            continue
        status = entry["status"]
        tables = _strings(entry.get("canonical_table")) or tuple((stream_tables or {}).get(str(key), ()))
        reconciliation = entry.get("reconciliation")
        found.append(
            StreamQuality(
                stream=str(key),
                status="unknown" if status is None or status == "" else str(status),
                notes=tuple(  # printed, exported
                    redact(n) for n in (data_notes if status == "ok" else _strings(entry.get("notes"), every=True))
                ),
                tables=tables,
                reconciliation=reconciliation if isinstance(reconciliation, Mapping) else None,
            )
        )
    return found


def _strings(value: object, *, every: bool = False) -> tuple[str, ...]:
    """A string or a list as a tuple of strings: other items dropped (or, with ``every``, shown)."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else []
    return tuple(str(v) for v in items if isinstance(v, str) or (every and v is not None))


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in mapping.items():
        name = f"{prefix}{k}"
        out.extend(_flatten(v, name + ".") if isinstance(v, Mapping) else [(name, v)])
    return out


def _change(value: float | None, before: float | None, unit: str) -> float | None:
    """The relative change, or for a score the difference in points."""
    if unit == "score":
        return None if value is None or before is None else value - before
    return _relative_change(value, before)


def _relative_change(value: float | None, before: float | None) -> float | None:
    """(value − before) ÷ |before|; null when either is missing or before is 0."""
    if value is None or not before:
        return None
    return (value - before) / abs(before)


def scorecard_table(rows: Sequence[ScorecardRow]) -> pa.Table:
    """The scorecard as an Arrow table (for JSON, CSV and Parquet output)."""
    schema = pa.schema(
        [
            ("kpi", pa.string()),
            ("title", pa.string()),
            ("unit", pa.string()),
            ("stage", pa.string()),
            ("period", pa.string()),
            ("actual", pa.float64()),
            ("previous", pa.float64()),
            ("change", pa.float64()),
            ("last_year", pa.float64()),
            ("change_yoy", pa.float64()),
            ("baseline", pa.float64()),
            ("target", pa.float64()),
            ("attainment", pa.float64()),
            ("progress", pa.float64()),
            ("status", pa.string()),
            ("currency", pa.string()),
            ("notes", pa.string()),
            ("data_quality", pa.string()),
        ]
    )
    flat = [r.as_dict() | {"data_quality": "; ".join(_summary(q) for q in r.data_quality)} for r in rows]
    return pa.Table.from_pylist(flat, schema=schema)


def _summary(quality: StreamQuality) -> str:
    return f"{quality.stream}: {quality.status}"
