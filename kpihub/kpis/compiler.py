"""Compile a KPI to one SQL query with sqlglot, for DuckDB or any dialect sqlglot writes.

The query returns one row per period of the time spine::

    period (DATE) | numerator | denominator | value

Each measure is aggregated to the period grain in its own CTE — rows are
placed in periods by their time column converted to the reporting time zone —
and then left-joined to the spine. Counts and sums fill empty periods with 0;
a ratio is Σnumerator ÷ Σdenominator and null where the denominator is 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from kpihub.errors import KPIError
from kpihub.kpis.periods import GRAINS, Grain, period_starts
from kpihub.kpis.spec import KPI, Measure
from kpihub.model import CANONICAL_TABLES

__all__ = ["compile_kpi", "currency_check_sql", "measure_columns"]

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "spark")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schema(table: str, schemas: Mapping[str, pa.Schema] | None) -> pa.Schema:
    if schemas is not None and table in schemas:
        return schemas[table]
    if table in CANONICAL_TABLES:
        return CANONICAL_TABLES[table].schema
    raise KPIError(f"unknown table {table!r} (canonical tables: {', '.join(CANONICAL_TABLES)})")


def _parse(kpi: KPI, role: str, sql: str, what: str) -> Any:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        first = str(exc).splitlines()[0]
        raise KPIError(f"KPI {kpi.id!r}: {role} {what} {sql!r} is not valid SQL: {first}") from None


def measure_columns(kpi: KPI, role: str, measure: Measure, schemas: Mapping[str, pa.Schema] | None = None) -> None:
    """Check that every column a measure uses exists in its table."""
    schema = _schema(measure.table, schemas)
    names = set(schema.names)
    used = [("time column", measure.time)]
    for what, sql in (("expression", measure.expr), ("filter", measure.filter)):
        if sql:
            used += [(what, c.name) for c in _parse(kpi, role, sql, what).find_all(exp.Column)]
    if measure.currency:
        used.append(("currency column", measure.currency))
    for what, column in used:
        if column not in names:
            raise KPIError(f"KPI {kpi.id!r}: {role} {what} uses unknown column {column!r} of table {measure.table!r}")


def _local_time(column: str, field_type: pa.DataType, timezone: str) -> str:
    if pa.types.is_timestamp(field_type):
        return f"({_q(column)} AT TIME ZONE '{timezone}')"
    return f"CAST({_q(column)} AS TIMESTAMP)"


def _measure_local_time(measure: Measure, timezone: str, schemas: Mapping[str, pa.Schema] | None) -> str:
    schema = _schema(measure.table, schemas)
    return _local_time(measure.time, schema.field(measure.time).type, timezone)


def _rows_in(measure: Measure, local: str, start: dt.date, end: dt.date, *more: str) -> str:
    """The condition for a measure's rows in ``[start, end)`` of local time (plus its filter)."""
    where = [
        f"{_q(measure.time)} IS NOT NULL",
        f"{local} >= CAST('{start.isoformat()}' AS TIMESTAMP)",
        f"{local} < CAST('{end.isoformat()}' AS TIMESTAMP)",
        *more,
    ]
    if measure.filter:
        where.append(f"({measure.filter})")
    return " AND ".join(where)


def _measure_sql(
    kpi: KPI,
    role: str,
    measure: Measure,
    *,
    grain: Grain,
    start: dt.date,
    end: dt.date,
    timezone: str,
    schemas: Mapping[str, pa.Schema] | None,
    fx_currency: str | None = None,
) -> str:
    measure_columns(kpi, role, measure, schemas)
    if measure.max_grain is not None and GRAINS.index(grain) > GRAINS.index(measure.max_grain):  # type: ignore[arg-type]
        raise KPIError(
            f"KPI {kpi.id!r} adds up {measure.expr or 'rows'} of {measure.table} that do not add up beyond a "
            f"{measure.max_grain}; ask for grain {measure.max_grain!r}, not {grain!r}"
        )
    local = _measure_local_time(measure, timezone, schemas)
    if measure.agg == "count_before":
        # A stock, not a flow: for each spine period, the rows placed before it began.
        cond = [f"{_q(measure.time)} IS NOT NULL", f"{local} < CAST(spine.period AS TIMESTAMP)"]
        if measure.filter:
            cond.append(f"({measure.filter})")
        return (
            f"SELECT spine.period AS period, (SELECT COUNT(*) FROM {_q(measure.table)} WHERE {' AND '.join(cond)}) "
            "AS value FROM spine"
        )
    if measure.agg == "count":
        agg = "COUNT(*)"
    elif measure.agg == "sum" and measure.currency and fx_currency:
        # Money in several currencies: each row converted at its own day's rate (fx_rates_daily).
        agg = f"SUM(({measure.expr}) * {_rate(measure.currency, fx_currency)})"
    elif measure.agg == "sum":
        agg = f"SUM({measure.expr})"
    elif measure.agg == "count_distinct":
        agg = f"COUNT(DISTINCT {measure.expr})"
    else:  # pragma: no cover - Literal guards this
        raise KPIError(f"KPI {kpi.id!r}: unknown aggregation {measure.agg!r}")
    where = _rows_in(measure, local, start, end)
    source = _q(measure.table)
    if measure.agg == "sum" and measure.currency and fx_currency:
        source += " " + _fx_join(measure.currency, local)
    return (
        f"SELECT CAST(DATE_TRUNC('{grain}', {local}) AS DATE) AS period, {agg} AS value "
        f"FROM {source} WHERE {where} GROUP BY 1"
    )


