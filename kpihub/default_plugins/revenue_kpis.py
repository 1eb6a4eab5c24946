"""Built-in revenue KPIs over ``orders`` and ``subscriptions`` (any billing source feeds them).

Refunds are order rows of their own (``kind = "refund"``, negative net) dated
when they happen, so net revenue falls in the period of the refund.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import KPI, Measure

PAID_CHARGE = "kind = 'charge' AND status = 'succeeded'"

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
    ),
    KPI(
        id="cac",
        title="Customer acquisition cost (CAC)",
        description="Σ marketing, sales and advertising costs ÷ new customers (CRM) in the period; costs come "
        "from the costs table (files), each side aggregated to the period before the division.",
        unit="currency",
        direction="lower",
        kind="ratio",
        numerator=Measure(
            "costs",
            "sum",
            "period_start",
            expr="amount",
            filter="category IN ('marketing', 'sales', 'advertising')",
            currency="currency",
        ),
        denominator=Measure("crm_contacts", "count", "became_customer_at"),
        stage="Act",
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
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in REVENUE_KPIS:
        register(kpi)
