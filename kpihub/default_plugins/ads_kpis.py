"""Built-in advertising KPIs over ``ad_performance_daily`` (Google Ads, Meta, LinkedIn …).

Rates are Σ÷Σ at the requested grain: CTR over a month is the month's clicks
over its impressions, never an average of daily CTRs. Money is never added
across currencies (the engine refuses without FX rates).
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

T = "ad_performance_daily"


def _sum(column: str, money: bool = False) -> Measure:
    return Measure(T, "sum", "date", expr=column, currency="currency" if money else None)


ADS_KPIS = (
    KPI(
        id="ad_spend",
        title="Ad spend",
        description="Σ spend across ad platforms.",
        unit="currency",
        direction="lower",
        kind="simple",
        measure=_sum("spend", True),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="impressions",
        title="Impressions",
        description="Σ ad impressions.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("impressions"),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="clicks",
        title="Clicks",
        description="Σ ad clicks.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("clicks"),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="ctr",
        title="Click-through rate (CTR)",
        description="Σ clicks ÷ Σ impressions.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_sum("clicks"),
        denominator=_sum("impressions"),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="cpc",
        title="Cost per click (CPC)",
        description="Σ spend ÷ Σ clicks.",
        unit="currency",
        direction="lower",
        kind="ratio",
        numerator=_sum("spend", True),
        denominator=_sum("clicks"),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="cpm",
        title="Cost per mille (CPM)",
        description="Σ spend ÷ Σ impressions × 1,000.",
        unit="currency",
        direction="lower",
        kind="ratio",
        numerator=_sum("spend * 1000", True),
        denominator=_sum("impressions"),
        stage="Reach",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="ad_conversions",
        title="Ad conversions",
        description="Σ platform-reported conversions.",
        unit="count",
        direction="higher",
        kind="simple",
        measure=_sum("conversions"),
        stage="Act",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="ad_conversion_rate",
        title="Ad conversion rate",
        description="Σ platform-reported conversions ÷ Σ clicks.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=_sum("conversions"),
        denominator=_sum("clicks"),
        stage="Act",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="cpa",
        title="Cost per acquisition (CPA)",
        description="Σ spend ÷ Σ platform-reported conversions.",
        unit="currency",
        direction="lower",
        kind="ratio",
        numerator=_sum("spend", True),
        denominator=_sum("conversions"),
        stage="Act",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="ad_conversion_value",
        title="Ad conversion value",
        description="Σ platform-reported conversion value.",
        unit="currency",
        direction="higher",
        kind="simple",
        measure=_sum("conversion_value", True),
        stage="Act",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
    KPI(
        id="roas",
        title="Return on ad spend (ROAS, platform-reported)",
        description="Σ platform-reported conversion value ÷ Σ spend.",
        unit="ratio",
        direction="higher",
        kind="ratio",
        numerator=_sum("conversion_value", True),
        denominator=_sum("spend", True),
        stage="Act",
        reference=GUIDES + "; the platforms' metric definitions (Google Ads, Meta, LinkedIn)",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in ADS_KPIS:
        register(kpi)
