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
* ``change`` is the relative change against the previous period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from kpihub.errors import KPIError, MixedCurrencyError
from kpihub.kpis.catalog import STAGE_ORDER
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.periods import Grain, Period
from kpihub.kpis.spec import KPI
from kpihub.kpis.targets import Target

__all__ = ["ScorecardRow", "build_scorecard", "judge", "scorecard_table"]


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

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = "; ".join(self.notes)
        return out


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
    grain: Grain = "month",
    today: dt.date | None = None,
    only: Sequence[str] | None = None,
) -> list[ScorecardRow]:
    """One row per target (or per KPI when there are no targets), grouped by funnel stage."""
    today = today or dt.date.today()
    engine = engine if engine.catalog else engine.with_catalog(kpis)
    default_period = period or Period.containing(today, grain).previous()
    jobs: list[tuple[KPI, Period, Target | None]] = []
    if targets:
        for t in targets:
            if only and t.kpi not in only:
                continue
            jobs.append((kpis[t.kpi], period or t.period or default_period, t))
    else:
        for kpi_id in only or sorted(kpis):
            if kpi_id not in kpis:
                raise KPIError(f"unknown KPI {kpi_id!r}")
            jobs.append((kpis[kpi_id], default_period, None))
    rows = [_row(engine, kpi, p, t, today) for kpi, p, t in jobs]
    rows.sort(key=lambda r: (STAGE_ORDER.get(r.stage or "", 4), r.kpi, r.period))
    return rows


def _row(engine: KPIEngine, kpi: KPI, period: Period, target: Target | None, today: dt.date) -> ScorecardRow:
    row = ScorecardRow(kpi.id, kpi.title, kpi.unit, kpi.stage, period.label, None)
    missing = engine.missing_tables(kpi)
    if missing:
        row.status = "no data"
        row.notes.append(f"table {missing[0]} not synced")
        return row
    previous = period.previous()
    try:
        series = engine.series(kpi, grain=period.grain, start=previous.start, end=period.end)
    except MixedCurrencyError:
        raise  # money in several currencies: the scorecard refuses as a whole
    except KPIError as exc:
        row.status = "n/a"
        row.notes.append(str(exc))
        return row
    values = series.values()
    row.actual = values.get(period.start)
    row.previous = values.get(previous.start)
    row.currency = series.currency
    row.change = _relative_change(row.actual, row.previous)
    last_year = period.same_last_year()
    try:
        row.last_year = (
            engine.series(kpi, grain=period.grain, start=last_year.start, end=last_year.end)
            .values()
            .get(last_year.start)
        )
    except MixedCurrencyError:
        raise
    except KPIError as exc:  # e.g. too little history a year back to fit a model
        row.notes.append(f"no value for {last_year.label}: {exc}")
    row.change_yoy = _relative_change(row.actual, row.last_year)
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
        ]
    )
    return pa.Table.from_pylist([r.as_dict() for r in rows], schema=schema)
