"""Run compiled KPIs on DuckDB (the embedded default) and return Arrow tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from kpihub.destinations.base import DestinationSession
from kpihub.destinations.duckdb import fetch_arrow
from kpihub.errors import DestinationError, KPIError, KpihubError, MixedCurrencyError
from kpihub.kpis.compiler import (
    FX_TABLE,
    Catalog,
    Leaf,
    compile_kpi,
    currency_check_sql,
    leaves,
    missing_fx_sql,
    scan_key,
    shared_flows_sql,
    transpile,
)
from kpihub.kpis.periods import Grain, Period
from kpihub.kpis.spec import KPI

__all__ = ["KPIEngine", "KPISeries"]


@dataclass
class KPISeries:
    """A KPI over a time spine: ``period, numerator, denominator, value`` rows."""

    kpi: KPI
    grain: Grain
    table: pa.Table
    currency: str | None = None

    def values(self) -> dict[dt.date, float | None]:
        """Period → value (of a series without a breakdown)."""
        return dict(zip(self.table["period"].to_pylist(), self.table["value"].to_pylist(), strict=True))

    def breakdown(self, by: str) -> dict[tuple[dt.date, str], float | None]:
        """(period, dimension value) → value, of a series computed with ``by``."""
        keys = zip(self.table["period"].to_pylist(), self.table[by].to_pylist(), strict=True)
        return dict(zip(keys, self.table["value"].to_pylist(), strict=True))


class SQLBackend(Protocol):
    """Where KPI SQL runs: it takes kpihub's SQL (DuckDB dialect) and returns Arrow."""

    dialect: str

    def query(self, sql: str) -> pa.Table: ...

    def table_names(self) -> set[str]: ...


