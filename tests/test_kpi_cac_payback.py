"""CAC payback with a gross margin, from revenue per customer-month (issue 16, item 6).

CAC payback = CAC ÷ (monthly ARPU × gross margin). Monthly ARPU is Σ net revenue ÷ Σ over the
months of the customers who paid in that month (customer-months), so a quarter's value is what its
months imply. Every number below is worked out by hand from the fixture (UTC):

month | acquisition costs | new CRM customers | CAC | paying customers (net)         | monthly ARPU | payback
Jan   | 200               | k1                | 200 | A 50                           | 50 / 1 = 50  | 4
Feb   | 200               | k2                | 200 | A 50, B 50 (E's charge failed) | 100 / 2 = 50 | 4
Mar   | 200               | k3                | 200 | A 25 + 25, B 50, C 50          | 150 / 3 = 50 | 4
Apr   | 450               | k4                | 450 | A, B, C 50 each, D 150         | 300 / 4 = 75 | 6
May   | 100               | none              | —   | A 60                           | 60 / 1 = 60  | — (no CAC)
Jun   | —                 | none              | —   | none                           | —            | —

Q1: CAC 600 / 3 = 200; revenue 300 over 1 + 2 + 3 = 6 customer-months = 50; payback 4 — not the 6.0
of quarter revenue ÷ distinct quarter customers (300 / 3 = 100 a quarter = 33.3 a month).
Q2: CAC 550 / 1 = 550; revenue 360 over 4 + 1 = 5 customer-months = 72; payback 550 / 72.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import duckdb
import pytest

from kpihub.config import load_project
from kpihub.default_plugins import revenue_kpis
from kpihub.errors import ConfigError
from kpihub.kpis.batch import batchable
from kpihub.kpis.compiler import GrainError, compile_kpi
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.periods import Period
from kpihub.kpis.project import apply_parameters, project_kpis, register_project_kpis
from kpihub.kpis.scorecard import build_scorecard
from kpihub.kpis.spec import KPI, Measure, Parameter
from kpihub.plugins import Registry
from kpihub.testing.kpi_conformance import KPIConformance, canonical_rows

JAN, APR, JUL = dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)


def _charge(order_id: str, at: str, customer: str, net: int, status: str = "succeeded") -> dict:
    return {
        "order_id": order_id,
        "kind": "charge",
        "status": status,
        "ordered_at": f"{at}T10:00:00Z",
        "customer_id": customer,
        "gross_amount": net,
        "net_amount": net if status == "succeeded" else 0,
        "currency": "EUR",
    }


def _cost(month: str, amount: int, category: str = "marketing") -> dict:
    return {"period_start": f"{month}-01", "category": category, "amount": amount, "currency": "EUR"}


TABLES: dict[str, list[dict]] = {
    "orders": [
        _charge("o1", "2024-01-10", "A", 50),
        _charge("o2", "2024-02-10", "A", 50),
        _charge("o3", "2024-02-15", "B", 50),
        _charge("o4", "2024-02-20", "E", 80, status="failed"),
        _charge("o5", "2024-03-05", "A", 25),
        _charge("o6", "2024-03-25", "A", 25),  # A twice in March: one customer-month
        _charge("o7", "2024-03-10", "B", 50),
        _charge("o8", "2024-03-12", "C", 50),
        _charge("o9", "2024-04-10", "A", 50),
        _charge("o10", "2024-04-11", "B", 50),
        _charge("o11", "2024-04-12", "C", 50),
        _charge("o12", "2024-04-13", "D", 150),
        _charge("o13", "2024-05-10", "A", 60),
    ],
    "costs": [
        _cost("2024-01", 200),
        _cost("2024-02", 150),
        _cost("2024-02", 50, "advertising"),
        _cost("2024-03", 200, "sales"),
        _cost("2024-03", 999, "salaries"),  # not an acquisition cost
        _cost("2024-04", 450),
        _cost("2024-05", 100),
    ],
    "crm_contacts": [
        {"contact_id": f"k{n}", "became_customer_at": f"2024-0{n}-0{n + 1}T09:00:00Z"} for n in (1, 2, 3, 4)
    ],
}
PAYBACK = {"2024-01": 4.0, "2024-02": 4.0, "2024-03": 4.0, "2024-04": 6.0, "2024-05": None, "2024-06": None}


class TestCACPayback(KPIConformance):
    """Revenue payback (no gross margin set), monthly ARPU and CAC: values on DuckDB and PostgreSQL,
    every dialect, and Σ÷Σ over quarters for the ratios (monthly ARPU's customer-months add up)."""

    plugin = revenue_kpis
    kpis = ("monthly_arpu", "cac", "cac_payback_months")
    tables = TABLES
    expected = {
        "monthly_arpu": {"2024-01": 50, "2024-02": 50, "2024-03": 50, "2024-04": 75, "2024-05": 60, "2024-06": None},
        "cac": {"2024-01": 200, "2024-02": 200, "2024-03": 200, "2024-04": 450, "2024-05": None, "2024-06": None},
        "cac_payback_months": PAYBACK,
    }


class TestCACPaybackWithMargin(KPIConformance):
    """The same with ``gross_margin = 0.75``: CAC 200 ÷ (ARPU 50 × 0.75) = 5.33 months."""

    plugin = revenue_kpis
    kpis = ("cac_payback_months",)
    tables = TABLES
    expected = {"cac_payback_months": {k: None if v is None else v / 0.75 for k, v in PAYBACK.items()}}

    @pytest.fixture(scope="class")
    @classmethod
    def catalog(cls) -> Mapping[str, KPI]:
        kpis = dict(cls().registry().kpis)
        apply_parameters(kpis, {"gross_margin": 0.75})
        return kpis


def _engine(timezone: str = "UTC", margin: float | None = None, tables: Mapping[str, list] = TABLES) -> KPIEngine:
    con = duckdb.connect()
    for name, rows in tables.items():
        con.register("rows", canonical_rows(name, rows))
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM rows')
        con.unregister("rows")
    catalog = dict(Registry(load_entrypoints=False).kpis)
    if margin is not None:
        apply_parameters(catalog, {"gross_margin": margin})
    return KPIEngine(con, timezone=timezone, catalog=catalog)


def _values(engine: KPIEngine, kpi_id: str, grain: str, start: dt.date, end: dt.date) -> list[float | None]:
    return list(engine.series(engine.catalog[kpi_id], grain=grain, start=start, end=end).values().values())  # type: ignore[arg-type]


def test_a_quarter_is_what_its_months_imply_not_quarter_revenue_over_quarter_customers():
    e = _engine()
    assert _values(e, "cac_payback_months", "month", JAN, APR) == [4.0, 4.0, 4.0]
    assert _values(e, "cac_payback_months", "quarter", JAN, JUL) == [4.0, pytest.approx(550 / 72)]  # not 6.0
    quarter = e.series(e.catalog["monthly_arpu"], grain="quarter", start=JAN, end=JUL).table.to_pylist()
    assert [(r["numerator"], r["denominator"]) for r in quarter] == [(300, 6), (360, 5)]  # customer-months
    assert _values(e, "cac_payback_months", "year", JAN, dt.date(2025, 1, 1)) == [
        pytest.approx((1150 / 4) / (660 / 11))
    ]


def test_cac_200_over_arpu_50_at_a_75_percent_margin_is_5_33_months():
    e = _engine(margin=0.75)
    assert _values(e, "cac_payback_months", "month", JAN, dt.date(2024, 2, 1)) == [pytest.approx(200 / (50 * 0.75))]
    assert round(_values(e, "cac_payback_months", "quarter", JAN, APR)[0], 2) == 5.33  # type: ignore[arg-type]


def test_a_customer_month_is_a_month_of_the_reporting_time_zone():
    # 31 Jan 23:30 UTC is 1 February in Oslo: B's charge and A's are both February there.
    tables = {
        "orders": [
            _charge("o1", "2024-01-10", "A", 40),
            {**_charge("o2", "2024-01-31", "B", 60), "ordered_at": "2024-01-31T23:30:00Z"},
            _charge("o3", "2024-02-10", "A", 40),
        ]
    }
    utc, oslo = _engine(tables=tables), _engine("Europe/Oslo", tables=tables)
    q1 = (JAN, APR)
    assert _values(utc, "monthly_arpu", "month", *q1) == [50.0, 40.0, None]  # Jan A, B; Feb A
    assert _values(oslo, "monthly_arpu", "month", *q1) == [40.0, 50.0, None]  # Jan A; Feb B, A
    for e in (utc, oslo):  # 140 over 3 customer-months either way
        assert _values(e, "monthly_arpu", "quarter", *q1) == [pytest.approx(140 / 3)]


def test_customer_months_are_refused_below_a_month_and_take_the_single_kpi_path():
    kpis = dict(Registry(load_entrypoints=False).kpis)
    arpu = kpis["monthly_arpu"]
    assert not batchable(arpu)  # a scan grouped by the period cannot count (customer, month) pairs
    for grain in ("week", "day"):
        with pytest.raises(GrainError, match="customer_id per month of orders: ask for grain 'month'"):
            compile_kpi(arpu, grain=grain, start=JAN, end=APR)  # type: ignore[arg-type]
        with pytest.raises(GrainError):
            compile_kpi(kpis["cac_payback_months"], grain=grain, start=JAN, end=APR, catalog=kpis)  # type: ignore[arg-type]
    for dialect in ("duckdb", "postgres", "spark", "bigquery", "snowflake"):
        assert compile_kpi(arpu, grain="quarter", start=JAN, end=APR, dialect=dialect)
    e = _engine()
    got = e.series_many([arpu, kpis["arpu"]], grain="quarter", start=JAN, end=APR)
    assert got["monthly_arpu"].values() == {JAN: 50.0}  # type: ignore[union-attr]
    assert got["arpu"].values() == {JAN: 100.0}  # type: ignore[union-attr]  # 300 / 3 distinct: a quarterly ARPU


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"agg": "count", "per": "month"}, "per is for count_distinct measures"),
        ({"agg": "count_distinct", "expr": "customer_id", "per": "fortnight"}, "per 'fortnight' is not a grain"),
        (
            {"agg": "count_distinct", "expr": "customer_id", "per": "month", "max_grain": "day"},
            "per and max_grain",
        ),
    ],
)
def test_a_wrong_per_is_an_error(fields, message):
    with pytest.raises(ValueError, match=message):
        Measure("orders", time="ordered_at", **fields)