FX_TABLE = "fx_rates_daily"


def _fx_join(currency_column: str, local: str) -> str:
    # fx_* aliases keep the measure's own column names unambiguous.
    return (
        f"LEFT JOIN (SELECT date AS fx_date, UPPER(base_currency) AS fx_base, UPPER(quote_currency) AS fx_quote, "
        f"rate AS fx_rate FROM {_q(FX_TABLE)}) AS fx ON fx.fx_date = CAST({local} AS DATE) "
        f"AND fx.fx_base = UPPER({_q(currency_column)})"
    )


def _rate(currency_column: str, reporting: str) -> str:
    code = reporting.upper().replace("'", "")
    return (
        f"CASE WHEN UPPER({_q(currency_column)}) = '{code}' THEN 1 "
        f"WHEN fx.fx_quote = '{code}' THEN CAST(fx.fx_rate AS DOUBLE) END"
    )


def missing_fx_sql(
    measure: Measure,
    reporting: str,
    *,
    start: dt.date,
    end: dt.date,
    timezone: str,
    schemas: Mapping[str, pa.Schema] | None = None,
) -> str:
    """Currency and day of rows a money measure would convert but for which no rate exists."""
    local = _measure_local_time(measure, timezone, schemas)
    code = reporting.upper().replace("'", "")
    currency = f"UPPER({_q(measure.currency or 'currency')})"
    has_rate = (
        f"SELECT 1 FROM {_q(FX_TABLE)} AS r WHERE r.date = CAST({local} AS DATE) "
        f"AND UPPER(r.base_currency) = {currency} AND UPPER(r.quote_currency) = '{code}'"
    )
    where = _rows_in(measure, local, start, end, f"{currency} <> '{code}'", f"NOT EXISTS ({has_rate})")
    return (
        f"SELECT DISTINCT {currency} AS currency, CAST({local} AS DATE) AS day "
        f"FROM {_q(measure.table)} WHERE {where} ORDER BY 2, 1"
    )


def compile_kpi(
    kpi: KPI,
    *,
    grain: Grain,
    start: dt.date,
    end: dt.date,
    timezone: str = "UTC",
    dialect: str = "duckdb",
    schemas: Mapping[str, pa.Schema] | None = None,
    pretty: bool = False,
    fx_currency: str | None = None,
) -> str:
    """SQL computing ``kpi`` for every ``grain`` period overlapping ``[start, end)``.

    With ``fx_currency``, money measures convert each row into that currency at its day's rate.
    """
    starts = period_starts(start, end, grain)
    if not starts:
        raise KPIError(f"KPI {kpi.id!r}: empty date range {start} .. {end}")
    first, stop = starts[0], _after(starts[-1], grain)
    spine = ", ".join(f"('{d.isoformat()}')" for d in starts)
    ctes = [f"spine AS (SELECT CAST(p AS DATE) AS period FROM (VALUES {spine}) AS s(p))"]
    for role, measure in kpi.measures.items():
        body = _measure_sql(
            kpi,
            role,
            measure,
            grain=grain,
            start=first,
            end=stop,
            timezone=timezone,
            schemas=schemas,
            fx_currency=fx_currency,
        )
        ctes.append(f"m_{role} AS ({body})")
    if kpi.kind == "simple":
        select = (
            "COALESCE(m_value.value, 0) AS numerator, CAST(NULL AS DOUBLE) AS denominator, "
            "CAST(COALESCE(m_value.value, 0) AS DOUBLE) AS value"
        )
        joins = "LEFT JOIN m_value ON m_value.period = spine.period"
    else:
        select = (
            "COALESCE(m_numerator.value, 0) AS numerator, COALESCE(m_denominator.value, 0) AS denominator, "
            "CASE WHEN COALESCE(m_denominator.value, 0) = 0 THEN NULL "
            "ELSE CAST(COALESCE(m_numerator.value, 0) AS DOUBLE) / CAST(m_denominator.value AS DOUBLE) END AS value"
        )
        joins = (
            "LEFT JOIN m_numerator ON m_numerator.period = spine.period "
            "LEFT JOIN m_denominator ON m_denominator.period = spine.period"
        )
    sql = f"WITH {', '.join(ctes)} SELECT spine.period AS period, {select} FROM spine {joins} ORDER BY spine.period"
    return transpile(sql, dialect, pretty=pretty, what=f"KPI {kpi.id!r}")


def currency_check_sql(
    measure: Measure, *, start: dt.date, end: dt.date, timezone: str, schemas: Mapping[str, pa.Schema] | None = None
) -> str:
    """Distinct currencies among the rows a money measure adds up in ``[start, end)``."""
    local = _measure_local_time(measure, timezone, schemas)
    where = _rows_in(measure, local, start, end)
    return (
        f"SELECT DISTINCT UPPER({_q(measure.currency or 'currency')}) AS currency FROM {_q(measure.table)} "
        f"WHERE {where} ORDER BY 1"
    )


def transpile(sql: str, dialect: str, *, pretty: bool = False, what: str = "query") -> str:
    if dialect not in DIALECTS:
        raise KPIError(f"unknown SQL dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    try:
        return sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=pretty)[0]
    except ParseError as exc:
        raise KPIError(f"{what}: generated SQL does not parse: {str(exc).splitlines()[0]}") from None


def _after(start: dt.date, grain: Grain) -> dt.date:
    from kpihub.kpis.periods import shift

    return shift(start, grain, 1)