class DuckDBBackend:
    """A DuckDB connection (the embedded default), its session zone set to the reporting zone."""

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, timezone: str) -> None:
        self.con = con
        con.execute(f"SET TimeZone = '{timezone}'")

    def query(self, sql: str) -> pa.Table:
        return fetch_arrow(self.con, sql)

    def table_names(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


class DatabaseBackend:
    """A database destination (PostgreSQL): kpihub's SQL transpiled by sqlglot, run where the data lives."""

    def __init__(self, session: Any, dialect: str, timezone: str) -> None:
        self.session = session
        self.dialect = dialect
        session.set_time_zone(timezone)  # as DuckDB's session zone: calendar days in the reporting zone

    def query(self, sql: str) -> pa.Table:
        return self.session.query(transpile(sql, self.dialect))

    def table_names(self) -> set[str]:
        return set(self.session.tables())


ENGINES = ("duckdb", "postgres", "spark")


class KPIEngine:
    """Computes KPIs with SQL: on a DuckDB connection (default) or on the database that holds the data."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection | SQLBackend,
        *,
        timezone: str = "UTC",
        currency: str | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.backend: SQLBackend = DuckDBBackend(con, timezone) if isinstance(con, duckdb.DuckDBPyConnection) else con
        #: The DuckDB connection (None when KPIs run in another database).
        self.con = con if isinstance(con, duckdb.DuckDBPyConnection) else None
        self.timezone = timezone
        #: Reporting currency: with an ``fx_rates_daily`` table, money in other currencies is converted into it.
        self.currency = currency.upper() if currency else None
        #: KPI id → KPI: resolves the inputs of derived KPIs.
        self.catalog: Catalog = catalog or {}
        #: The destination the data comes from (set by :meth:`for_destination`): its sync state
        #: says what each stream's last sync made of the data (the scorecard's data-quality line).
        self.session: DestinationSession | None = None

    @classmethod
    def for_destination(
        cls,
        session: DestinationSession,
        *,
        timezone: str = "UTC",
        currency: str | None = None,
        catalog: Catalog | None = None,
        engine: str = "duckdb",
    ) -> KPIEngine:
        """KPIs over a destination: in embedded DuckDB (default), ``engine="postgres"`` in the database,
        or ``engine="spark"`` on a local Spark over a Parquet destination."""
        con: duckdb.DuckDBPyConnection | SQLBackend
        if engine == "duckdb":
            con = duckdb.connect()
            session.attach(con)
        elif engine not in ENGINES:
            raise KPIError(f"unknown KPI engine {engine!r} (choose from {', '.join(ENGINES)})")
        elif engine == "spark":
            from kpihub.kpis.spark import SparkBackend

            con = SparkBackend(session, timezone)
        elif getattr(session, "dialect", None) != engine:
            raise KPIError(f"--engine {engine} needs a {engine} destination, not {session.uri}")
        else:
            con = DatabaseBackend(session, engine, timezone)
        made = cls(con, timezone=timezone, currency=currency, catalog=catalog)
        made.session = session
        return made

    def with_catalog(self, catalog: Catalog) -> KPIEngine:
        """The same engine (same connection) resolving derived KPIs' inputs in ``catalog``."""
        made = KPIEngine(
            self.con if self.con is not None else self.backend,
            timezone=self.timezone,
            currency=self.currency,
            catalog=catalog,
        )
        made.session = self.session
        return made

    def state(self) -> dict[str, Any]:
        """The destination's sync state (``<source_id>.<stream>`` → entry); empty without a destination."""
        return self.session.all_state() if self.session is not None else {}

    @property
    def fx(self) -> bool:
        """True when money can be converted: a reporting currency and an fx_rates_daily table."""
        return self.currency is not None and FX_TABLE in self.tables()

    def tables(self) -> set[str]:
        return self.backend.table_names()

    def input_tables(self, kpi: KPI) -> list[str]:
        """The tables ``kpi`` reads, through the inputs of derived KPIs too."""
        today = dt.date.today()
        needed = leaves(kpi, grain="month", start=today, end=today + dt.timedelta(days=1), catalog=self.catalog)
        return list(dict.fromkeys(leaf.measure.table for leaf in needed))

    def missing_tables(self, kpi: KPI) -> list[str]:
        present = self.tables()
        return [table for table in self.input_tables(kpi) if table not in present]

    def series(self, kpi: KPI, *, grain: Grain, start: dt.date, end: dt.date, by: str | None = None) -> KPISeries:
        """``kpi`` for every ``grain`` period overlapping ``[start, end)`` (and value of dimension ``by``)."""
        currency, fx = self._checked(kpi, grain, start, end, self.tables(), None)
        if kpi.kind == "model":
            from kpihub.models import model_series

            return model_series(self, kpi, grain=grain, start=start, end=end, currency=currency)
        sql = compile_kpi(
            kpi,
            grain=grain,
            start=start,
            end=end,
            timezone=self.timezone,
            fx_currency=self.currency if fx else None,
            catalog=self.catalog,
            by=by,
            # Flows' SQL is DuckDB as generated: the backend runs (or transpiles) it itself, without the
            # sqlglot round trip that costs more than a small query. Other kinds lean on the round trip.
            dialect=None if kpi.kind in ("simple", "ratio") else "duckdb",
        )
        return KPISeries(kpi, grain, self.query(kpi, sql), currency)

    def series_many(
        self, kpis: Sequence[KPI], *, grain: Grain, start: dt.date, end: dt.date, by: str | None = None
    ) -> dict[str, KPISeries | KpihubError]:
        """:meth:`series` of each KPI (or the error it raises), with one scan of a table for all the
        simple and ratio KPIs that aggregate the same rows (CTR, CPC, CPA, ROAS), and each currency
        check run once. The values, types and errors are those :meth:`series` gives each KPI alone."""
        out: dict[str, KPISeries | KpihubError] = {}
        present = self.tables()
        memo: dict[str, pa.Table] = {}  # currency-check SQL → its rows: CPC, CPA and ROAS check one column
        groups: dict[tuple[Any, ...], list[tuple[KPI, str | None]]] = {}
        for kpi in kpis:
            try:
                currency, fx = self._checked(kpi, grain, start, end, present, memo)
            except KpihubError as exc:
                out[kpi.id] = exc
                continue
            key = scan_key(kpi, self.currency if fx else None)
            if self.con is None or key is None or fx or (by and kpi.kind == "simple"):
                out[kpi.id] = self._series_or_error(kpi, grain, start, end, by)
            else:
                groups.setdefault(key, []).append((kpi, currency))
        for members in groups.values():
            if len(members) == 1:
                kpi = members[0][0]
                out[kpi.id] = self._series_or_error(kpi, grain, start, end, by)
                continue
            try:
                sql = shared_flows_sql(
                    [k for k, _ in members], grain=grain, start=start, end=end, timezone=self.timezone, by=by
                )
                table = self.backend.query(sql)
            except (KpihubError, duckdb.Error, DestinationError):
                # Each KPI alone says what is wrong with it (and the others still run).
                for kpi, _ in members:
                    out[kpi.id] = self._series_or_error(kpi, grain, start, end, by)
                continue
            head = ["period", by] if by else ["period"]
            for i, (kpi, currency) in enumerate(members):
                cols = [f"numerator_{i}", f"denominator_{i}", f"value_{i}"]
                part = table.select(head + cols).rename_columns([*head, "numerator", "denominator", "value"])
                out[kpi.id] = KPISeries(kpi, grain, part, currency)
        return {kpi.id: out[kpi.id] for kpi in kpis}

    def _series_or_error(
        self, kpi: KPI, grain: Grain, start: dt.date, end: dt.date, by: str | None
    ) -> KPISeries | KpihubError:
        try:
            return self.series(kpi, grain=grain, start=start, end=end, by=by)
        except KpihubError as exc:
            return exc

    def _checked(
        self, kpi: KPI, grain: Grain, start: dt.date, end: dt.date, present: set[str], memo: dict[str, pa.Table] | None
    ) -> tuple[str | None, bool]:
        """``(currency, fx)`` of ``kpi`` over the range once its tables exist and its money adds up."""
        needed = leaves(kpi, grain=grain, start=start, end=end, catalog=self.catalog)
        missing = [leaf.measure.table for leaf in needed if leaf.measure.table not in present]
        if missing:
            raise KPIError(f"KPI {kpi.id!r} needs table {missing[0]!r}, which no sync has written yet")
        money = [leaf for leaf in needed if leaf.measure.currency]
        fx = bool(money) and self.currency is not None and FX_TABLE in present  # self.fx without a 2nd lookup
        currency = self._check_fx(money) if fx else self._currency(kpi, money, memo)
        if kpi.unit != "currency":
            currency = None  # checked above, but a rate of money (ROAS, ROI) has no currency
        return currency, fx

    def query(self, kpi: KPI, sql: str) -> pa.Table:
        """Run ``kpi``'s SQL; a database error is a one-line KPIError naming the KPI."""
        try:
            return self.backend.query(sql)
        except (duckdb.Error, DestinationError) as exc:
            raise KPIError(f"KPI {kpi.id!r}: query failed: {str(exc).splitlines()[0]}") from None

    def period_value(self, kpi: KPI, period: Period) -> tuple[float | None, float | None, float | None, str | None]:
        """``(value, numerator, denominator, currency)`` of ``kpi`` over one period."""
        s = self.series(kpi, grain=period.grain, start=period.start, end=period.end)
        row = s.table.slice(0, 1).to_pylist()[0]
        return row["value"], _num(row["numerator"]), _num(row["denominator"]), s.currency

    def _check_fx(self, money: list[Leaf]) -> str | None:
        """Every row to convert has a rate for its day, or the KPI refuses (no silent drops)."""
        assert self.currency is not None
        for leaf in money:
            sql = missing_fx_sql(leaf.measure, self.currency, start=leaf.start, end=leaf.end, timezone=self.timezone)
            missing = [tuple(r.values()) for r in self.query(leaf.kpi, sql).to_pylist()]
            if missing:
                code, day = missing[0]
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise MixedCurrencyError(
                    f"KPI {leaf.kpi.id!r}: no FX rate {code}->{self.currency} for {day} in fx_rates_daily{more}"
                )
        return self.currency

    def _currency(self, kpi: KPI, money: list[Leaf], memo: dict[str, pa.Table] | None = None) -> str | None:
        found: set[str] = set()
        unnamed = 0
        for leaf in money:
            sql = currency_check_sql(leaf.measure, start=leaf.start, end=leaf.end, timezone=self.timezone)
            if memo is None:
                rows = self.query(kpi, sql)
            elif sql in memo:
                rows = memo[sql]
            else:
                rows = memo[sql] = self.query(kpi, sql)
            for r in rows.to_pylist():
                if r["currency"] is None:
                    unnamed += r["n"]
                else:
                    found.add(r["currency"])
        if not money:
            return None
        start, end = min(leaf.start for leaf in money), max(leaf.end for leaf in money)
        if unnamed and found:
            raise MixedCurrencyError(
                f"KPI {kpi.id!r} would add {unnamed} amount(s) without a currency to amounts in "
                f"{', '.join(sorted(found))} between {start} and {end}; fix the source's currency field"
            )
        if len(found) > 1:
            raise MixedCurrencyError(
                f"KPI {kpi.id!r} would add amounts in {len(found)} currencies ({', '.join(sorted(found))}) "
                f"between {start} and {end}; configure FX rates (fx_rates_daily) or filter to one currency"
            )
        return next(iter(found), None)


def _num(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
