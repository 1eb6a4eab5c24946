"""Built-in satisfaction KPIs over ``survey_responses`` (fed by files or a survey tool).

Rows carry the item asked (``nps``, ``csat``, ``nki``) and the score with its
scale, so KPIs never assume a scale they cannot see.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

S = "survey_responses"
#: How many top boxes count as satisfied, less one: two on scales of 5+ points, one on shorter ones.
TOP_BOXES = "CASE WHEN scale_max - scale_min >= 4 THEN 1 ELSE 0 END"

SURVEY_KPIS = (
    KPI(
        id="nps",
        title="Net Promoter Score (NPS)",
        description="Share of promoters (9–10) minus share of detractors (0–6) among NPS answers, "
        "as a score from −100 to +100 (not a percentage).",
        unit="score",
        direction="higher",
        kind="ratio",
        numerator=Measure(
            S,
            "sum",
            "responded_at",
            expr="CASE WHEN score >= 9 THEN 100 WHEN score <= 6 THEN -100 ELSE 0 END",
            filter="item = 'nps'",
        ),
        denominator=Measure(S, "count", "responded_at", filter="item = 'nps'"),
        stage="Nurture",
        reference="Reichheld (2003), 'The One Number You Need to Grow', Harvard Business Review",
    ),
    KPI(
        id="csat",
        title="Customer satisfaction (CSAT)",
        description=(
            "Share of CSAT answers in the top two boxes of their scale (4–5 of 1–5); on a scale of three"
            " or four points only the top box (2 of HubSpot's 0–2: its neutral 1 is not satisfied)."
        ),
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=Measure(S, "count", "responded_at", filter="item = 'csat' AND score >= scale_max - " + TOP_BOXES),
        denominator=Measure(S, "count", "responded_at", filter="item = 'csat'"),
        stage="Nurture",
        reference=GUIDES + "; top-two-box CSAT",
    ),
    KPI(
        id="nki",
        title="Customer satisfaction index (NKI/CSI)",
        description="Average NKI answer rescaled to 0–100: Σ 100·(score − min)/(max − min) ÷ answers.",
        unit="ratio",
        direction="higher",
        kind="ratio",
        numerator=Measure(
            S,
            "sum",
            "responded_at",
            expr="100.0 * (score - scale_min) / (scale_max - scale_min)",
            filter="item = 'nki'",
        ),
        denominator=Measure(S, "count", "responded_at", filter="item = 'nki'"),
        stage="Nurture",
        reference=GUIDES + "; NKI/CSI: mean score rescaled to 0–100",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in SURVEY_KPIS:
        register(kpi)
