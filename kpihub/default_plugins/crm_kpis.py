"""Built-in CRM KPIs over ``crm_contacts`` and ``crm_deals`` (any CRM source feeds them).

Lifecycle timestamps mean "reached at least this stage" (kpihub.model), so
funnel rates never exceed 100%. Conversion rates are cohorted: of the contacts
who entered stage A in a period, the share that has reached stage B by now.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure


def _count(table: str, time: str, filter: str | None = None) -> Measure:
    return Measure(table=table, agg="count", time=time, filter=filter)


CRM_KPIS = (
    KPI(
        id="leads",
        title="Leads",
        description="Contacts who became a lead (or a later stage) in the period. Source: HubSpot lifecycle dates.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_count("crm_contacts", "became_lead_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="mqls",
        title="Marketing-qualified leads",
        description="Contacts who became an MQL (or a later stage) in the period.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_count("crm_contacts", "became_mql_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sqls",
        title="Sales-qualified leads",
        description="Contacts who became an SQL (or a later stage) in the period.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_count("crm_contacts", "became_sql_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="new_customers",
        title="New customers",
        description="Contacts who became a customer in the period (CRM lifecycle).",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_count("crm_contacts", "became_customer_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="customer_growth",
        title="Customer growth",
        description="New customers in the period ÷ customers acquired before it began (CRM lifecycle).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_count("crm_contacts", "became_customer_at"),
        denominator=Measure("crm_contacts", "count_before", "became_customer_at"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="mql_to_sql_rate",
        title="MQL → SQL rate",
        description="Of the contacts who became an MQL in the period, the share that has become an SQL. "
        "Σ(MQL cohort reaching SQL) ÷ Σ(MQL cohort).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_count("crm_contacts", "became_mql_at", "became_sql_at IS NOT NULL"),
        denominator=_count("crm_contacts", "became_mql_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="lead_to_customer_rate",
        title="Lead → customer rate",
        description="Of the contacts who became a lead in the period (cohorted by lead date), the share that "
        "has become a customer. Σ(lead cohort reaching customer) ÷ Σ(lead cohort).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_count("crm_contacts", "became_lead_at", "became_customer_at IS NOT NULL"),
        denominator=_count("crm_contacts", "became_lead_at"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="win_rate",
        title="Win rate",
        description="Deals won ÷ deals closed (won or lost), by close date.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_count("crm_deals", "closed_at", "is_won"),
        denominator=_count("crm_deals", "closed_at", "is_closed"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="avg_deal_size",
        title="Average deal size",
        description="Σ amount of won deals ÷ number of won deals with an amount, by close date; one currency only.",
        unit="currency",
        direction="higher",
        kind="ratio",
        numerator=Measure("crm_deals", "sum", "closed_at", expr="amount", filter="is_won", currency="currency"),
        denominator=_count("crm_deals", "closed_at", "is_won AND amount IS NOT NULL"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="sales_cycle_days",
        title="Sales cycle length",
        description="Average calendar days from deal creation to close, over deals won in the period.",
        unit="days",
        direction="lower",
        kind="ratio",
        numerator=Measure(
            "crm_deals", "sum", "closed_at", expr="DATE_DIFF('day', created_at, closed_at)", filter="is_won"
        ),
        denominator=_count("crm_deals", "closed_at", "is_won"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="won_revenue",
        title="Won revenue",
        description="Σ amount of deals won in the period (CRM revenue); one currency only.",
        unit="currency",
        direction="higher",
        kind="simple",
        measure=Measure("crm_deals", "sum", "closed_at", expr="amount", filter="is_won", currency="currency"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="lead_conversion_90d",
        title="Lead → customer within 90 days",
        description="Of the contacts who became a lead in the period, the share who became a customer within "
        "90 days of it (a conversion window, so recent cohorts are not judged on unfinished time).",
        unit="percent",
        direction="higher",
        kind="conversion",
        base=Measure("crm_contacts", "count_distinct", "became_lead_at", expr="contact_id"),
        conversion=Measure("crm_contacts", "count_distinct", "became_customer_at", expr="contact_id"),
        window="90 days",
        stage="Act",
        reference=GUIDES,
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in CRM_KPIS:
        register(kpi)