def test_weeks_do_not_tile_months():
    m = Measure("orders", "count_distinct", "ordered_at", expr="customer_id", per="week")
    kpi = KPI("weekly_payers", "Weekly payers", "", "count", "higher", "simple", measure=m)
    assert compile_kpi(kpi, grain="week", start=JAN, end=APR)
    with pytest.raises(GrainError, match="weeks do not tile"):
        compile_kpi(kpi, grain="month", start=JAN, end=APR)


# -- the margin setting ---------------------------------------------------------------------------


def _project(tmp_path, text: str):
    (tmp_path / "kpihub.toml").write_text(text)
    return load_project(tmp_path / "kpihub.toml")


@pytest.mark.parametrize("value", ["0", "-0.2", "1.5", "75", '"high"', "true"])
def test_a_margin_that_is_not_a_fraction_is_a_one_line_error_naming_file_and_key(tmp_path, value):
    with pytest.raises(ConfigError) as info:
        _project(tmp_path, f"[project]\ngross_margin = {value}\n")
    message = str(info.value)
    assert "kpihub.toml: [project] 'gross_margin' " in message and "\n" not in message
    assert "Value error" not in message
    assert "0.75 for a 75 % margin" in message or "valid number" in message


def test_a_margin_from_the_environment_is_named_by_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("KPIHUB_GROSS_MARGIN", "80")
    with pytest.raises(ConfigError, match=r"^environment variable KPIHUB_GROSS_MARGIN: .*0\.75 for a 75 % margin"):
        _project(tmp_path, "[project]\n")
    monkeypatch.setenv("KPIHUB_GROSS_MARGIN", "0.8")
    assert _project(tmp_path, "[project]\n").settings.gross_margin == 0.8


