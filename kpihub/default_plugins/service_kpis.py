"""Built-in customer service and social media KPIs over ``support_tickets`` and ``social_daily`` (files)."""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

T = "support_tickets"
#: A ticket deleted at the help desk (Zendesk keeps it in its export as ``status: "deleted"``) never counts.
LIVE = "COALESCE(status, '') <> 'deleted'"

SERVICE_KPIS = (
    KPI(
        id="tickets",
        title="Support tickets",
        description="Tickets opened in the period.",
        unit="count",
        direction="lower",
        kind="simple",
        measure=Measure(T, "count", "created_at", filter=LIVE),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="first_contact_resolution",
        title="First-contact resolution (FCR)",
        description="Tickets resolved with at most one agent reply and never reopened ÷ tickets resolved, "
        "by resolution date.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=Measure(
            T, "count", "resolved_at", filter=f"agent_replies <= 1 AND COALESCE(reopens, 0) = 0 AND {LIVE}"
        ),
        denominator=Measure(T, "count", "resolved_at", filter=LIVE),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="first_response_hours",
        title="Average first response time",
        description="Σ hours from a ticket's creation to the first agent reply ÷ tickets answered, "
        "by creation date; unanswered tickets wait outside the average.",
        unit="hours",
        direction="lower",
        kind="ratio",
        numerator=Measure(
            T,
            "sum",
            "created_at",
            expr="DATE_DIFF('second', created_at, first_response_at) / 3600.0",
            filter=f"first_response_at IS NOT NULL AND {LIVE}",
        ),
        denominator=Measure(T, "count", "created_at", filter=f"first_response_at IS NOT NULL AND {LIVE}"),
        stage="Nurture",
        reference=GUIDES,
    ),
    KPI(
        id="social_engagement_rate",
        title="Social engagement rate",
        description="Σ engagements (reactions, comments, shares, saves, clicks) ÷ Σ impressions on organic "
        "social media.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=Measure("social_daily", "sum", "date", expr="engagements"),
        denominator=Measure("social_daily", "sum", "date", expr="impressions"),
        stage="Engage",
        reference=GUIDES,
    ),
    KPI(
        id="social_followers",
        title="Social followers",
        description=(
            "Followers of each account on its last day in the period with a follower count, summed over"
            " accounts (a snapshot: never summed over days; an account whose data lags a day, or whose"
            " latest count is not in yet, still counts)."
        ),
        unit="count",
        direction="higher",
        kind="simple",
        measure=Measure(
            "social_daily",
            "sum",
            "date",
            expr="followers",
            over_time="last",
            entity=("source_id", "platform", "account_id"),
            # A null count is unknown (LinkedIn counts a day late), not a reason to drop the account.
            filter="followers IS NOT NULL",
        ),
        stage="Reach",
        reference=GUIDES,
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in SERVICE_KPIS:
        register(kpi)
