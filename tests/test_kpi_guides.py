"""The guides' KPIs that were missing (issue 17): ROAS incl. agency fees ex VAT, repeat purchases, returning
customers' revenue share, customer acquisition rate, activation, landing-page bounce rate by channel.

Every number is worked out by hand from the fixture below (UTC, EUR, noon unless a time is given).

orders (fixture source unless said; "rep" = repeat order: the customer had a succeeded charge before it)

id   | day        | customer | kind, status     | net | tax  | first/rep
o0   | 2023-12-10 | A        | charge           | 100 | 20   | first
o1   | 2024-01-05 | A        | charge           | 200 | 40   | rep (o0)
o2   | 2024-01-10 | B        | charge           | 100 | 20   | first
o14  | 2024-01-15 | I        | charge           | 30  | 6    | first
o3   | 2024-01-20 | B        | charge           | 50  | 10   | rep (o2, the same month)
o4   | 2024-01-25 | C        | charge           | 125 | —    | first (a source without tax amounts)
o5   | 2024-01-28 | D        | charge, failed   | 0   | —    | neither: not a paid charge
r1   | 2024-02-02 | —        | refund of o1     | −50 | −10  | neither
o6   | 2024-02-10 | C        | charge           | 250 | —    | rep (o4)
o7   | 2024-02-15 | E        | charge           | 100 | 20   | first
o12  | 2024-02-20 | H        | charge           | 60  | 12   | first
o8   | 2024-03-01 | F        | charge           | 60  | 12   | first
o11  | 2024-03-05 | A (shop2)| charge           | 90  | 18   | first: shop2's A is not the fixture's A
o9   | 2024-03-20 | — guest  | charge           | 40  | 8    | neither: no customer
o10  | 2024-04-20 | F        | charge           | 30  | 6    | rep (o8, 50 days later)
o15  | 2024-05-10T10:00 | J  | charge           | 20  | 4    | first (the lower id of one instant)
o16  | 2024-05-10T10:00 | J  | charge           | 20  | 4    | rep (o15, the same instant)
o13  | 2024-06-01 | H        | charge           | 40  | 8    | rep (o12, 102 days later)

month | sales | tax | no tax amount | ex VAT (rate 0.25)      | ad spend + agency | ROAS net
Jan   | 505   | 76  | 125           | 505 − 76 − 25 = 404     | 160 + 40 = 200    | 2.02
Feb   | 360   | 22  | 250           | 360 − 22 − 50 = 288     | 200 + 0 = 200     | 1.44
Mar   | 190   | 38  | 0             | 152                     | 100 + 52 = 152    | 1.0
Apr   | 30    | 6   | 0             | 24                      | 0                 | null (no spend)
Q1    | 1055  | 136 | 375           | 844 (= 404 + 288 + 152) | 552               | 844 / 552 ≈ 1.529 (mean: 1.487)
Without a VAT rate, orders with no tax amount keep their VAT: Jan 429 / 200, Feb 338 / 200, Mar 152 / 152.

month | paying | repeat | first | repeat rate | acquisition | repeat net ÷ paid net | activated ÷ first buyers
Jan   | A B C I| A B    | B C I | 2/4         | 3/4         | 250 / 505             | B, C of B, C, I: 2/3
Feb   | C E H  | C      | E H   | 1/3         | 2/3         | 250 / 410             | 0/2 (E never, H after 102 days)
Mar   | F A'   | —      | F A'  | 0/2         | 2/2         | 0 / 190               | F of F, A': 1/2
Apr   | F      | F      | —     | 1/1         | 0/1         | 30 / 30               | null (no first buyer)
May   | J      | J      | J     | 1/1         | 1/1         | 20 / 40               | 1/1 (o16 at o15's instant)
Jun   | H      | H      | —     | 1/1         | 0/1         | 40 / 40               | null
Q1 (distinct customers of the quarter): paying A B C I E H F A' = 8, repeat A B C = 3, first B C I E H F A' = 7;
repeat net 500 of 1105 (505 + 410 + 190); activated B C F of 7 first buyers (3/7, not the months' mean 7/18).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import duckdb
import pytest

from kpihub.config import ProjectSettings
from kpihub.default_plugins import customer_kpis, landing_page_kpis
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.project import apply_parameters
from kpihub.kpis.spec import KPI
from kpihub.plugins import Registry
from kpihub.testing.kpi_conformance import KPIConformance, canonical_rows

JAN, APR, JUL = dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)


def _order(order_id: str, day: str, customer: str | None, net: int, tax: int | None, **more: Any) -> dict:
    at = day if "T" in day else f"{day}T12:00:00Z"
    row = {"order_id": order_id, "kind": "charge", "status": "succeeded", "ordered_at": at, "customer_id": customer}
    return row | {"gross_amount": max(net, 0), "net_amount": net, "tax_amount": tax, "currency": "EUR"} | more


ORDERS = [
    _order("o0", "2023-12-10", "A", 100, 20),
    _order("o1", "2024-01-05", "A", 200, 40),
    _order("o2", "2024-01-10", "B", 100, 20),
    _order("o14", "2024-01-15", "I", 30, 6),
    _order("o3", "2024-01-20", "B", 50, 10),
    _order("o4", "2024-01-25", "C", 125, None),
    _order("o5", "2024-01-28", "D", 0, None, status="failed", gross_amount=80),
    _order("r1", "2024-02-02", None, -50, -10, kind="refund", parent_order_id="o1", refunded_amount=50),
    _order("o6", "2024-02-10", "C", 250, None),
    _order("o7", "2024-02-15", "E", 100, 20),
    _order("o12", "2024-02-20", "H", 60, 12),
    _order("o8", "2024-03-01", "F", 60, 12),
    _order("o11", "2024-03-05", "A", 90, 18, source_id="shop2"),
    _order("o9", "2024-03-20", None, 40, 8),
    _order("o10", "2024-04-20", "F", 30, 6),
    _order("o15", "2024-05-10T10:00:00Z", "J", 20, 4),
    _order("o16", "2024-05-10T10:00:00Z", "J", 20, 4),
    _order("o13", "2024-06-01", "H", 40, 8),
]


def _spend(day: str, platform: str, spend: int) -> dict:
    return {
        "date": day,
        "platform": platform,
        "account_id": "acc",
        "campaign_id": f"c-{day}",
        "ad_group_id": "",
        "ad_id": "",
        "spend": spend,
        "currency": "EUR",
    }


def _cost(month: str, category: str, amount: int) -> dict:
    return {"period_start": f"{month}-01", "category": category, "amount": amount, "currency": "EUR"}


TABLES: dict[str, list[dict]] = {
    "orders": ORDERS,
    "ad_performance_daily": [
        _spend("2024-01-03", "google_ads", 100),
        _spend("2024-01-20", "meta_ads", 60),
        _spend("2024-02-05", "google_ads", 200),
        _spend("2024-03-10", "google_ads", 100),
    ],
    "costs": [
        _cost("2024-01", "agency", 40),
        _cost("2024-01", "advertising", 999),  # the platforms' spend, booked: not added a second time
        _cost("2024-01", "marketing", 300),
        _cost("2024-03", "agency", 52),
    ],
}
MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06")


def _by_month(*values: float | None) -> dict[str, float | None]:
    return dict(zip(MONTHS, values, strict=False))


def _with_vat(rate: float) -> Mapping[str, KPI]:
    kpis = dict(Registry(load_entrypoints=False).kpis)
    apply_parameters(kpis, {"vat_rate": rate})
    return kpis


class TestCustomerLoyalty(KPIConformance):
    """Repeat purchases, returning revenue, acquisition and activation: DuckDB, PostgreSQL when configured,
    every dialect, and the revenue share's quarter is Σ÷Σ of its months."""

    plugin = customer_kpis
    tables = TABLES
    expected = {
        "repeat_purchase_rate": _by_month(2 / 4, 1 / 3, 0, 1, 1, 1),
        "customer_acquisition_rate": _by_month(3 / 4, 2 / 3, 1, 0, 1, 0),
        "returning_revenue_share": _by_month(250 / 505, 250 / 410, 0, 1, 20 / 40, 1),
        "activation_rate": _by_month(2 / 3, 0, 1 / 2, None, 1, None),
    }