def test_the_project_margin_reaches_the_kpi_and_the_unset_default_says_so(tmp_path):
    unset = dict(Registry(load_entrypoints=False).kpis)
    register_project_kpis(unset, _project(tmp_path, "[project]\n"))
    payback = unset["cac_payback_months"]
    assert payback.parameters["gross_margin"] == Parameter(1.0, "gross margin not set: revenue payback")
    assert payback.notes == ("gross margin not set: revenue payback",)

    kpis = dict(Registry(load_entrypoints=False).kpis)
    register_project_kpis(kpis, _project(tmp_path, "[project]\ngross_margin = 0.6\n"))
    assert kpis["cac_payback_months"].parameters["gross_margin"].current == 0.6
    assert kpis["cac_payback_months"].notes == ()
    sql = compile_kpi(kpis["cac_payback_months"], grain="month", start=JAN, end=APR, catalog=kpis)
    assert "0.6" in sql


def test_the_scorecard_notes_a_revenue_payback():
    period = Period(JAN, "month")
    for margin, notes in ((None, ["gross margin not set: revenue payback"]), (0.75, [])):
        e = _engine(margin=margin)
        card = build_scorecard(e, e.catalog, period=period, only=["cac_payback_months"], today=JUL)
        (row,) = card
        assert row.actual == pytest.approx(4.0 if margin is None else 4 / 0.75)
        assert [n for n in row.notes if "margin" in n] == notes


