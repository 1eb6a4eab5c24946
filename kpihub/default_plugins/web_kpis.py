"""Built-in web KPIs over ``web_traffic_daily`` (GA4 …), and traffic-to-lead across sources.

``users`` sums daily user counts, which is only meaningful per day (a user
active on two days is one user over the month): the engine refuses coarser
grains for it instead of overcounting.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

W = "web_traffic_daily"


def _sum(expr: str) -> Measure:
    return Measure(W, "sum", "date", expr=expr)


WEB_KPIS = (
    KPI(
        id="sessions",
        title="Sessions (web traffic)",
        description="Σ sessions.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("sessions"),
        stage="Reach",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="users",
        title="Users (per day)",
        description="Σ daily total users; per day only (daily user counts do not add up over days).",
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure(W, "sum", "date", expr="users", max_grain="day"),
        stage="Reach",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="new_users",
        title="New users",
        description="Σ first-time users (additive: a user is new once).",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("new_users"),
        stage="Reach",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="page_views",
        title="Page views",
        description="Σ screen and page views.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("page_views"),
        stage="Engage",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="engagement_rate",
        title="Engagement rate",
        description="Σ engaged sessions ÷ Σ sessions.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_sum("engaged_sessions"),
        denominator=_sum("sessions"),
        stage="Engage",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="bounce_rate",
        title="Bounce rate",
        description="GA4: 1 − engagement rate = Σ(sessions − engaged) ÷ Σ sessions.",
        unit="percent",
        direction="lower",
        kind="ratio",
        numerator=_sum("sessions - engaged_sessions"),
        denominator=_sum("sessions"),
        stage="Engage",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="web_conversion_rate",
        title="Web conversion rate",
        description="Σ key events ÷ Σ sessions.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_sum("key_events"),
        denominator=_sum("sessions"),
        stage="Act",
        reference=GUIDES + "; GA4 Data API metric definitions",
    ),
    KPI(
        id="traffic_to_lead",
        title="Traffic-to-lead (TTL)",
        description="CRM leads ÷ web sessions; each side aggregated to the period before they are divided.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=Measure("crm_contacts", "count", "became_lead_at"),
        denominator=_sum("sessions"),
        stage="Act",
        reference=GUIDES,
    ),
    KPI(
        id="avg_page_load_seconds",
        title="Average page load time",
        description="Σ load time ÷ Σ page loads (page_performance_daily), in seconds.",
        unit="seconds",
        direction="lower",
        kind="ratio",
        numerator=Measure("page_performance_daily", "sum", "date", expr="load_time_ms_total / 1000.0"),
        denominator=Measure("page_performance_daily", "sum", "date", expr="page_loads"),
        stage="Engage",
        reference=GUIDES + " (page load time)",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in WEB_KPIS:
        register(kpi)