class TestRoasNetWithAVatRate(KPIConformance):
    """ROAS incl. agency fees ex VAT at a 25 % VAT rate, and its parts."""

    kpis = ("tax_collected", "sales_tax_not_reported", "sales_ex_vat", "agency_fees", "roas_net")
    tables = TABLES
    expected = {
        "tax_collected": _by_month(76, 22, 38, 6),
        "sales_tax_not_reported": _by_month(125, 250, 0, 0),
        "sales_ex_vat": _by_month(404, 288, 152, 24),
        "agency_fees": _by_month(40, 0, 52, 0),
        "roas_net": _by_month(2.02, 1.44, 1.0, None),
    }

    @pytest.fixture(scope="class")
    @classmethod
    def catalog(cls) -> Mapping[str, KPI]:
        return _with_vat(0.25)


class TestRoasNetWithoutAVatRate(KPIConformance):
    """Unset, the VAT rate is 0: only the tax the sources report comes out."""

    kpis = ("sales_ex_vat", "roas_net")
    tables = TABLES
    expected = {"sales_ex_vat": _by_month(429, 338, 152), "roas_net": _by_month(429 / 200, 338 / 200, 1.0)}


class TestAgencyFeesAreMarketingCosts(KPIConformance):
    """An agency's fees are marketing spent: in ROI's and CAC's costs, as in ROAS net's (one booking, every KPI)."""

    kpis = ("marketing_costs", "agency_fees")
    tables = TABLES
    expected = {"marketing_costs": _by_month(40 + 999 + 300, 0, 52), "agency_fees": _by_month(40, 0, 52)}


