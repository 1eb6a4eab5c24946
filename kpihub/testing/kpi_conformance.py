"""The conformance suite every KPI plugin runs: declarations, the canonical model, dialects, a hand-checked fixture.

Subclass :class:`KPIConformance` in the plugin's tests (the class name must start with
``Test``), name the plugin or the KPIs, and give a small fixture worked out by hand: canonical
rows per table and the value each KPI must have per period::

    from kpihub.testing.conformance import KPIConformance
    import kpihub_saas_pack

    class TestSaasPack(KPIConformance):
        plugin = kpihub_saas_pack            # its kpihub_register_kpis registers the KPIs
        kpis = ("trial_conversion",)          # default: every KPI the plugin registers
        grain = "month"
        tables = {
            "subscriptions": [
                {"subscription_id": "s1", "started_at": "2024-01-03T10:00:00Z", ...},
                ...
            ],
        }
        expected = {
            # January: 1 converted of 4 trials; February: 3 of 6
            "trial_conversion": {"2024-01": 0.25, "2024-02": 0.5},
        }

pytest then runs every ``test_*`` below for each KPI under test (the test id names it): the unit
and direction are declared and valid; every table it reads (through a derived KPI's inputs too)
is a canonical table with the columns it uses; its definition compiles to SQL in every dialect
kpihub supports (:data:`kpihub.kpis.compiler.DIALECTS`) and the SQL parses back in that dialect;
on DuckDB, the :class:`~kpihub.testing.KPIEngine` over the fixture gives the expected value for
every period (a ``None`` expects a null: an empty denominator); the same on PostgreSQL when
``KPIHUB_TEST_POSTGRES_URI`` names a server (skipped, saying so, otherwise); and a ratio of
additive parts over a coarser period (``month`` → ``quarter``) is Σnumerator ÷ Σdenominator of its
periods — the fixture must tell that from the mean of the periods' values, so give its periods
different denominators; and a snapshot KPI (``over_time = "last"``: followers, a page's p75) over a
coarser period is its last period's value, not their sum or mean.

Values in the fixture's rows are what the canonical schema's types take, or ISO text for dates and
timestamps (``"2024-01-03"``, ``"2024-01-03T10:00:00Z"``) and numbers for decimals; ``source_id``
defaults to ``"fixture"``; a column the table does not have, or a required (non-nullable) one
missing, fails naming the table, row and column.
"""

from __future__ import annotations

import datetime as dt
import os
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from kpihub.hookspecs import hookimpl
from kpihub.kpis.periods import GRAINS, Grain, Period, shift, truncate
from kpihub.kpis.spec import KPI, Direction, Unit
from kpihub.model import CANONICAL_TABLES
from kpihub.plugins import Registry

__all__ = ["KPIConformance", "canonical_rows"]

#: Read at import as well as at test time (a test session may hide KPIHUB_* variables from its tests).
_POSTGRES_AT_IMPORT = os.environ.get("KPIHUB_TEST_POSTGRES_URI")
#: The coarser grain whose periods are whole periods of each grain.
COARSER: dict[str, Grain] = {"day": "month", "month": "quarter", "quarter": "year"}


