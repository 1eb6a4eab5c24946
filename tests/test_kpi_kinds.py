"""Derived, cumulative, conversion, cohort, snapshot and stock KPIs, and the catalogue built on them.

Every expected number is calculated by hand in the comments from the rows below
(UTC; a date without a time is noon).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot

from kpihub.destinations.duckdb import fetch_arrow
from kpihub.errors import KPIError
from kpihub.kpis.compiler import DIALECTS, cohort_sql, compile_kpi
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.spec import KPI, Input, Measure
from kpihub.plugins import Registry
from tests.kpi_data import day, load, money, ts

JAN, FEB, MAR, APR = (dt.date(2024, m, 1) for m in (1, 2, 3, 4))
CATALOG = dict(Registry(load_entrypoints=False).kpis)

ORDERS = [
    # id, kind, at, customer, net
    ("o0", "charge", "2023-01-15", "cus_a", 100),
    ("ch1", "charge", "2024-01-10", "cus_a", 100),
    ("ch2", "charge", "2024-01-20", "cus_b", 300),
    ("ch3", "charge", "2024-01-25", "cus_d", 50),
    ("re1", "refund", "2024-02-02", None, -50),
    ("ch4", "charge", "2024-02-14", "cus_a", 200),
    ("ch5", "charge", "2024-02-20", "cus_d", 60),
    ("ch6", "charge", "2024-03-03", "cus_c", 80),
]
COSTS = [("2024-01-01", "marketing", 200), ("2024-01-01", "advertising", 100), ("2024-01-01", "salaries", 300)]
COSTS += [("2024-02-01", "sales", 70)]
CONTACTS = [
    # id, lead, customer
    ("k1", "2024-01-05", "2024-01-20"),  # converts after 15 days
    ("k2", "2024-01-10", "2024-05-01"),  # after 112 days: outside a 90-day window
    ("k3", "2024-02-01", None),
    ("k4", "2023-12-20", "2024-01-30"),
]
SUBSCRIPTIONS = [
    # id, started, ended
    ("s1", "2023-11-01", "2024-01-15"),
    ("s2", "2023-12-01", None),
    ("s3", "2024-01-10", "2024-02-20"),
    ("s4", "2023-06-01", "2023-12-31"),  # ended before January: not active at its start
    ("s5", "2024-02-05", None),
]
TICKETS = [
    # id, created, first response, resolved, agent replies, reopens
    ("t1", "2024-01-02T09:00", "2024-01-02T11:00", "2024-01-03", 1, 0),  # 2 h, resolved on first contact
    ("t2", "2024-01-05T08:00", "2024-01-05T14:00", "2024-01-10", 3, 0),  # 6 h, three replies
    ("t3", "2024-01-20T10:00", None, None, 0, 0),  # unanswered
    ("t4", "2024-01-25T10:00", "2024-01-25T11:00", "2024-02-01", 1, 1),  # 1 h, reopened
]
SOCIAL = [
    # date, platform, account, impressions, engagements, followers
    ("2024-01-01", "facebook", "p1", 1000, 50, 500),
    ("2024-01-31", "facebook", "p1", 3000, 70, 520),
    ("2024-01-31", "instagram", "p2", 1000, 80, 300),
    ("2024-02-10", "facebook", "p1", 0, 0, 530),
    ("2024-02-05", "linkedin", "p3", 0, 0, 100),  # its last row in February is not the month's last day
    ("2024-02-20", "linkedin", "p3", 10, 1, None),  # LinkedIn has not counted its followers yet: unknown, not 0
]
PAGES = [("2024-01-03", "/", 100, 150_000.0), ("2024-01-04", "/pricing", 300, 750_000.0)]


@pytest.fixture(scope="module")
def engine() -> KPIEngine:
    con = duckdb.connect()
    load(
        con,
        "orders",
        [
            {
                "order_id": o,
                "kind": k,
                "ordered_at": ts(at),
                "status": "succeeded",
                "customer_id": cus,
                "gross_amount": money(max(net, 0)),
                "refunded_amount": money(max(-net, 0)),
                "net_amount": money(net),
                "currency": "EUR",
            }
            for o, k, at, cus, net in ORDERS
        ],
    )
    load(
        con,
        "costs",
        [{"period_start": day(d), "category": c, "amount": money(a), "currency": "EUR"} for d, c, a in COSTS],
    )
    load(
        con,
        "crm_contacts",
        [{"contact_id": c, "became_lead_at": ts(lead), "became_customer_at": ts(cus)} for c, lead, cus in CONTACTS],
    )
    load(
        con,
        "subscriptions",
        [{"subscription_id": s, "started_at": ts(a), "ended_at": ts(b)} for s, a, b in SUBSCRIPTIONS],
    )
    load(
        con,
        "support_tickets",
        [
            {
                "ticket_id": t,
                "created_at": ts(c),
                "first_response_at": ts(f),
                "resolved_at": ts(r),
                "agent_replies": n,
                "reopens": o,
            }
            for t, c, f, r, n, o in TICKETS
        ],
    )
    load(
        con,
        "social_daily",
        [
            {"date": day(d), "platform": p, "account_id": a, "impressions": i, "engagements": e, "followers": f}
            for d, p, a, i, e, f in SOCIAL
        ],
    )
    load(
        con,
        "page_performance_daily",
        [{"date": day(d), "page": p, "page_loads": n, "load_time_ms_total": t} for d, p, n, t in PAGES],
    )
    return KPIEngine(con, catalog=CATALOG)


def q1(engine: KPIEngine, kpi: KPI | str) -> list[float | None]:
    k = CATALOG[kpi] if isinstance(kpi, str) else kpi
    s = engine.series(k, grain="month", start=JAN, end=APR)
    assert s.table["period"].to_pylist() == [JAN, FEB, MAR]
    return [None if v is None else round(v, 4) for v in s.table["value"].to_pylist()]


def test_sales_and_costs_the_derived_kpis_start_from(engine):
    assert q1(engine, "sales") == [450, 210, 80]  # 100 + 300 + 50; −50 + 200 + 60; 80
    assert q1(engine, "total_costs") == [600, 70, 0]
    assert q1(engine, "marketing_costs") == [300, 0, 0]  # marketing 200 + advertising 100


def test_derived_kpis_with_zero_denominators(engine):
    assert q1(engine, "profit_margin") == [-0.3333, 0.6667, 1.0]  # (450 − 600)/450; (210 − 70)/210; 80/80
    assert q1(engine, "roi") == [0.5, None, None]  # (450 − 300)/300; no marketing spent: null, not ∞
    assert engine.series(CATALOG["roi"], grain="month", start=JAN, end=FEB).currency is None  # a ratio of money


def test_offset_input_compares_with_the_same_period_last_year(engine):
    # January 2024: (450 − 100) / 100; February and March 2023 had no sales: null.
    assert q1(engine, "sales_growth_yoy") == [3.5, None, None]
    quarterly = engine.series(CATALOG["sales_growth_yoy"], grain="quarter", start=JAN, end=APR)
    assert quarterly.values() == {JAN: pytest.approx((740 - 100) / 100)}
    prev = KPI(
        id="sales_change",
        title="",
        description="",
        unit="percent",
        direction="higher",
        kind="derived",
        expr="sales - previous",
        inputs={"previous": Input("sales", offset=-1)},
    )
    assert q1(engine, prev) == [450, -240, -130]  # 450 − 0 (December: no sales); 210 − 450; 80 − 210


def test_cumulative_to_date_and_trailing_windows(engine):
    assert q1(engine, "sales_ytd") == [450, 660, 740]
    orders = Measure("orders", "count", "ordered_at", filter="kind = 'charge'")
    trailing = KPI("o2m", "", "", "count", "higher", "cumulative", measure=orders, window="2 months")
    assert q1(engine, trailing) == [3, 5, 3]  # Dec+Jan 0 + 3; Jan+Feb 3 + 2; Feb+Mar 2 + 1
    qtd = KPI("oqtd", "", "", "count", "higher", "cumulative", measure=orders, to_date="quarter")
    assert q1(engine, qtd) == [3, 5, 6]
    ever = KPI("oall", "", "", "count", "higher", "cumulative", measure=orders)
    assert q1(engine, ever) == [4, 6, 7]  # the 2023 order counts from the beginning
    with pytest.raises(KPIError, match="KPI 'oqtd': quarter-to-date needs grain quarter or finer, not year"):
        engine.series(qtd, grain="year", start=JAN, end=APR)


def test_conversion_within_a_window(engine):
    # January leads k1 (customer after 15 days) and k2 (after 112): 1 / 2. February: k3 never. March: no leads.
    assert q1(engine, "lead_conversion_90d") == [0.5, 0.0, None]
    s = engine.series(CATALOG["lead_conversion_90d"], grain="month", start=JAN, end=FEB)
    assert s.table["numerator"].to_pylist() == [1] and s.table["denominator"].to_pylist() == [2]


def test_cohort_retention_matrix_leaves_unobserved_cells_null(engine):
    sql = cohort_sql(CATALOG["customer_retention_m1"], grain="month", start=JAN, end=APR, ages=range(3))
    cells = {(r["cohort"], r["age"]): r for r in fetch_arrow(engine.con, sql).to_pylist()}
    # First paid orders: cus_a 2023 (no 2024 cohort), cus_b and cus_d January, cus_c March.
    jan = [cells[(JAN, a)]["retention"] for a in range(3)]
    assert jan == [1.0, 0.5, 0.0]  # both; cus_d again in February; neither in March (observed: 0, not null)
    assert cells[(FEB, 0)]["customers"] == 0 and cells[(FEB, 0)]["retention"] is None  # empty cohort
    mar = [cells[(MAR, a)]["retention"] for a in range(3)]
    assert mar == [1.0, None, None]  # April and May are not observed yet: null, not 0
    assert cells[(MAR, 1)]["active"] is None
    assert q1(engine, "customer_retention_m1") == [0.5, None, None]


def test_stock_churn_and_retention(engine):
    # Active at the start: Jan s1 s2 (s4 ended 31 Dec); Feb s2 s3; Mar s2 s5. Ended: Jan s1, Feb s3.
    assert q1(engine, "active_subscriptions") == [2, 2, 2]
    assert q1(engine, "new_subscriptions") == [1, 1, 0]  # s3; s5
    assert q1(engine, "churned_subscriptions") == [1, 1, 0]  # s1; s3
    assert q1(engine, "churn_rate") == [0.5, 0.5, 0.0]
    assert q1(engine, "retention_rate") == [0.5, 0.5, 1.0]
    assert q1(engine, "annual_churn_rate") == [round(1 - 0.5**12, 4), round(1 - 0.5**12, 4), 0.0]
    quarterly = engine.series(CATALOG["annual_churn_rate"], grain="quarter", start=JAN, end=APR)
    # Q1: 2 ended (s1, s3) of 2 active on 1 Jan → churn 1.0 → annualized 1 − 0⁴ = 1.
    assert quarterly.values() == {JAN: 1.0}


def test_clv_simple_and_cac_payback(engine):
    assert q1(engine, "arpu") == [150.0, 105.0, 80.0]  # 450/3 (a, b, d); 210/2 (a, d); 80/1
    assert q1(engine, "clv_simple") == [300.0, 210.0, None]  # ARPU ÷ churn 0.5, 0.5, 0 (→ null)
    # CAC: January acquisition costs 300 ÷ new CRM customers k1, k4 = 150; February 70 ÷ 0: null.
    assert q1(engine, "cac") == [150.0, None, None]
    assert q1(engine, "cac_payback_months") == [1.0, None, None]  # 150 ÷ (150 per month)
    quarterly = engine.series(CATALOG["cac_payback_months"], grain="quarter", start=JAN, end=APR)
    # Q1: CAC 370 / 2 = 185; revenue 740 per customer-month (3 + 2 + 1 payers) = 123.33 → 1.5 months.
    assert quarterly.values() == {JAN: pytest.approx((370 / 2) / (740 / 6))}


def test_service_kpis(engine):
    assert q1(engine, "tickets") == [4, 0, 0]
    assert q1(engine, "first_contact_resolution") == [0.5, 0.0, None]  # Jan t1 of t1 t2; Feb t4 was reopened
    assert q1(engine, "first_response_hours") == [3.0, None, None]  # (2 + 6 + 1) / 3 answered


def test_social_and_page_performance(engine):
    assert q1(engine, "social_engagement_rate") == [0.04, 0.1, None]  # 200 / 5000; Feb 1 / 10
    # Each account's last row with a follower count in the period, summed: Jan 520 + 300; Feb 530 +
    # LinkedIn's 100 of Feb 5 (the month's last row is Feb 10, but an account with no row that day still
    # has followers; and its Feb 20 row has no count yet).
    assert q1(engine, "social_followers") == [820, 630, None]  # no data in March: unknown
    first = Measure("social_daily", "sum", "date", expr="followers", over_time="first")
    average = Measure("social_daily", "sum", "date", expr="followers", over_time="average")
    assert q1(engine, KPI("f1", "", "", "count", "higher", "simple", measure=first))[0] == 500
    assert q1(engine, KPI("fa", "", "", "count", "higher", "simple", measure=average))[0] == 660  # (500 + 820)/2
    assert q1(engine, "avg_page_load_seconds") == [2.25, None, None]  # 900 s / 400 loads


def test_derived_reference_errors():
    def derived(kpi_id: str, expr: str, **kw) -> KPI:
        return KPI(kpi_id, "", "", "ratio", "higher", "derived", expr=expr, **kw)

    args = {"grain": "month", "start": JAN, "end": FEB}
    hint = r"\(a number\? declare it: parameters = \{ nope = \.\.\. \}\)"
    with pytest.raises(KPIError, match=rf"^KPI 'x': expression uses unknown KPI 'nope' {hint}$"):
        compile_kpi(derived("x", "sales / nope"), catalog=CATALOG, **args)
    with pytest.raises(KPIError, match="^KPI 'x': input 'ly' refers to unknown KPI 'salez'$"):
        compile_kpi(derived("x", "sales / ly", inputs={"ly": Input("salez", -1)}), catalog=CATALOG, **args)
    cycle = {"a": derived("a", "b + 1"), "b": derived("b", "c * 2"), "c": derived("c", "a")} | CATALOG
    with pytest.raises(KPIError, match=r"cycle \(a -> b -> c -> a\)"):
        compile_kpi(cycle["a"], catalog=cycle, **args)
    with pytest.raises(KPIError, match="refer to KPIs by id only"):
        compile_kpi(derived("x", "orders.net_amount"), catalog=CATALOG, **args)


def test_snapshot_and_cumulative_misuse_is_refused(engine):
    snap = Measure("social_daily", "sum", "date", expr="followers", over_time="last")
    with pytest.raises(KPIError, match="KPI 'cs': a cumulative KPI adds up flows; its value is a snapshot"):
        compile_kpi(KPI("cs", "", "", "count", "higher", "cumulative", measure=snap), grain="month", start=JAN, end=FEB)
    with pytest.raises(ValueError, match="give a cumulative KPI a window or to_date, not both"):
        KPI("w", "", "", "count", "higher", "cumulative", measure=snap, window="1 month", to_date="year")
    with pytest.raises(ValueError, match="'3 fortnights' is not a window"):
        KPI("w", "", "", "count", "higher", "cumulative", measure=snap, window="3 fortnights")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_cohort_matrix_sql_parses_in_each_dialect(dialect):
    sql = cohort_sql(
        CATALOG["customer_retention_m1"], grain="month", start=JAN, end=APR, ages=range(4), dialect=dialect
    )
    sqlglot.parse_one(sql, read=dialect)


def test_scorecard_trend_vs_previous_period_and_same_period_last_year(engine):
    from kpihub.kpis.periods import Period
    from kpihub.kpis.scorecard import build_scorecard, scorecard_table

    rows = build_scorecard(
        engine, CATALOG, period=Period.parse("2024-02"), only=["sales", "churn_rate"], today=dt.date(2024, 6, 1)
    )
    by = {r.kpi: r for r in rows}
    assert (by["sales"].actual, by["sales"].previous, by["sales"].last_year) == (210, 450, 0)
    assert by["sales"].change == pytest.approx((210 - 450) / 450)
    assert by["sales"].change_yoy is None  # February 2023 sold nothing: no relative change from 0
    jan = build_scorecard(engine, CATALOG, period=Period.parse("2024-01"), only=["sales"], today=dt.date(2024, 6, 1))
    assert jan[0].last_year == 100 and jan[0].change_yoy == pytest.approx(3.5)  # (450 − 100) / 100
    assert scorecard_table(jan).column("change_yoy").to_pylist() == [pytest.approx(3.5)]
    assert by["churn_rate"].last_year is None  # no subscriptions were active in February 2023


def test_derived_money_in_two_currencies_is_refused(engine):
    from kpihub.errors import MixedCurrencyError

    engine.con.execute(
        "INSERT INTO costs SELECT * REPLACE (DATE '2024-02-01' AS period_start, 'tools' AS category, "
        "'USD' AS currency) FROM costs LIMIT 1"
    )
    try:
        # profit_margin reads sales (EUR) and total_costs, now partly USD, in February.
        with pytest.raises(
            MixedCurrencyError, match=r"KPI 'profit_margin' would add amounts in 2 currencies \(EUR, USD\)"
        ):
            engine.series(CATALOG["profit_margin"], grain="month", start=FEB, end=MAR)
        assert engine.series(CATALOG["profit_margin"], grain="month", start=JAN, end=FEB).values()[JAN] is not None
    finally:
        engine.con.execute("DELETE FROM costs WHERE category = 'tools'")