def _engine(tables: Mapping[str, list[dict]] = TABLES, catalog: Mapping[str, KPI] | None = None) -> KPIEngine:
    con = duckdb.connect()
    for name, rows in tables.items():
        con.register("rows", canonical_rows(name, rows))
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM rows')
        con.unregister("rows")
    return KPIEngine(con, catalog=dict(catalog or Registry(load_entrypoints=False).kpis))


def _rows(engine: KPIEngine, kpi_id: str, grain: str, start: dt.date, end: dt.date) -> list[dict]:
    return engine.series(engine.catalog[kpi_id], grain=grain, start=start, end=end).table.to_pylist()  # type: ignore[arg-type]


def _value(engine: KPIEngine, kpi_id: str, grain: str, start: dt.date, end: dt.date) -> list[float | None]:
    return [r["value"] for r in _rows(engine, kpi_id, grain, start, end)]


def test_a_quarters_roas_net_is_its_months_revenue_ex_vat_over_their_spend_and_fees():
    e = _engine(catalog=_with_vat(0.25))
    months = {k: _value(e, k, "month", JAN, APR) for k in ("sales_ex_vat", "ad_spend", "agency_fees")}
    assert months == {"sales_ex_vat": [404, 288, 152], "ad_spend": [160, 200, 100], "agency_fees": [40, 0, 52]}
    (q1,) = _value(e, "roas_net", "quarter", JAN, APR)
    assert q1 == pytest.approx((404 + 288 + 152) / (160 + 200 + 100 + 40 + 0 + 52))  # Σ ÷ Σ
    assert q1 != pytest.approx((2.02 + 1.44 + 1.0) / 3)  # not the mean of the months' ROAS


def test_the_vat_rate_is_a_project_setting_and_its_absence_is_said():
    kpis = dict(Registry(load_entrypoints=False).kpis)
    for kpi_id in ("sales_ex_vat", "roas_net"):
        assert kpis[kpi_id].notes == ("vat_rate not set: sales whose source reports no tax amount keep their VAT",)
    assert ProjectSettings(vat_rate=0.255).kpi_parameters() == {"vat_rate": 0.255}
    assert ProjectSettings(vat_rate="0.25", gross_margin=0.6).kpi_parameters() == {
        "vat_rate": 0.25,
        "gross_margin": 0.6,
    }
    assert ProjectSettings().kpi_parameters() == {}
    apply_parameters(kpis, {"vat_rate": 0.25})
    assert kpis["roas_net"].notes == () and kpis["roas_net"].parameters["vat_rate"].current == 0.25
    for bad in (25, 1, -0.1, True, "25 %"):
        with pytest.raises(ValueError, match=r"fraction from 0 up to 1 \(0.25 for 25 % VAT\)"):
            ProjectSettings(vat_rate=bad)


def test_repeat_and_acquisition_rates_count_the_quarters_distinct_customers():
    e = _engine()
    (repeat,) = _rows(e, "repeat_purchase_rate", "quarter", JAN, APR)
    assert (repeat["numerator"], repeat["denominator"]) == (3, 8)  # not Σ months' (3, 9): B and C buy twice
    (acquired,) = _rows(e, "customer_acquisition_rate", "quarter", JAN, APR)
    assert (acquired["numerator"], acquired["denominator"]) == (7, 8)
    (share,) = _rows(e, "returning_revenue_share", "quarter", JAN, APR)
    assert (share["numerator"], share["denominator"]) == (500, 1105)


def test_activation_over_a_quarter_is_its_months_first_buyers_added_up():
    e = _engine()
    months = _rows(e, "activation_rate", "month", JAN, APR)
    assert [(r["numerator"], r["denominator"]) for r in months] == [(2, 3), (0, 2), (1, 2)]
    (q1,) = _rows(e, "activation_rate", "quarter", JAN, APR)
    assert (q1["numerator"], q1["denominator"], q1["value"]) == (3, 7, pytest.approx(3 / 7))
    assert _value(e, "activation_rate", "month", dt.date(2023, 12, 1), JAN) == [1.0]  # A: 26 days


