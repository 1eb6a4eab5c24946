"""KPI values on a small hand-built dataset equal numbers calculated by hand (see comments)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from kpihub.default_plugins.crm_kpis import CRM_KPIS
from kpihub.errors import KPIError, MixedCurrencyError
from kpihub.kpis.compiler import DIALECTS, compile_kpi
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.spec import KPI, Measure
from tests.kpi_data import canonical, ts

KPIS = {k.id: k for k in CRM_KPIS}
JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)


CONTACTS = [
    # id, lead, mql, sql, opportunity, customer (already "reached at least" monotone)
    ("c1", "2024-01-05", "2024-01-10", "2024-02-02", "2024-02-20", "2024-03-01"),
    ("c2", "2024-01-20", "2024-02-03", None, None, None),
    ("c3", "2024-02-10", "2024-02-15", "2024-02-20", "2024-02-25", None),
    ("c4", "2024-02-28", None, None, None, None),
    ("c5", "2024-01-31T23:30", None, None, None, "2024-02-10"),  # Feb 1 00:30 in Oslo
]
DEALS = [
    # id, created, closed, won, amount, currency
    ("d1", "2024-01-01", "2024-01-31", True, "1000", "EUR"),
    ("d2", "2024-01-10", "2024-02-05", False, "500", "EUR"),
    ("d3", "2024-02-01", "2024-02-11", True, "3000", "EUR"),
    ("d4", "2024-02-01", None, False, "700", "EUR"),
    ("d5", "2024-01-15", "2024-02-20", True, None, "EUR"),
]


def crm_tables(deals=DEALS) -> tuple[pa.Table, pa.Table]:
    """``CONTACTS`` and ``deals`` as the canonical crm_contacts and crm_deals tables."""
    contacts = canonical(
        "crm_contacts",
        [
            {
                "contact_id": c,
                "became_lead_at": ts(lead),
                "became_mql_at": ts(mql),
                "became_sql_at": ts(sql),
                "became_opportunity_at": ts(opp),
                "became_customer_at": ts(cust),
            }
            for c, lead, mql, sql, opp, cust in CONTACTS
        ],
    )
    deal_rows = canonical(
        "crm_deals",
        [
            {
                "deal_id": d,
                "created_at": ts(c),
                "closed_at": ts(cl),
                "is_closed": cl is not None,
                "is_won": won,
                "amount": Decimal(a) if a else None,
                "currency": cur,
            }
            for d, c, cl, won, a, cur in deals
        ],
    )
    return contacts, deal_rows


def engine(deals=DEALS, tz: str = "UTC") -> KPIEngine:
    con = duckdb.connect()
    contacts, deal_rows = crm_tables(deals)
    con.register("_c", contacts)
    con.register("_d", deal_rows)
    con.execute("CREATE TABLE crm_contacts AS SELECT * FROM _c")
    con.execute("CREATE TABLE crm_deals AS SELECT * FROM _d")
    return KPIEngine(con, timezone=tz)


def monthly(kpi_id: str, e: KPIEngine | None = None) -> list[float | None]:
    s = (e or engine()).series(KPIS[kpi_id], grain="month", start=JAN, end=dt.date(2024, 4, 1))
    assert s.table["period"].to_pylist() == [JAN, FEB, MAR]
    return [None if v is None else round(v, 4) for v in s.table["value"].to_pylist()]


def test_counts_fill_empty_periods_with_zero():
    assert monthly("leads") == [3, 2, 0]  # Jan c1 c2 c5; Feb c3 c4
    assert monthly("mqls") == [1, 2, 0]  # Jan c1; Feb c2 c3
    assert monthly("sqls") == [0, 2, 0]  # Feb c1 c3
    assert monthly("new_customers") == [0, 1, 1]  # Feb c5; Mar c1


def test_cohort_rates_and_zero_denominator_is_null():
    # MQL cohort Jan {c1}: c1 reached SQL -> 1/1; Feb {c2, c3}: c3 -> 1/2; Mar: no MQLs -> null.
    assert monthly("mql_to_sql_rate") == [1.0, 0.5, None]
    # Lead cohort Jan {c1, c2, c5}: c1, c5 customers -> 2/3; Feb {c3, c4}: none -> 0; Mar: null.
    assert monthly("lead_to_customer_rate") == [0.6667, 0.0, None]


def test_deal_kpis():
    # Closed Jan: d1 won. Closed Feb: d2 lost, d3 won, d5 won.
    assert monthly("win_rate") == [1.0, 0.6667, None]
    # Won with amount: Jan d1 1000; Feb d3 3000 (d5 has no amount, so it is not in the average).
    assert monthly("avg_deal_size") == [1000.0, 3000.0, None]
    assert monthly("won_revenue") == [1000.0, 3000.0, 0.0]
    # Days created -> closed of won deals: Jan d1 30; Feb d3 10, d5 36 -> 46 / 2.
    assert monthly("sales_cycle_days") == [30.0, 23.0, None]


def test_a_rate_over_a_quarter_is_sum_over_sum_not_an_average_of_months():
    s = engine().series(KPIS["win_rate"], grain="quarter", start=JAN, end=dt.date(2024, 4, 1))
    row = s.table.to_pylist()[0]
    # 3 won of 4 closed = 0.75, not mean(1.0, 0.667) = 0.83.
    assert (row["numerator"], row["denominator"], row["value"]) == (3, 4, 0.75)


def test_reporting_time_zone_moves_boundary_rows():
    e = engine(tz="Europe/Oslo")
    assert monthly("leads", e) == [2, 3, 0]  # c5 became a lead on 1 Feb 00:30 Oslo time


def test_an_amount_without_a_currency_beside_others_is_refused():
    # A deal's amount with no currency would be added to the euros silently.
    deals = DEALS + [("d6", "2024-02-01", "2024-02-12", True, "99", None)]
    with pytest.raises(MixedCurrencyError, match=r"KPI 'won_revenue' would add 1 amount\(s\) without a currency"):
        engine(deals).series(KPIS["won_revenue"], grain="month", start=FEB, end=MAR)
    # A deal with neither amount nor currency adds nothing: fine.
    deals = DEALS + [("d7", "2024-02-01", "2024-02-12", True, None, None)]
    assert engine(deals).series(KPIS["won_revenue"], grain="month", start=FEB, end=MAR).values()[FEB] == 3000


def test_week_grain_has_a_monday_spine():
    s = engine().series(KPIS["leads"], grain="week", start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 22))
    assert s.table["period"].to_pylist() == [dt.date(2024, 1, 1), dt.date(2024, 1, 8), dt.date(2024, 1, 15)]
    assert s.table["value"].to_pylist() == [1.0, 0.0, 1.0]  # c1 on Jan 5, c2 on Jan 20


def test_money_in_two_currencies_is_refused():
    deals = DEALS + [("d6", "2024-02-01", "2024-02-12", True, "99", "USD")]
    with pytest.raises(MixedCurrencyError, match=r"KPI 'won_revenue' would add amounts in 2 currencies \(EUR, USD\)"):
        engine(deals).series(KPIS["won_revenue"], grain="month", start=FEB, end=MAR)
    # Counting deals is not money: still fine.
    assert engine(deals).series(KPIS["win_rate"], grain="month", start=FEB, end=MAR).values()[FEB] == 0.75
    # The single currency is reported with the value.
    assert engine().series(KPIS["won_revenue"], grain="month", start=FEB, end=MAR).currency == "EUR"


def test_unknown_column_and_missing_table_are_named():
    bad = KPI(
        id="bad",
        title="Bad",
        description="",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure("crm_deals", "sum", "closed_at", expr="amout"),
    )
    with pytest.raises(KPIError, match="KPI 'bad': value expression uses unknown column 'amout' of table 'crm_deals'"):
        compile_kpi(bad, grain="month", start=JAN, end=MAR)
    con = duckdb.connect()
    with pytest.raises(KPIError, match="needs table 'crm_deals', which no sync has written yet"):
        KPIEngine(con).series(KPIS["win_rate"], grain="month", start=JAN, end=MAR)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_kpi_compiles_to_sql_that_parses_in_each_dialect(dialect):
    from kpihub.kpis.compiler import rfm_sql, transpile
    from kpihub.plugins import Registry

    catalog = Registry(load_entrypoints=False).kpis
    kinds = set()
    for kpi in catalog.values():
        kinds.add(kpi.kind)
        if kpi.kind == "model":  # fitted in Python on the per-customer summary this SQL computes
            sql = transpile(rfm_sql(kpi, as_of=MAR), dialect)
        else:
            daily = any(m.max_grain == "day" for m in kpi.measures.values())
            sql = compile_kpi(
                kpi,
                grain="day" if daily else "month",
                start=JAN,
                end=dt.date(2024, 4, 1),
                timezone="Europe/Oslo",
                dialect=dialect,
                catalog=catalog,
            )
        sqlglot.parse_one(sql, read=dialect)
    assert kinds == {"simple", "ratio", "derived", "cumulative", "conversion", "cohort", "model"}


ORDERS = [
    # id, kind, at, status, gross, refunded, net, currency, customer
    ("ch1", "charge", "2024-01-10", "succeeded", "100", "0", "100", "EUR", "cus_a"),
    ("ch2", "charge", "2024-01-20", "succeeded", "300", "0", "300", "EUR", "cus_a"),
    ("ch3", "charge", "2024-01-25", "failed", "0", "0", "0", "EUR", "cus_b"),
    ("re1", "refund", "2024-02-02", "succeeded", "0", "50", "-50", "EUR", None),  # refunds ch2 in February
    ("ch4", "charge", "2024-02-14", "succeeded", "200", "0", "200", "EUR", "cus_b"),
]


def orders_engine(rows=ORDERS) -> KPIEngine:
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS

    KPIS.update({k.id: k for k in REVENUE_KPIS})
    con = duckdb.connect()
    table = canonical(
        "orders",
        [
            {
                "order_id": o,
                "kind": k,
                "ordered_at": ts(at),
                "status": st,
                "gross_amount": Decimal(g),
                "refunded_amount": Decimal(r),
                "net_amount": Decimal(n),
                "currency": cur,
                "customer_id": cus,
            }
            for o, k, at, st, g, r, n, cur, cus in rows
        ],
    )
    con.register("_o", table)
    con.execute("CREATE TABLE orders AS SELECT * FROM _o")
    return KPIEngine(con)


def test_revenue_kpis_net_refunds_in_their_own_month():
    e = orders_engine()
    assert monthly("sales", e) == [400.0, 150.0, 0.0]  # Jan 100 + 300; Feb 200 − 50
    assert monthly("orders", e) == [2.0, 1.0, 0.0]  # the failed charge is not an order
    assert monthly("aov", e) == [200.0, 200.0, None]  # (100 + 300) / 2; 200 / 1; none in March
    assert monthly("refund_rate", e) == [0.0, 0.25, None]  # Feb: 50 refunded of 200 charged
    assert monthly("paying_customers", e) == [1.0, 1.0, 0.0]  # Jan: cus_a (twice); cus_b's charge failed
    assert monthly("arpu", e) == [400.0, 150.0, None]  # Jan 400 / 1; Feb (200 − 50) / 1


def test_sales_in_two_currencies_is_refused():
    rows = ORDERS + [("ch9", "charge", "2024-02-15", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    with pytest.raises(MixedCurrencyError, match=r"\(EUR, JPY\)"):
        orders_engine(rows).series(KPIS["sales"], grain="month", start=FEB, end=MAR)


ADS = [
    # date, platform, account, campaign, impressions, clicks, spend, conversions, value
    ("2024-01-05", "google_ads", "a1", "c1", 1000, 50, "100.00", 5.0, "500"),
    ("2024-01-06", "meta_ads", "m1", "c2", 3000, 30, "60.00", 1.0, "90"),
    ("2024-02-01", "google_ads", "a1", "c1", 0, 0, "0", 0.0, "0"),
]


def ads_engine(rows=ADS, currency: str = "EUR") -> KPIEngine:
    from kpihub.default_plugins.ads_kpis import ADS_KPIS

    KPIS.update({k.id: k for k in ADS_KPIS})
    con = duckdb.connect()
    table = canonical(
        "ad_performance_daily",
        [
            {
                "date": dt.date.fromisoformat(d),
                "platform": p,
                "account_id": a,
                "campaign_id": c,
                "ad_group_id": "",
                "ad_id": "",
                "impressions": i,
                "clicks": k,
                "spend": Decimal(s),
                "conversions": v,
                "conversion_value": Decimal(val),
                "currency": currency,
            }
            for d, p, a, c, i, k, s, v, val in rows
        ],
    )
    con.register("_a", table)
    con.execute("CREATE TABLE ad_performance_daily AS SELECT * FROM _a")
    return KPIEngine(con)


def test_ad_kpis_by_hand():
    e = ads_engine()
    # January: 4,000 impressions, 80 clicks, 160 spent, 6 conversions worth 590. February: a zero day.
    assert monthly("ad_spend", e) == [160.0, 0.0, 0.0]
    assert monthly("impressions", e) == [4000.0, 0.0, 0.0]
    assert monthly("ctr", e) == [0.02, None, None]  # 80 / 4000, not the mean of daily CTRs (0.03)
    assert monthly("cpc", e) == [2.0, None, None]  # 160 / 80
    assert monthly("cpm", e) == [40.0, None, None]  # 160 × 1000 / 4000
    assert monthly("cpa", e) == [26.6667, None, None]  # 160 / 6
    assert monthly("ad_conversion_rate", e) == [0.075, None, None]  # 6 / 80 clicks
    assert monthly("ad_conversions", e) == [6.0, 0.0, 0.0]
    assert monthly("roas", e) == [3.6875, None, None]  # 590 / 160
    assert monthly("ad_conversion_value", e) == [590.0, 0.0, 0.0]


def test_ad_spend_in_two_currencies_is_refused():
    e = ads_engine()
    e.con.execute(
        "INSERT INTO ad_performance_daily SELECT * REPLACE ('USD' AS currency, 'x' AS campaign_id) "
        "FROM ad_performance_daily LIMIT 1"
    )
    with pytest.raises(MixedCurrencyError, match=r"KPI 'cpc' would add amounts in 2 currencies \(EUR, USD\)"):
        e.series(KPIS["cpc"], grain="month", start=JAN, end=FEB)
    assert e.series(KPIS["ctr"], grain="month", start=JAN, end=FEB).values()[JAN] is not None


WEB = [
    # date, sessions, engaged, key events, page views, users, new users
    ("2024-01-05", 100, 60, 3.0, 250, 80, 50),
    ("2024-01-20", 300, 150, 5.0, 700, 200, 120),
    ("2024-02-10", 0, 0, 0.0, 0, 0, 0),
]


def web_engine() -> KPIEngine:
    from kpihub.default_plugins.web_kpis import WEB_KPIS

    KPIS.update({k.id: k for k in WEB_KPIS})
    e = engine()  # the CRM tables too: traffic-to-lead spans both sources
    table = canonical(
        "web_traffic_daily",
        [
            {
                "date": dt.date.fromisoformat(d),
                "property_id": "p1",
                "source": "google",
                "medium": "organic",
                "campaign": "(not set)",
                "sessions": s,
                "engaged_sessions": g,
                "key_events": k,
                "page_views": v,
                "users": u,
                "new_users": n,
            }
            for d, s, g, k, v, u, n in WEB
        ],
    )
    e.con.register("_w", table)
    e.con.execute("CREATE TABLE web_traffic_daily AS SELECT * FROM _w")
    return e


def test_web_kpis_and_traffic_to_lead_by_hand():
    e = web_engine()
    assert monthly("sessions", e) == [400.0, 0.0, 0.0]
    assert monthly("engagement_rate", e) == [0.525, None, None]  # 210 / 400
    assert monthly("bounce_rate", e) == [0.475, None, None]  # (400 − 210) / 400
    assert monthly("web_conversion_rate", e) == [0.02, None, None]  # 8 / 400
    # Leads per month come from the CRM (3 in Jan, 2 in Feb), sessions from GA4 (400, 0).
    assert monthly("traffic_to_lead", e) == [0.0075, None, None]
    assert monthly("page_views", e) == [950.0, 0.0, 0.0]
    assert monthly("new_users", e) == [170.0, 0.0, 0.0]  # first-time users are counted once: they add up
    daily = e.series(KPIS["users"], grain="day", start=dt.date(2024, 1, 5), end=dt.date(2024, 1, 7))
    assert daily.table["value"].to_pylist() == [80.0, 0.0]
    with pytest.raises(KPIError, match="do not add up beyond a day; ask for grain 'day', not 'month'"):
        e.series(KPIS["users"], grain="month", start=JAN, end=FEB)


def test_customer_growth_divides_by_the_customers_before_the_period():
    # Customers: c5 on 10 Feb, c1 on 1 Mar. Jan and Feb start with none (null); March starts with one: 1 / 1.
    assert monthly("customer_growth") == [None, None, 1.0]
    s = engine().series(KPIS["customer_growth"], grain="month", start=JAN, end=dt.date(2024, 4, 1))
    assert s.table["denominator"].to_pylist() == [0, 0, 1]


def fx_engine(rows, rates) -> KPIEngine:
    e = orders_engine(rows)
    e.currency = "EUR"
    table = canonical(
        "fx_rates_daily",
        [
            {"date": dt.date.fromisoformat(d), "base_currency": b, "quote_currency": q, "rate": Decimal(r)}
            for d, b, q, r in rates
        ],
    )
    e.con.register("_fx", table)
    e.con.execute("CREATE TABLE fx_rates_daily AS SELECT * FROM _fx")
    return e


def test_fx_converts_money_at_each_rows_own_day():
    rows = ORDERS + [("ch9", "charge", "2024-02-15", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    e = fx_engine(rows, [("2024-02-15", "JPY", "EUR", "0.0062"), ("2024-02-16", "JPY", "EUR", "0.0070")])
    s = e.series(KPIS["sales"], grain="month", start=FEB, end=MAR)
    # February: EUR 200 − 50, plus JPY 5,000 × 0.0062 (the rate of 15 Feb, not of 16 Feb) = 181.
    assert s.values()[FEB] == pytest.approx(181.0) and s.currency == "EUR"
    assert e.series(KPIS["aov"], grain="month", start=FEB, end=MAR).values()[FEB] == pytest.approx((200 + 31) / 2)


def test_a_missing_rate_refuses_instead_of_dropping_the_row():
    rows = ORDERS + [("ch9", "charge", "2024-02-17", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    e = fx_engine(rows, [("2024-02-15", "JPY", "EUR", "0.0062")])
    with pytest.raises(MixedCurrencyError, match="KPI 'sales': no FX rate JPY->EUR for 2024-02-17 in fx_rates_daily"):
        e.series(KPIS["sales"], grain="month", start=FEB, end=MAR)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fx_sql_parses_in_each_dialect(dialect):
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS

    catalog = {k.id: k for k in REVENUE_KPIS}
    for kpi in REVENUE_KPIS:
        if kpi.kind == "model":
            continue
        sql = compile_kpi(
            kpi, grain="month", start=JAN, end=MAR, dialect=dialect, fx_currency="EUR", catalog=catalog | KPIS
        )
        sqlglot.parse_one(sql, read=dialect)


SURVEYS = [
    # id, item, responded, score, scale min, scale max
    ("r1", "nps", "2024-01-03", 10, 0, 10),  # promoter
    ("r2", "nps", "2024-01-04", 9, 0, 10),  # promoter
    ("r3", "nps", "2024-01-05", 7, 0, 10),  # passive
    ("r4", "nps", "2024-01-06", 3, 0, 10),  # detractor
    ("r5", "csat", "2024-01-07", 5, 1, 5),
    ("r6", "csat", "2024-01-08", 3, 1, 5),
    ("r7", "nki", "2024-01-09", 8, 1, 10),
    ("r8", "nki", "2024-01-10", 10, 1, 10),
    # HubSpot's CSAT is 0-2 (unsatisfied, neutral, satisfied): only the top box is satisfied.
    ("h1", "csat", "2024-02-01", 2, 0, 2),
    ("h2", "csat", "2024-02-02", 1, 0, 2),
    ("h3", "csat", "2024-02-03", 1, 0, 2),
    ("h4", "csat", "2024-02-04", 0, 0, 2),
]


def test_satisfaction_kpis_by_hand():
    from kpihub.default_plugins.survey_kpis import SURVEY_KPIS

    KPIS.update({k.id: k for k in SURVEY_KPIS})
    con = duckdb.connect()
    table = canonical(
        "survey_responses",
        [
            {
                "response_id": r,
                "item": i,
                "responded_at": ts(d),
                "score": float(s),
                "scale_min": float(lo),
                "scale_max": float(hi),
            }
            for r, i, d, s, lo, hi in SURVEYS
        ],
    )
    con.register("_s", table)
    con.execute("CREATE TABLE survey_responses AS SELECT * FROM _s")
    e = KPIEngine(con)
    assert monthly("nps", e) == [25.0, None, None]  # 100 × (2 promoters − 1 detractor) / 4 answers = NPS +25
    assert monthly("csat", e) == [0.5, 0.25, None]  # 5 is top-two-box on 1–5, 3 is not; 2 of 0–2, not 1
    # NKI: (8 − 1)/9 × 100 = 77.78 and 100 → mean 88.89
    assert monthly("nki", e) == [88.8889, None, None]


def test_cac_by_hand():
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS

    KPIS.update({k.id: k for k in REVENUE_KPIS})
    e = engine()  # CRM: new customers Feb 1 (c5), Mar 1 (c1)
    table = canonical(
        "costs",
        [
            {"period_start": dt.date(2024, 1, 1), "category": "marketing", "amount": Decimal(1000), "currency": "EUR"},
            {"period_start": dt.date(2024, 1, 1), "category": "salaries", "amount": Decimal(5000), "currency": "EUR"},
            {"period_start": dt.date(2024, 2, 1), "category": "sales", "amount": Decimal(600), "currency": "EUR"},
        ],
    )
    e.con.register("_c2", table)
    e.con.execute("CREATE TABLE costs AS SELECT * FROM _c2")
    # Jan: 1,000 spent, no new customer -> null; Feb: 600 / 1; Mar: nothing spent / 1 customer -> 0.
    assert monthly("cac", e) == [None, 600.0, 0.0]


def test_breakdown_by_channel_fills_counts_and_leaves_empty_ratios_null():
    e = ads_engine()
    ctr = e.series(KPIS["ctr"], grain="month", start=JAN, end=MAR, by="channel").breakdown("channel")
    # January: Google 50 / 1000, Meta 30 / 3000; February: Google's zero day, Meta nothing: 0 / 0.
    assert ctr == {
        (JAN, "google_ads"): 0.05,
        (JAN, "meta_ads"): 0.01,
        (FEB, "google_ads"): None,
        (FEB, "meta_ads"): None,
    }
    series = e.series(KPIS["clicks"], grain="month", start=JAN, end=MAR, by="platform")
    clicks = series.breakdown("platform")
    assert clicks[(FEB, "meta_ads")] == 0.0 and clicks[(JAN, "meta_ads")] == 30.0
    # One row per period and value: a simple KPI's breakdown listed a value once per period it had rows in.
    pairs = list(zip(series.table["period"].to_pylist(), series.table["platform"].to_pylist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 4
    by_campaign = e.series(KPIS["clicks"], grain="month", start=JAN, end=FEB, by="campaign_id").breakdown("campaign_id")
    assert by_campaign == {(JAN, "c1"): 50.0, (JAN, "c2"): 30.0}  # a plain column works too
    with pytest.raises(
        KPIError, match="KPI 'clicks': table 'ad_performance_daily' has no dimension or column 'country'"
    ):
        e.series(KPIS["clicks"], grain="month", start=JAN, end=FEB, by="country")
    with pytest.raises(KPIError, match="breakdowns are for simple and ratio KPIs, not derived"):
        compile_kpi(
            KPI("d", "", "", "ratio", "higher", "derived", expr="ctr * 2"), grain="month", start=JAN, end=FEB, by="x"
        )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_breakdown_sql_parses_in_each_dialect(dialect):
    from kpihub.plugins import Registry

    catalog = Registry(load_entrypoints=False).kpis
    for kpi_id in ("ctr", "traffic_to_lead", "customer_growth", "social_followers"):
        sql = compile_kpi(catalog[kpi_id], grain="month", start=JAN, end=MAR, dialect=dialect, by="channel")
        sqlglot.parse_one(sql, read=dialect)


def test_kpi_level_filter_applies_to_every_measure():
    e = ads_engine()
    meta = KPI(
        "meta_ctr",
        "",
        "",
        "percent",
        "higher",
        "ratio",
        numerator=Measure("ad_performance_daily", "sum", "date", expr="clicks"),
        denominator=Measure("ad_performance_daily", "sum", "date", expr="impressions"),
        filter="platform = 'meta_ads'",
    )
    assert e.series(meta, grain="month", start=JAN, end=FEB).values() == {JAN: 0.01}  # 30 / 3000, Google left out


def test_summing_a_per_day_distinct_count_beyond_a_day_is_refused():
    # reach counts distinct people per day; a user KPI that sums it over a month would overcount.
    reach = KPI(
        "reach", "", "", "count", "higher", "simple", measure=Measure("social_daily", "sum", "date", expr="reach")
    )
    with pytest.raises(KPIError, match="that do not add up beyond a day; ask for grain 'day', not 'month'"):
        compile_kpi(reach, grain="month", start=JAN, end=FEB)
    compile_kpi(reach, grain="day", start=JAN, end=FEB)
