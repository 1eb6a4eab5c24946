"""Built-in landing-page KPIs over ``landing_pages_daily`` (GA4 ``landingPage`` × ``sessionDefaultChannelGroup``).

A table of its own, not a column of ``web_traffic_daily``: both count the same sessions, cut two
ways. ``kpihub kpis --by channel`` (the channel group) or ``--by landing_page`` breaks the rate down;
a breakdown's rates are Σ÷Σ within each value, never averages of pages' rates.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

L = "landing_pages_daily"

LANDING_PAGE_KPIS = (
    KPI(
        id="landing_page_bounce_rate",
        title="Landing-page bounce rate",
        description="GA4's bounce rate of sessions by the page they started on: Σ(sessions − engaged sessions) ÷ "
        "Σ sessions; break it down by channel (the session's default channel group) or landing_page.",
        unit="percent",
        direction="lower",
        kind="ratio",
        numerator=Measure(L, "sum", "date", expr="sessions - engaged_sessions"),
        denominator=Measure(L, "sum", "date", expr="sessions"),
        stage="Engage",
        reference=GUIDES + " (bounce rate of the landing page per channel); GA4 Data API metric definitions",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in LANDING_PAGE_KPIS:
        register(kpi)
