"""Built-in revenue, profitability and retention KPIs over ``orders``, ``subscriptions`` and ``costs``.

Refunds are order rows of their own (``kind = "refund"``, negative net) dated
when they happen, so net revenue falls in the period of the refund. Costs
come from the ``costs`` table (files), by category.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Input, Measure, Parameter

PAID_CHARGE = "kind = 'charge' AND status = 'succeeded'"
#: An agency's fees are marketing spent too: ROI and CAC count them, as ROAS net does.
MARKETING = "category IN ('marketing', 'advertising', 'agency')"
ACQUISITION = "category IN ('marketing', 'sales', 'advertising', 'agency')"
#: Net revenue without VAT: what the sources report as tax taken out, and where they report none, the
#: tax a ``vat_rate`` price holds (rate / (1 + rate) of it). See docs/kpis.md, "VAT and ROAS net".
EX_VAT = "sales - tax_collected - sales_tax_not_reported * vat_rate / (1 + vat_rate)"
#: Unset, 0: amounts without a tax amount are taken as they are, which the scorecard says.
VAT_RATE = Parameter(0.0, "vat_rate not set: sales whose source reports no tax amount keep their VAT")

REVENUE_KPIS = (
    KPI(
        id="sales",
        title="Sales (net revenue)",
        description="Σ net amount of orders in the period: succeeded charges minus refunds made in the period.",
        unit="currency",
        direction="higher",
        kind="simple",
        measure=Measure("orders", "sum", "ordered_at", expr="net_amount", currency="currency"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="tax_collected",
        title="Tax collected (VAT, sales tax)",
        description="Σ tax amount of orders in the period, as their sources report it (charges minus refunds); "
        "orders whose source reports none add nothing.",
        unit="currency",
        direction="higher",
        kind="simple",
        measure=Measure("orders", "sum", "ordered_at", expr="tax_amount", currency="currency"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sales_tax_not_reported",
        title="Sales without a reported tax amount",
        description="Σ net amount of the period's orders whose source reports no tax amount: VAT may be in it "
        "([project] vat_rate takes it out in sales_ex_vat and roas_net).",
        unit="currency",
        direction="lower",
        kind="simple",
        measure=Measure(
            "orders", "sum", "ordered_at", expr="net_amount", filter="tax_amount IS NULL", currency="currency"
        ),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sales_ex_vat",
        title="Sales excluding VAT",
        description="Net revenue without VAT: sales − the tax the sources report − the VAT in sales without a "
        "reported tax amount at [project] vat_rate (price × rate ÷ (1 + rate)); unset, those count as they are "
        "(said in a note).",
        unit="currency",
        direction="higher",
        kind="derived",
        expr=EX_VAT,
        parameters={"vat_rate": VAT_RATE},
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="orders",
        title="Orders",
        description="Succeeded charges in the period.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure("orders", "count", "ordered_at", filter=PAID_CHARGE),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="aov",
        title="Average order value",
        description="Σ gross amount of succeeded charges ÷ their number (before refunds).",
        unit="currency",
        direction="higher",
        kind="ratio",
        numerator=Measure("orders", "sum", "ordered_at", expr="gross_amount", filter=PAID_CHARGE, currency="currency"),
        denominator=Measure("orders", "count", "ordered_at", filter=PAID_CHARGE),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="paying_customers",
        title="Paying customers",
        description="Distinct customers with a succeeded charge in the period (counted at the period, not summed).",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure("orders", "count_distinct", "ordered_at", expr="customer_id", filter=PAID_CHARGE),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="arpu",
        title="Average revenue per user (ARPU)",
        description="Σ net revenue ÷ distinct paying customers in the period.",
        unit="currency",
        direction="higher",
        kind="ratio",
        numerator=Measure("orders", "sum", "ordered_at", expr="net_amount", currency="currency"),
        denominator=Measure("orders", "count_distinct", "ordered_at", expr="customer_id", filter=PAID_CHARGE),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="monthly_arpu",
        title="Monthly ARPU (revenue per customer-month)",
        description="Σ net revenue ÷ customer-months: Σ over the period's months of the customers with a "
        "succeeded charge in that month. A month's value is its ARPU; a quarter's is the revenue of an average "
        "paying customer-month in it, whatever the month customers joined in.",
        unit="currency",
        direction="higher",
        kind="ratio",
        numerator=Measure("orders", "sum", "ordered_at", expr="net_amount", currency="currency"),
        denominator=Measure(
            "orders", "count_distinct", "ordered_at", expr="customer_id", filter=PAID_CHARGE, per="month"
        ),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="cac",
        title="Customer acquisition cost (CAC)",
        description="Σ marketing, sales, advertising and agency costs ÷ new customers (CRM) in the period; costs come "
        "from the costs table (files), each side aggregated to the period before the division.",
        unit="currency",
        direction="lower",
        kind="ratio",
        numerator=Measure(
            "costs",
            "sum",
            "period_start",
            expr="amount",
            filter=ACQUISITION,
            currency="currency",
        ),
        denominator=Measure("crm_contacts", "count", "became_customer_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="refund_rate",
        title="Refund rate",
        description="Σ refunded in the period ÷ Σ gross charged in the period.",
        unit="percent",
        direction="lower",
        kind="ratio",
        numerator=Measure("orders", "sum", "ordered_at", expr="refunded_amount", currency="currency"),
        denominator=Measure("orders", "sum", "ordered_at", expr="gross_amount", currency="currency"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="new_subscriptions",
        title="New subscriptions",
        description="Subscriptions started in the period.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure("subscriptions", "count", "started_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="churned_subscriptions",
        title="Churned subscriptions",
        description="Subscriptions that ended in the period.",
        unit="count",
        direction="lower",
        kind="simple",
        measure=Measure("subscriptions", "count", "ended_at"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="total_costs",
        title="Total costs",
        description="Σ amount of every cost category in the period (costs table).",
        unit="currency",
        direction="lower",
        kind="simple",
        measure=Measure("costs", "sum", "period_start", expr="amount", currency="currency"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="marketing_costs",
        title="Marketing costs",
        description="Σ marketing, advertising and agency costs in the period (costs table).",
        unit="currency",
        direction="lower",
        kind="simple",
        measure=Measure("costs", "sum", "period_start", expr="amount", filter=MARKETING, currency="currency"),
        stage="Reach",
        reference=GUIDES,
    ),
    KPI(
        id="profit_margin",
        title="Profit margin",
        description="(sales − total costs) ÷ sales, per period; null when there are no sales.",
        unit="percent",
        direction="higher",
        kind="derived",
        expr="(sales - total_costs) / sales",
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="roi",
        title="Return on marketing investment (ROI)",
        description="(sales − marketing costs) ÷ marketing costs, per period: revenue earned per unit of "
        "marketing spent, minus the spend.",
        unit="percent",
        direction="higher",
        kind="derived",
        expr="(sales - marketing_costs) / marketing_costs",
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sales_ytd",
        title="Sales year to date",
        description="Σ net revenue from 1 January to the end of each period.",
        unit="currency",
        direction="higher",
        kind="cumulative",
        measure=Measure("orders", "sum", "ordered_at", expr="net_amount", currency="currency"),
        to_date="year",
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sales_growth_yoy",
        title="Sales growth vs last year",
        description="(sales − sales in the same period last year) ÷ sales in the same period last year.",
        unit="percent",
        direction="higher",
        kind="derived",
        expr="(sales - sales_last_year) / sales_last_year",
        inputs={"sales_last_year": Input("sales", offset=-1, unit="year")},
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="active_subscriptions",
        title="Active subscriptions (start of period)",
        description="Subscriptions started before the period and not ended before it began (a stock).",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure("subscriptions", "count_before", "started_at", until="ended_at"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="churn_rate",
        title="Churn rate",
        description="Subscriptions that ended in the period ÷ subscriptions active at its start (C ÷ S).",
        unit="percent",
        direction="lower",
        kind="ratio",
        numerator=Measure("subscriptions", "count", "ended_at"),
        denominator=Measure("subscriptions", "count_before", "started_at", until="ended_at"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="retention_rate",
        title="Retention rate",
        description="(customers at the end − new customers) ÷ customers at the start = 1 − churn rate, "
        "over subscriptions.",
        unit="percent",
        direction="higher",
        kind="derived",
        expr="1 - churn_rate",
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="annual_churn_rate",
        title="Churn rate, annualized",
        description="1 − (1 − churn rate)^(periods per year): the period's churn compounded over a year.",
        unit="percent",
        direction="lower",
        kind="derived",
        expr="1 - POWER(1 - churn_rate, periods_per_year)",
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="clv_simple",
        title="Customer lifetime value (ARPU ÷ churn)",
        description="ARPU ÷ churn rate: revenue per customer over an expected lifetime of 1 ÷ churn periods.",
        unit="currency",
        direction="higher",
        kind="derived",
        expr="arpu / churn_rate",
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="clv",
        title="Customer lifetime value (BG/NBD + Gamma-Gamma)",
        description="Average over customers of the discounted expected spend in the next 12 months, fitted on "
        "the purchases up to each period's end (kpihub.models.clv).",
        unit="currency",
        direction="higher",
        kind="model",
        model="clv",
        measure=Measure("orders", "sum", "ordered_at", expr="net_amount", filter=PAID_CHARGE, currency="currency"),
        options={"customer": "customer_id", "months": 12, "discount": 0.01, "unit_days": 7},
        stage="Nurture",
        reference="Fader, Hardie & Lee (2005), Marketing Science 24(2) and 'RFM and CLV' JMR 42(4)",
    ),
    KPI(
        id="cac_payback_months",
        title="CAC payback (months)",
        description="CAC ÷ (monthly ARPU × gross margin): months of a customer's gross profit that pay back "
        "what acquiring them cost. The margin is [project] gross_margin; unset, 1 (revenue payback, said in a "
        "note). Monthly ARPU is per customer-month, so a quarter's payback is what its months imply.",
        unit="months",
        direction="lower",
        kind="derived",
        expr="cac / (monthly_arpu * gross_margin)",
        parameters={"gross_margin": Parameter(1.0, "gross margin not set: revenue payback")},
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="customer_retention_m1",
        title="Month-1 customer retention",
        description="Of the customers whose first paid order falls in the period, the share who order again "
        "in the next period (a cohort retention matrix cell; null until that period is observed).",
        unit="percent",
        direction="higher",
        kind="cohort",
        measure=Measure("orders", "count_distinct", "ordered_at", expr="customer_id", filter=PAID_CHARGE),
        age=1,
        stage="Nurture",
        reference=GUIDES,
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in REVENUE_KPIS:
        register(kpi)