def test_customers_of_two_sources_with_one_id_are_two_customers():
    e = _engine()
    march = _rows(e, "customer_acquisition_rate", "month", dt.date(2024, 3, 1), APR)[0]
    assert (march["numerator"], march["denominator"]) == (2, 2)  # shop2's A buys for the first time


LANDING = [
    # day, landing page, channel group, sessions, engaged
    ("2024-01-05", "/", "Organic Search", 100, 60),
    ("2024-01-05", "/pricing", "Paid Search", 50, 20),
    ("2024-01-20", "/", "Paid Search", 50, 45),
    ("2024-02-03", "/", "Organic Search", 200, 150),
    ("2024-03-03", "/blog", "Email", 10, 1),
]
LANDING_TABLES = {
    "landing_pages_daily": [
        {"date": d, "property_id": "p1", "landing_page": p, "channel_group": c, "sessions": s, "engaged_sessions": e}
        for d, p, c, s, e in LANDING
    ]
}


class TestLandingPageBounceRate(KPIConformance):
    """Bounces (sessions − engaged) ÷ sessions: Jan 75 / 200, Feb 50 / 200, Mar 9 / 10; Q1 134 / 410."""

    plugin = landing_page_kpis
    tables = LANDING_TABLES
    expected = {"landing_page_bounce_rate": {"2024-01": 75 / 200, "2024-02": 50 / 200, "2024-03": 9 / 10}}


def test_landing_page_bounce_rate_by_channel_and_by_landing_page():
    e = _engine(LANDING_TABLES)
    kpi = e.catalog["landing_page_bounce_rate"]
    by_channel = e.series(kpi, grain="month", start=JAN, end=dt.date(2024, 2, 1), by="channel").breakdown("channel")
    assert by_channel == {(JAN, "Organic Search"): 0.4, (JAN, "Paid Search"): 35 / 100}
    by_page = e.series(kpi, grain="quarter", start=JAN, end=APR, by="landing_page").breakdown("landing_page")
    assert by_page == {(JAN, "/"): pytest.approx(95 / 350), (JAN, "/blog"): 0.9, (JAN, "/pricing"): 0.6}


def test_the_catalogue_names_the_sources_that_feed_each_kpi():
    pytest.importorskip("kpihub_ga4")
    import kpihub_files
    import kpihub_ga4
    import kpihub_stripe

    from kpihub.kpis.catalog import catalog_rows

    reg = Registry(load_entrypoints=False)
    for plugin in (kpihub_ga4, kpihub_stripe, kpihub_files):
        reg.register_plugin(plugin, plugin.__name__)
    rows = {r["kpi"]: r for r in catalog_rows(reg.kpis.values(), reg.sources)}
    assert rows["landing_page_bounce_rate"]["fed_by"] == "ga4"  # the files source has no landing_pages_daily
    assert rows["sales"]["fed_by"] == rows["repeat_purchase_rate"]["fed_by"] == "stripe, files"
    # A derived KPI: the tables of its inputs, each with its sources.
    assert rows["roas_net"]["fed_by"] == "ad_performance_daily: files; costs: files; orders: stripe, files"
    assert rows["cac"]["fed_by"] == "costs: files; crm_contacts: files"
    assert "fed_by" not in catalog_rows(reg.kpis.values())[0]  # without sources, as docs/kpis.md shows it


def test_kpis_list_shows_the_fed_by_column(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kpihub.cli import cli

    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(cli, ["kpis", "--list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["kpi"]: r for r in json.loads(listed.stdout)}  # stdout: a broken plugin warns on stderr
    assert all("fed_by" in r for r in rows.values())
    table = CliRunner().invoke(cli, ["kpis", "--list"], terminal_width=400)
    assert table.exit_code == 0 and "Fed by" in table.output


def test_a_stream_a_setting_switches_on_is_named_as_opt_in():
    pytest.importorskip("kpihub_hubspot")
    import kpihub_hubspot

    from kpihub.kpis.catalog import catalog_rows

    reg = Registry(load_entrypoints=False)
    reg.register_plugin(kpihub_hubspot, "kpihub_hubspot")
    rows = {r["kpi"]: r for r in catalog_rows(reg.kpis.values(), reg.sources)}
    # feedback_submissions = true adds the survey stream (off by default: it needs a Service Hub scope).
    assert rows["nps"]["fed_by"] == rows["csat"]["fed_by"] == "hubspot (opt-in)"
    assert rows["leads"]["fed_by"] == "hubspot"  # a default stream is not marked
