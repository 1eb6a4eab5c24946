"""Many simple and ratio KPIs in one query: each table read once for all the KPIs that aggregate its rows.

A scorecard asks each KPI for its period, the one before and the same one a year back; a breakdown
asks CTR, CPC, CPA and ROAS for the same months. :func:`flow_batch_sql` answers them together: one
scan per ``(table, time column)`` (a measure's filter becomes its aggregate's ``FILTER``), joined on
a spine of exactly the periods asked for, which need not be contiguous (the scan reads the span
from the first to the last). Each KPI's columns are the
expressions :func:`~kpihub.kpis.compiler.compile_kpi` gives it alone, over the same rows in the same
groups: the same values and types. The currency checks of the money among them are one more query
(:func:`union_sql`): each stays the plain ``GROUP BY`` DuckDB answers fastest (folded into the scan as
``MIN``/``MAX`` aggregates, they doubled a 10M-row scan's time).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa

from kpihub.errors import KPIError
from kpihub.kpis.compiler import (
    _RATIO,
    _SIMPLE,
    _after,
    _agg,
    _converts,
    _measure_local_time,
    _measure_sql,
    _q,
    _rows_in,
    _spine,
    dimension_sql,
    time_type,
)
from kpihub.kpis.periods import Grain
from kpihub.kpis.spec import KPI, Measure

__all__ = ["FlowBatch", "batchable", "check_flow", "flow_batch_sql", "scan_key", "union_sql"]

_PLAIN = ("sum", "count", "count_distinct")


def _plain(measure: Measure, fx_currency: str | None) -> bool:
    """A measure that adds rows up within each period on its own (no stock, snapshot or FX join, and no
    distinct count ``per`` month, which counts pairs in a query of its own rather than one aggregate)."""
    return (
        measure.agg in _PLAIN
        and measure.over_time == "sum"
        and measure.per is None
        and not _converts(measure, fx_currency)
    )


def batchable(kpi: KPI, fx_currency: str | None = None) -> bool:
    """True for a simple or ratio KPI every measure of which :func:`flow_batch_sql` can aggregate."""
    return kpi.kind in ("simple", "ratio") and all(_plain(m, fx_currency) for m in kpi.measures.values())


def scan_key(kpi: KPI, fx_currency: str | None = None) -> tuple[str, str, str | None] | None:
    """``(table, time column, filter)`` of a batchable KPI whose measures all read the same rows (a
    breakdown's KPIs share one scan only then: its values are the dimension values of those rows)."""
    if not batchable(kpi, fx_currency):
        return None
    keys = {(m.table, m.time, m.filter) for m in kpi.measures.values()}
    return keys.pop() if len(keys) == 1 else None


def check_flow(
    kpi: KPI,
    *,
    grain: Grain,
    start: dt.date,
    end: dt.date,
    timezone: str,
    schemas: Mapping[str, pa.Schema] | None = None,
    by: str | None = None,
) -> None:
    """The checks :func:`~kpihub.kpis.compiler.compile_kpi` makes of a flow KPI (its columns, the grain
    its measures add up to, the dimension): the same error, raised before the KPI joins a batch."""
    for role, measure in kpi.measures.items():
        _measure_sql(kpi, role, measure, grain=grain, start=start, end=end, timezone=timezone, schemas=schemas, by=by)


@dataclass(frozen=True)
class FlowBatch:
    """The query and its KPIs: the i-th KPI's columns are ``numerator_i``, ``denominator_i``, ``value_i``."""

    sql: str
    kpis: tuple[KPI, ...]

    def columns(self, i: int) -> list[str]:
        return [f"numerator_{i}", f"denominator_{i}", f"value_{i}"]


_ALIAS = re.compile(r"\bAS (numerator|denominator|value)\b")


@dataclass
class _Scan:
    """One read of a table: the aggregates of every measure placed in time by the same column."""

    name: str
    first: Measure
    aggs: dict[tuple[str, str | None], str] = field(default_factory=dict)  # (aggregate, filter) → alias

    def column(self, agg: str, where: str | None) -> str:
        alias = self.aggs.setdefault((agg, where), f"a_{len(self.aggs)}")
        return f"{self.name}.{alias}"

    def sql(
        self,
        grain: Grain,
        span: tuple[dt.date, dt.date],
        timezone: str,
        dim: str | None,
        schemas: Mapping[str, pa.Schema] | None,
    ) -> str:
        m = self.first
        local = _measure_local_time(m, timezone, schemas)
        filters = {f for _, f in self.aggs}
        shared = next(iter(filters)) if len(filters) == 1 else None  # one filter for all: the WHERE's

        def agg(sql: str, where: str | None) -> str:
            return sql if where is None or len(filters) == 1 else f"{sql} FILTER (WHERE ({where}))"

        cols = [f"{agg(a, f)} AS {alias}" for (a, f), alias in self.aggs.items()]
        # The whole span, gaps included, as a hand-written query would: one time condition per row is
        # cheaper than one per run of periods (AT TIME ZONE costs), and the spine drops the gaps' groups.
        where = _rows_in(replace(m, filter=None), local, *span, time_type=time_type(m, schemas))
        if shared is not None:
            where += f" AND ({shared})"
        elif None not in filters:
            where += " AND (" + " OR ".join(f"({f})" for f in sorted(filters)) + ")"  # type: ignore[arg-type]
        head = f"CAST(DATE_TRUNC('{grain}', {local}) AS DATE) AS period" + (f", {dim} AS dim" if dim else "")
        group = "1, 2" if dim else "1"
        return f"SELECT {head}, {', '.join(cols)} FROM {_q(m.table)} WHERE {where} GROUP BY {group}"


def flow_batch_sql(
    kpis: Sequence[KPI],
    *,
    grain: Grain,
    starts: Sequence[dt.date],
    timezone: str = "UTC",
    schemas: Mapping[str, pa.Schema] | None = None,
    by: str | None = None,
) -> FlowBatch:
    """One DuckDB query for :func:`batchable` KPIs (each already through :func:`check_flow`) over the
    periods starting at ``starts``: ``period`` (and ``by``), then each KPI's columns.

    With ``by``, every KPI must have the same :func:`scan_key`.
    """
    starts = sorted(set(starts))
    if not starts or not kpis:
        raise KPIError("a KPI batch needs periods and KPIs")
    keys = {scan_key(k) for k in kpis}
    if by is not None and (len(keys) != 1 or None in keys):
        raise KPIError("a breakdown batch needs KPIs that all read the same rows")
    scans: dict[tuple[str, str], _Scan] = {}
    selects: list[str] = []
    for i, kpi in enumerate(kpis):
        if not batchable(kpi):
            raise KPIError(f"KPI {kpi.id!r} cannot join a batch ({kpi.kind})")
        select = _SIMPLE if kpi.kind == "simple" else _RATIO
        for role, m in kpi.measures.items():
            scan = scans.setdefault((m.table, m.time), _Scan(f"g{len(scans)}", m))
            select = select.replace(f"m_{role}.value", scan.column(_agg(kpi, m, None), m.filter))
        selects.append(_ALIAS.sub(lambda x, i=i: f"AS {x.group(1)}_{i}", select))
    span = (starts[0], _after(starts[-1], grain))
    dim = dimension_sql(kpis[0], kpis[0].measures[next(iter(kpis[0].measures))], by, schemas) if by else None
    ctes = [_spine([(d,) for d in starts])]
    ctes += [f"{s.name} AS ({s.sql(grain, span, timezone, dim, schemas)})" for s in scans.values()]
    columns = ", ".join(selects)
    if by is None:
        joins = " ".join(f"LEFT JOIN {s.name} ON {s.name}.period = spine.period" for s in scans.values())
        sql = (
            f"WITH {', '.join(ctes)} SELECT spine.period AS period, {columns} FROM spine {joins} ORDER BY spine.period"
        )
    else:
        ctes.append("dims AS (SELECT DISTINCT dim FROM g0 WHERE period IN (SELECT period FROM spine))")
        sql = (
            f"WITH {', '.join(ctes)} SELECT spine.period AS period, dims.dim AS {_q(by)}, {columns} "
            "FROM spine CROSS JOIN dims LEFT JOIN g0 ON g0.period = spine.period AND g0.dim = dims.dim "
            "ORDER BY spine.period, dims.dim"
        )
    return FlowBatch(sql, tuple(kpis))


def union_sql(queries: Sequence[str]) -> str:
    """``k, currency, n`` rows: the rows of the k-th of ``queries`` (currency checks), in one query."""
    return " UNION ALL ".join(f"SELECT {k} AS k, q.currency, q.n FROM ({sql}) AS q" for k, sql in enumerate(queries))