def test_a_project_kpi_can_count_customer_months_and_use_the_margin(tmp_path):
    text = """
[project]
gross_margin = 0.5

[kpis.gross_profit_per_customer_month]
title = "Gross profit per customer-month"
unit = "currency"
direction = "higher"
kind = "derived"
expr = "monthly_arpu * gross_margin"
parameters = { gross_margin = 1.0 }

[kpis.payer_months]
title = "Payer-months"
unit = "count"
direction = "higher"
kind = "simple"
measure = { table = "orders", agg = "count_distinct", time = "ordered_at", expr = "customer_id", per = "month", filter = "status = 'succeeded'" }
"""
    proj = _project(tmp_path, text)
    e = _engine()
    kpis = dict(e.catalog)
    register_project_kpis(kpis, proj)
    e = e.with_catalog(kpis)
    assert _values(e, "payer_months", "quarter", JAN, JUL) == [6.0, 5.0]
    assert _values(e, "gross_profit_per_customer_month", "quarter", JAN, APR) == [25.0]  # 50 × 0.5


def test_a_parameter_needs_a_number_and_a_name_that_is_free(tmp_path):
    base = '[kpis.x]\ntitle = "x"\nunit = "count"\ndirection = "higher"\nkind = "derived"\n'
    with pytest.raises(ConfigError, match=r"\[kpis.x\] 'parameters.m' Input should be a valid number"):
        project_kpis(_project(tmp_path, base + 'expr = "sales * m"\nparameters = { m = "high" }\n'))
    with pytest.raises(ConfigError, match="parameter 'months_in_period' is a variable kpihub sets"):
        project_kpis(_project(tmp_path, base + 'expr = "sales"\nparameters = { months_in_period = 2 }\n'))
    with pytest.raises(ConfigError, match="parameters are for derived KPIs"):
        project_kpis(
            _project(
                tmp_path,
                '[kpis.x]\ntitle = "x"\nunit = "count"\ndirection = "higher"\nkind = "simple"\n'
                'measure = { table = "orders", agg = "count", time = "ordered_at" }\nparameters = { m = 1 }\n',
            )
        )
    kpis = dict(Registry(load_entrypoints=False).kpis)
    with pytest.raises(ConfigError, match=r"unknown KPI 'gross_margin' \(a number\? declare it: parameters"):
        register_project_kpis(kpis, _project(tmp_path, base + 'expr = "sales * gross_margin"\n'))


# -- Spark ------------------------------------------------------------------------------------------


def test_the_same_values_on_spark(tmp_path):
    from kpihub.kpis.spark import java_available

    if not java_available():
        pytest.skip("no Java runtime for Spark")
    pytest.importorskip("pyspark")
    from kpihub.destinations.base import TableWrite

    registry = Registry(load_entrypoints=False)
    uri = f"parquet://{tmp_path}/lake"
    with registry.destination_for(uri).open(uri) as session:
        session.commit([TableWrite(n, canonical_rows(n, rows), "replace") for n, rows in TABLES.items()], {})
    catalog = dict(registry.kpis)
    apply_parameters(catalog, {"gross_margin": 0.75})
    with registry.destination_for(uri).open(uri, read_only=True) as session:
        spark = KPIEngine.for_destination(session, catalog=catalog, engine="spark")
        try:
            got = spark.series(catalog["cac_payback_months"], grain="quarter", start=JAN, end=JUL).values()
            arpu = spark.series(catalog["monthly_arpu"], grain="month", start=JAN, end=JUL).values()
        finally:
            spark.backend.close()  # type: ignore[attr-defined]
    assert got == {JAN: pytest.approx(4 / 0.75), APR: pytest.approx(550 / 72 / 0.75)}
    assert list(arpu.values()) == [50.0, 50.0, 50.0, 75.0, 60.0, None]
