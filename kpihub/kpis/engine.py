"""Run compiled KPIs on DuckDB (the embedded default) and return Arrow tables."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import duckdb
import pyarrow as pa

from kpihub.destinations.base import DestinationSession
from kpihub.destinations.duckdb import DuckDBSession
from kpihub.errors import DestinationError, KPIError, KpihubError, MixedCurrencyError
from kpihub.kpis.batch import batchable, check_flow, flow_batch_sql, scan_key, union_sql
from kpihub.kpis.compiler import (
    FX_TABLE,
    Catalog,
    Leaf,
    compile_kpi,
    currency_check_sql,
    leaves,
    missing_fx_sql,
    transpile,
)
from kpihub.kpis.periods import Grain, Period, period_starts
from kpihub.kpis.spec import KPI

__all__ = ["KPIEngine", "KPISeries", "SeriesRequest"]


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


@dataclass(frozen=True)
class SeriesRequest:
    """One :meth:`KPIEngine.series` call of a :meth:`KPIEngine.series_batch`: ``kpi`` over ``[start, end)``."""

    kpi: KPI
    start: dt.date
    end: dt.date


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
        result = self.con.execute(sql)
        method = getattr(result, "to_arrow_table", None)
        if method is None:  # DuckDB 1.x
            return result.fetch_arrow_table()
        # DuckDB 2's con.sql() binds a query twice (to describe it, then to run it): ~10 ms for a scorecard's
        # batch. A KPI result is small, so the copy DuckDB warns that a DB-API result's Arrow output makes is not.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            return method()

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
        if engine == "duckdb" and isinstance(session, DuckDBSession) and session.read_only:
            # A cursor of the destination's own read-only connection: the reporting zone is the cursor's
            # setting, and no second database instance opens and attaches the same file (~30 ms).
            con = session.con.cursor()
        elif engine == "duckdb":
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
        """The names of the tables the engine can query (DuckDB's, or the database destination's)."""
        return self.backend.table_names()

    def input_tables(self, kpi: KPI) -> list[str]:
        """The tables ``kpi`` reads, through the inputs of derived KPIs too."""
        today = dt.date.today()
        needed = leaves(kpi, grain="month", start=today, end=today + dt.timedelta(days=1), catalog=self.catalog)
        return list(dict.fromkeys(leaf.measure.table for leaf in needed))

    def data_spans(self, tables: Iterable[str] | None = None) -> dict[str, tuple[dt.date, dt.date]]:
        """The first and last day, in the reporting time zone, each canonical table has rows for (by
        its time column); tables absent or empty are left out. One small aggregate query per table."""
        from zoneinfo import ZoneInfo

        from kpihub.model import CANONICAL_TABLES

        present = self.tables()
        zone = ZoneInfo(self.timezone)
        timed = [
            (name, CANONICAL_TABLES[name].time_column)
            for name in sorted(set(tables) if tables is not None else set(CANONICAL_TABLES))
            if name in present and name in CANONICAL_TABLES and CANONICAL_TABLES[name].time_column
        ]
        if not timed:
            return {}
        # One query for every table (a scorecard pays one round trip, not one per table).
        columns = ", ".join(
            f'(SELECT MIN("{col}") FROM "{name}") AS f{i}, (SELECT MAX("{col}") FROM "{name}") AS l{i}'
            for i, (name, col) in enumerate(timed)
        )
        row = self.backend.query(f"SELECT {columns}")
        spans: dict[str, tuple[dt.date, dt.date]] = {}
        for i, (name, _col) in enumerate(timed):
            first, last = (_local_day(row.column(f"{k}{i}")[0].as_py(), zone) for k in ("f", "l"))
            if first is not None and last is not None:
                spans[name] = (first, last)
        return spans

    def data_ends(self, tables: Iterable[str] | None = None) -> dict[str, dt.date]:
        """The last day each canonical table has rows for (see :meth:`data_spans`)."""
        return {name: span[1] for name, span in self.data_spans(tables).items()}

    def missing_tables(self, kpi: KPI, present: set[str] | None = None) -> list[str]:
        """The tables ``kpi`` reads that are not in ``present`` (default: the tables there are now)."""
        present = self.tables() if present is None else present
        return [table for table in self.input_tables(kpi) if table not in present]

    def series(self, kpi: KPI, *, grain: Grain, start: dt.date, end: dt.date, by: str | None = None) -> KPISeries:
        """``kpi`` for every ``grain`` period overlapping ``[start, end)`` (and value of dimension ``by``)."""
        return self._series(kpi, grain, start, end, by, self.tables())

    def _series(
        self, kpi: KPI, grain: Grain, start: dt.date, end: dt.date, by: str | None, present: set[str]
    ) -> KPISeries:
        currency, fx = self._checked(kpi, grain, start, end, present)
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

    def series_batch(
        self, requests: Sequence[SeriesRequest], *, grain: Grain, tables: set[str] | None = None
    ) -> list[KPISeries | KpihubError]:
        """:meth:`series` of each request (or the error it raises), in one query for all the simple and
        ratio KPIs among them (:mod:`kpihub.kpis.batch`): each table read once, for every period asked,
        with the currency checks folded in. The values, types and errors are those of :meth:`series`.
        ``tables``: the tables there are, when the caller has just read them (:meth:`tables`)."""
        return self._batch(requests, grain, None, tables)

    def series_many(
        self, kpis: Sequence[KPI], *, grain: Grain, start: dt.date, end: dt.date, by: str | None = None
    ) -> dict[str, KPISeries | KpihubError]:
        """:meth:`series` of each KPI (or the error it raises) over the same periods: with ``by``, one
        scan for the simple and ratio KPIs that aggregate the same rows (CTR, CPC, CPA, ROAS), without
        ``by`` one query for all of them (:meth:`series_batch`)."""
        got = self._batch([SeriesRequest(kpi, start, end) for kpi in kpis], grain, by, None)
        return {kpi.id: series for kpi, series in zip(kpis, got, strict=True)}

    def _batch(
        self, requests: Sequence[SeriesRequest], grain: Grain, by: str | None, tables: set[str] | None
    ) -> list[KPISeries | KpihubError]:
        present = self.tables() if tables is None else tables
        fx = self.currency if self.currency is not None and FX_TABLE in present else None
        out: list[KPISeries | KpihubError | None] = [None] * len(requests)
        groups: dict[Any, dict[int, SeriesRequest]] = {}
        for n, r in enumerate(requests):
            key = self._batch_key(r, grain, by, present, fx)
            if key is None:
                out[n] = self._series_or_error(r.kpi, grain, r.start, r.end, by, present)
            else:
                groups.setdefault(key, {})[n] = r
        for asks in groups.values():
            self._run_batch(asks, grain, by, present, out)
        return cast("list[KPISeries | KpihubError]", out)  # every position filled above

    def _batch_key(self, r: SeriesRequest, grain: Grain, by: str | None, present: set[str], fx: str | None) -> Any:
        """What ``r`` shares a query with (a breakdown: the same rows; else every batchable request), or
        None when :meth:`series` computes it alone (other kinds, money to convert, missing tables, an
        empty range, a definition the compiler refuses: :meth:`series` says so, in its words)."""
        kpi = r.kpi
        if not batchable(kpi) or (fx and any(m.currency for m in kpi.measures.values())):
            return None
        if not period_starts(r.start, r.end, grain) or any(m.table not in present for m in kpi.measures.values()):
            return None
        try:
            check_flow(kpi, grain=grain, start=r.start, end=r.end, timezone=self.timezone, by=by)
        except KPIError:
            return None
        return scan_key(kpi) if by else "all"

    def _run_batch(
        self,
        asks: dict[int, SeriesRequest],
        grain: Grain,
        by: str | None,
        present: set[str],
        out: list[KPISeries | KpihubError | None],
    ) -> None:
        """Fill ``out`` at ``asks``' positions from one batch query and one query of all their currency
        checks (each request alone, as :meth:`series` would, if either fails)."""
        spans = {n: period_starts(r.start, r.end, grain) for n, r in asks.items()}
        kpis: dict[int, KPI] = {id(r.kpi): r.kpi for r in asks.values()}  # a KPI asked twice is computed once
        money = {
            n: self._currency_checks(
                [leaf for leaf in leaves(r.kpi, grain=grain, start=r.start, end=r.end) if leaf.measure.currency]
            )
            for n, r in asks.items()
        }
        checks = list(dict.fromkeys(sql for leaves_ in money.values() for _, sql in leaves_))
        try:
            batch = flow_batch_sql(
                list(kpis.values()), grain=grain, starts=[s for ss in spans.values() for s in ss],
                timezone=self.timezone, by=by,
            )  # fmt: skip
            table = self.backend.query(batch.sql)
            checked = self._checks(checks)
        except (KpihubError, duckdb.Error, DestinationError):
            # Each KPI alone says what is wrong with it (and the others still run).
            for n, r in asks.items():
                out[n] = self._series_or_error(r.kpi, grain, r.start, r.end, by, present)
            return
        index = {key: i for i, key in enumerate(kpis)}
        row_of = {p: i for i, p in enumerate(table["period"].to_pylist())} if by is None else {}
        head = ["period", by] if by else ["period"]
        for n, r in asks.items():
            try:
                currency = self._currency(r.kpi, money[n], checked)
            except KpihubError as exc:  # money in several currencies: what series says
                out[n] = _detached(exc)
                continue
            rows = table if by else table.slice(row_of[spans[n][0]], len(spans[n]))
            i = index[id(r.kpi)]
            part = rows.select(head + batch.columns(i)).rename_columns([*head, "numerator", "denominator", "value"])
            out[n] = KPISeries(r.kpi, grain, part, currency if r.kpi.unit == "currency" else None)

    def _currency_checks(self, money: list[Leaf]) -> list[tuple[Leaf, str]]:
        """Each money leaf with the SQL of its currency check."""
        tz = self.timezone
        return [(leaf, currency_check_sql(leaf.measure, start=leaf.start, end=leaf.end, timezone=tz)) for leaf in money]

    def _checks(self, checks: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Currency check SQL → its rows, all the checks in one query."""
        if not checks:
            return {}
        rows: dict[str, list[dict[str, Any]]] = {sql: [] for sql in checks}
        for r in self.backend.query(union_sql(checks)).to_pylist():
            rows[checks[r["k"]]].append({"currency": r["currency"], "n": r["n"]})
        return rows

    def _series_or_error(
        self, kpi: KPI, grain: Grain, start: dt.date, end: dt.date, by: str | None, present: set[str]
    ) -> KPISeries | KpihubError:
        try:
            return self._series(kpi, grain, start, end, by, present)
        except KpihubError as exc:
            return _detached(exc)

    def _checked(
        self, kpi: KPI, grain: Grain, start: dt.date, end: dt.date, present: set[str]
    ) -> tuple[str | None, bool]:
        """``(currency, fx)`` of ``kpi`` over the range once its tables exist and its money adds up."""
        needed = leaves(kpi, grain=grain, start=start, end=end, catalog=self.catalog)
        missing = [leaf.measure.table for leaf in needed if leaf.measure.table not in present]
        if missing:
            raise KPIError(f"KPI {kpi.id!r} needs table {missing[0]!r}, which no sync has written yet")
        money = [leaf for leaf in needed if leaf.measure.currency]
        fx = bool(money) and self.currency is not None and FX_TABLE in present  # self.fx without a 2nd lookup
        currency = self._check_fx(money) if fx else self._currency(kpi, self._currency_checks(money))
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

    def _currency(
        self, kpi: KPI, money: list[tuple[Leaf, str]], checked: dict[str, list[dict[str, Any]]] | None = None
    ) -> str | None:
        """The one currency of ``kpi``'s money (each leaf with its check SQL; ``checked``: their rows when
        already read), or the error of amounts that do not add up."""
        found: set[str] = set()
        unnamed = 0
        for _, sql in money:
            for r in self.query(kpi, sql).to_pylist() if checked is None else checked[sql]:
                if r["currency"] is None:
                    unnamed += r["n"]
                else:
                    found.add(r["currency"])
        if not money:
            return None
        start, end = min(leaf.start for leaf, _ in money), max(leaf.end for leaf, _ in money)
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


_E = TypeVar("_E", bound=BaseException)


def _detached(exc: _E) -> _E:
    """``exc`` (and the errors it chains) without tracebacks: an error kept as a result would otherwise
    hold the frames that computed it, the list it is kept in among them, and so the connection, open."""
    seen: BaseException | None = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return exc


def _local_day(value: object, zone: Any) -> dt.date | None:
    """A time column's value as a day in ``zone`` (a naive timestamp is UTC); ``None`` for none."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(zone).date()
    return value if isinstance(value, dt.date) else None


def _num(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