def canonical_rows(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """``rows`` as an Arrow table of canonical table ``table`` (see the module docstring for values)."""
    if table not in CANONICAL_TABLES:
        raise ValueError(f"fixture table {table!r} is not a canonical table ({', '.join(CANONICAL_TABLES)})")
    schema = CANONICAL_TABLES[table].schema
    for n, row in enumerate(rows):
        unknown = sorted(set(row) - set(schema.names))
        if unknown:
            raise ValueError(f"fixture table {table!r}, row {n}: {table} has no column {unknown[0]!r}")
        missing = [f.name for f in schema if not f.nullable and row.get(f.name) is None and f.name != "source_id"]
        if missing:
            raise ValueError(f"fixture table {table!r}, row {n}: column {missing[0]!r} is required")
    columns = {}
    for field in schema:
        default = "fixture" if field.name == "source_id" else None
        values = [_value(row.get(field.name, default), field.type) for row in rows]
        columns[field.name] = pa.array(values, field.type)
    return pa.table(columns, schema=schema)


def _value(value: Any, type_: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(type_) and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    if pa.types.is_date(type_) and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if pa.types.is_decimal(type_) and isinstance(value, int | float):
        return Decimal(str(value))
    return value


class KPIConformance:
    """Base class of a KPI plugin's conformance tests (see the module docstring)."""

    #: The plugin (a module or object with ``kpihub_register_kpis``) whose KPIs are under test.
    plugin: ClassVar[object | None] = None
    #: The KPIs under test: ids (of the plugin's, or any registered) or KPI objects; default: the plugin's.
    kpis: ClassVar[Sequence[str | KPI]] = ()
    #: Canonical table name → its rows (dicts of column → value).
    tables: ClassVar[Mapping[str, Sequence[Mapping[str, Any]]]] = {}
    #: KPI id → period (``"2024-01"``, ``"2024-Q1"``, ``"2024-01-15"``, or a date) → expected value.
    expected: ClassVar[Mapping[str, Mapping[str | dt.date, float | None]]] = {}
    #: The grain of ``expected``'s periods.
    grain: ClassVar[Grain] = "month"
    #: The grain the ratio test re-aggregates at; default: the next coarser (day → month → quarter → year).
    coarser_grain: ClassVar[Grain | None] = None
    #: The reporting time zone (periods are calendar periods there) and currency.
    timezone: ClassVar[str] = "UTC"
    currency: ClassVar[str | None] = None
    #: Relative tolerance of value comparisons.
    tolerance: ClassVar[float] = 1e-9

    # -- what is under test -------------------------------------------------------------

    def registry(self) -> Registry:
        """kpihub's built-ins with the plugin (and the KPI objects of ``kpis``) registered."""
        registry = Registry(load_entrypoints=False)
        if self.plugin is not None and not registry.pm.is_registered(self.plugin):
            registry.register_plugin(self.plugin, f"conformance-{getattr(self.plugin, '__name__', 'kpis')}")
        extra = [k for k in self.kpis if isinstance(k, KPI) and k.id not in registry.kpis]
        if extra:
            registry.register_plugin(_KPIList(extra), "conformance-kpis")
        return registry

    def kpis_under_test(self, registry: Registry) -> list[KPI]:
        """The KPIs the suite checks, resolved in ``registry``."""
        ids = [k.id if isinstance(k, KPI) else k for k in self.kpis]
        if not ids and self.plugin is not None:
            name = registry.pm.get_name(self.plugin)
            ids = list(registry.plugins[name].kpis) if name else []
        if not ids:
            raise AssertionError("name the KPIs under test (kpis = ...) or the plugin that registers them")
        return [registry.kpi(i) for i in ids]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run each test that takes ``kpi_id`` once per KPI under test."""
        if "kpi_id" in metafunc.fixturenames:
            ids = [k.id for k in self.kpis_under_test(self.registry())]
            metafunc.parametrize("kpi_id", ids)

    # -- fixtures ---------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def catalog(cls) -> Mapping[str, KPI]:
        """Every registered KPI by id (it resolves derived KPIs' inputs)."""
        return dict(cls().registry().kpis)

    @pytest.fixture(scope="class")
    @classmethod
    def fixture_tables(cls) -> dict[str, pa.Table]:
        """The fixture's rows as canonical Arrow tables."""
        assert cls.tables, "give the fixture's canonical rows: tables = {table: [row, ...]}"
        return {name: canonical_rows(name, rows) for name, rows in cls.tables.items()}

    @pytest.fixture(scope="class")
    @classmethod
    def duckdb_engine(cls, fixture_tables: dict[str, pa.Table], catalog: Mapping[str, KPI]) -> Iterator[Any]:
        """A KPIEngine over an in-memory DuckDB holding the fixture."""
        import duckdb

        from kpihub.kpis.engine import KPIEngine

        con = duckdb.connect()
        for name, table in fixture_tables.items():
            con.register("fixture_rows", table)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM fixture_rows')
            con.unregister("fixture_rows")
        yield KPIEngine(con, timezone=cls.timezone, currency=cls.currency, catalog=catalog)
        con.close()

    @pytest.fixture(scope="class")
    @classmethod
    def postgres_engine(cls, fixture_tables: dict[str, pa.Table], catalog: Mapping[str, KPI]) -> Iterator[Any]:
        """A KPIEngine running in PostgreSQL over the fixture, in a schema of its own (dropped after)."""
        server = os.environ.get("KPIHUB_TEST_POSTGRES_URI") or _POSTGRES_AT_IMPORT
        if not server:
            pytest.skip("KPIHUB_TEST_POSTGRES_URI is unset: no PostgreSQL server to run the KPIs on")
        from kpihub.destinations.adbc import ADBCDestination
        from kpihub.destinations.base import TableWrite
        from kpihub.kpis.engine import KPIEngine

        schema = f"kpi_conformance_{uuid.uuid4().hex[:10]}"
        session = ADBCDestination().open(f"{server}{'&' if '?' in server else '?'}schema={schema}")
        try:
            session.commit([TableWrite(n, t, "replace") for n, t in fixture_tables.items()], {})
            yield KPIEngine.for_destination(
                session, timezone=cls.timezone, currency=cls.currency, catalog=catalog, engine="postgres"
            )
        finally:
            session.close()
            _drop_schema(server, schema)

    # -- helpers --------------------------------------------------------------------------

    def periods(self, kpi_id: str) -> dict[dt.date, float | None]:
        """``expected[kpi_id]`` by period start date (each period checked to be of :attr:`grain`)."""
        assert kpi_id in self.expected, f"no expected values for KPI {kpi_id!r}: add expected[{kpi_id!r}]"
        out = {}
        for key, value in self.expected[kpi_id].items():
            period = Period(key, self.grain) if isinstance(key, dt.date) else Period.parse(key)
            assert period.grain == self.grain and truncate(period.start, self.grain) == period.start, (
                f"expected[{kpi_id!r}]: {key!r} is not a {self.grain}"
            )
            out[period.start] = value
        assert out, f"expected[{kpi_id!r}] has no periods"
        return out

    def assert_values(self, engine: Any, kpi: KPI) -> None:
        """The engine's value of ``kpi`` for each expected period is the expected one."""
        want = self.periods(kpi.id)
        first, last = min(want), max(want)
        got = engine.series(kpi, grain=self.grain, start=first, end=shift(last, self.grain, 1)).values()
        wrong = {str(p): (got.get(p), v) for p, v in want.items() if not _close(got.get(p), v, self.tolerance)}
        assert not wrong, f"KPI {kpi.id!r}: period: (computed, expected): {wrong}"

    # -- the suite ----------------------------------------------------------------------

    def test_the_fixture_is_canonical_and_covers_every_kpi(self, catalog: Mapping[str, KPI]) -> None:
        """The fixture's rows fit their canonical tables, and every KPI under test has expected values."""
        for name, rows in self.tables.items():
            canonical_rows(name, rows)  # raises naming table, row and column
        under_test = {k.id for k in self.kpis_under_test(self.registry())}
        assert set(self.expected) <= under_test, (
            f"expected values for KPIs not under test: {set(self.expected) - under_test}"
        )
        for kpi_id in under_test:
            self.periods(kpi_id)

    def test_unit_and_direction_are_declared(self, kpi_id: str, catalog: Mapping[str, KPI]) -> None:
        """The KPI has a title, a description, a unit and a direction kpihub knows."""
        kpi = catalog[kpi_id]
        assert kpi.title.strip() and kpi.description.strip(), f"{kpi_id}: give it a title and a description"
        assert kpi.unit in typing.get_args(Unit), f"{kpi_id}: unit {kpi.unit!r} is not one of {typing.get_args(Unit)}"
        assert kpi.direction in typing.get_args(Direction), f"{kpi_id}: direction {kpi.direction!r}"

    def test_tables_and_columns_are_in_the_canonical_model(self, kpi_id: str, catalog: Mapping[str, KPI]) -> None:
        """Every measure it reads (through derived inputs too) is over a canonical table's columns."""
        from kpihub.kpis.compiler import leaves, measure_columns

        kpi = catalog[kpi_id]
        start = min(self.periods(kpi_id))
        found = leaves(kpi, grain=self.grain, start=start, end=shift(start, self.grain, 1), catalog=catalog)
        assert found, f"{kpi_id}: reads no measure"
        for leaf in found:
            assert leaf.measure.table in CANONICAL_TABLES, f"{kpi_id}: {leaf.measure.table!r} is not canonical"
            measure_columns(leaf.kpi, leaf.role, leaf.measure)  # raises naming the unknown column
            assert leaf.measure.table in self.tables, f"{kpi_id}: the fixture has no {leaf.measure.table!r} rows"

    def test_compiles_in_every_dialect(self, kpi_id: str, catalog: Mapping[str, KPI]) -> None:
        """compile_kpi writes SQL for every dialect kpihub supports, and it parses back in that dialect."""
        import sqlglot

        from kpihub.kpis.compiler import DIALECTS, compile_kpi

        kpi = catalog[kpi_id]
        if kpi.kind == "model":
            pytest.skip(f"{kpi_id} is a model KPI: computed in Python by its model, not compiled to SQL")
        want = self.periods(kpi_id)
        start, end = min(want), shift(max(want), self.grain, 1)
        for dialect in DIALECTS:
            sql = compile_kpi(kpi, grain=self.grain, start=start, end=end, dialect=dialect, catalog=catalog)
            assert sqlglot.parse_one(sql, read=dialect) is not None, f"{kpi_id}: no SQL for {dialect}"

    def test_the_fixture_values_on_duckdb(self, kpi_id: str, catalog: Mapping[str, KPI], duckdb_engine: Any) -> None:
        """The engine on DuckDB gives the hand-checked value for every expected period."""
        self.assert_values(duckdb_engine, catalog[kpi_id])

    def test_the_fixture_values_on_postgres(
        self, kpi_id: str, catalog: Mapping[str, KPI], postgres_engine: Any
    ) -> None:
        """The engine in PostgreSQL (the SQL transpiled) gives the same hand-checked values."""
        self.assert_values(postgres_engine, catalog[kpi_id])

    def test_a_ratio_over_a_coarser_period_is_the_sum_over_the_sum(
        self, kpi_id: str, catalog: Mapping[str, KPI], duckdb_engine: Any
    ) -> None:
        """Over each coarser period, numerator and denominator are the sums of its periods' and the value
        is Σnumerator ÷ Σdenominator — which the fixture must tell from the mean of the periods' values."""
        kpi = catalog[kpi_id]
        if kpi.kind != "ratio":
            pytest.skip(f"{kpi_id} is a {kpi.kind} KPI, not a ratio")
        if any(m.additivity != "additive" for m in kpi.measures.values()):
            pytest.skip(f"{kpi_id}: a part is a distinct count or a snapshot, which does not add up over periods")
        coarse = self.coarser_grain or COARSER.get(self.grain)
        if coarse is None or GRAINS.index(coarse) <= GRAINS.index(self.grain):
            pytest.skip(f"no grain coarser than {self.grain!r} is made of whole {self.grain}s: set coarser_grain")
        want = self.periods(kpi_id)
        start, end = truncate(min(want), coarse), shift(truncate(max(want), coarse), coarse, 1)
        fine = engine_rows(duckdb_engine, kpi, self.grain, start, end)
        told_apart = False
        for period, num, den, value in engine_rows(duckdb_engine, kpi, coarse, start, end):
            parts = [r for r in fine if truncate(r[0], coarse) == period]
            sum_num, sum_den = sum(r[1] for r in parts), sum(r[2] for r in parts)
            assert _close(num, sum_num, self.tolerance) and _close(den, sum_den, self.tolerance), (
                f"{kpi_id} {period}: parts ({num}, {den}) are not the sums of its {self.grain}s' ({sum_num}, {sum_den})"
            )
            assert _close(value, sum_num / sum_den if sum_den else None, self.tolerance), f"{kpi_id} {period}"
            values = [r[3] for r in parts if r[3] is not None]
            told_apart |= bool(values) and not _close(sum(values) / len(values), value, 1e-6)
        assert told_apart, (
            f"{kpi_id}: the fixture cannot tell Σnumerator ÷ Σdenominator from the mean of the {self.grain}s' "
            f"values: give two {self.grain}s of one {coarse} different denominators"
        )

    def test_a_snapshot_over_a_coarser_period_is_its_latest_period(
        self, catalog: Mapping[str, KPI], duckdb_engine: Any
    ) -> None:
        """Each snapshot KPI under test (every measure ``over_time`` ``last``, or every one ``first``) over a
        coarser period is its last (first) period's value with data — never their sum or mean, which the
        fixture must tell apart from it. For per-entity snapshots (``entity``) give every entity of a coarser
        period a row in its last (first) period with data, so that this holds. (One test for all of them, not
        one per KPI: most KPIs are not snapshots, and a skip per KPI would only be noise.)"""
        coarse = self.coarser_grain or COARSER.get(self.grain)
        for kpi in self.kpis_under_test(self.registry()):
            sides = {m.over_time for m in kpi.measures.values()}
            if kpi.kind not in ("simple", "ratio") or len(sides) != 1 or sides & {"sum", "average"}:
                continue
            assert coarse is not None and GRAINS.index(coarse) > GRAINS.index(self.grain), (
                f"{kpi.id}: no grain coarser than {self.grain!r} is made of whole {self.grain}s: set coarser_grain"
            )
            self._assert_latest_over(catalog[kpi.id], coarse, "last" if sides == {"last"} else "first", duckdb_engine)

    def _assert_latest_over(self, kpi: KPI, coarse: Grain, side: str, engine: Any) -> None:
        want = self.periods(kpi.id)
        start, end = truncate(min(want), coarse), shift(truncate(max(want), coarse), coarse, 1)
        fine = engine_rows(engine, kpi, self.grain, start, end)
        told_apart = False
        for period, num, den, value in engine_rows(engine, kpi, coarse, start, end):
            parts = [r for r in fine if truncate(r[0], coarse) == period and r[3] is not None]
            if not parts:
                assert value is None, f"{kpi.id} {period}: {value} from periods without a value"
                continue
            edge = parts[-1] if side == "last" else parts[0]
            parts_agree = _close(num, edge[1], self.tolerance) and _close(den, edge[2], self.tolerance)
            assert _close(value, edge[3], self.tolerance) and parts_agree, (
                f"{kpi.id} {period}: ({num}, {den}, {value}) is not its {side} {self.grain}'s {edge[1:]} ({edge[0]})"
            )
            values = [r[3] for r in parts]
            told_apart |= len(values) > 1 and not any(
                _close(value, v, 1e-6) for v in (sum(values), sum(values) / len(values))
            )
        assert told_apart, (
            f"{kpi.id}: the fixture cannot tell the {side} {self.grain}'s snapshot from the sum or the mean of "
            f"the {self.grain}s' values: give a {coarse} two {self.grain}s with different values"
        )


def engine_rows(engine: Any, kpi: KPI, grain: Grain, start: dt.date, end: dt.date) -> list[tuple[Any, ...]]:
    """``(period, numerator, denominator, value)`` of ``kpi`` per ``grain`` period, nulls of parts as 0."""
    table = engine.series(kpi, grain=grain, start=start, end=end).table
    return [
        (r["period"], _float(r["numerator"]) or 0.0, _float(r["denominator"]) or 0.0, _float(r["value"]))
        for r in table.to_pylist()
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _close(got: Any, want: Any, rel: float) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return bool(float(got) == pytest.approx(float(want), rel=rel, abs=1e-12))


def _drop_schema(server: str, schema: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(server.split("?", 1)[0]) as con, con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.commit()


class _KPIList:
    """A plugin registering KPI objects a conformance class names directly."""

    def __init__(self, kpis: Sequence[KPI]) -> None:
        self._kpis = list(kpis)

    @hookimpl
    def kpihub_register_kpis(self, register: Any) -> None:
        """Register the KPIs."""
        for kpi in self._kpis:
            register(kpi)
