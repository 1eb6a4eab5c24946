"""Built-in advertising KPIs over ``ad_performance_daily`` (Google Ads, Meta, LinkedIn …).

Rates are Σ÷Σ at the requested grain: CTR over a month is the month's clicks
over its impressions, never an average of daily CTRs. Money is never added
across currencies (the engine refuses without FX rates).
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.default_plugins.revenue_kpis import EX_VAT, VAT_RATE
from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import GUIDES, KPI, Measure

T = "ad_performance_daily"
#: Costs an agency bills on top of the media spend (the costs table; files).
AGENCY = "category = 'agency'"


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
    KPI(
        id="agency_fees",
        title="Agency fees",
        description="Σ costs of category agency in the period (agency management fees, commissions, production; "
        "costs table).",
        unit="currency",
        direction="lower",
        kind="simple",
        measure=Measure("costs", "sum", "period_start", expr="amount", filter=AGENCY, currency="currency"),
        stage="Reach",
        reference=GUIDES,
    ),
    KPI(
        id="roas_net",
        title="ROAS incl. agency fees, ex VAT",
        description="Sales excluding VAT ÷ (ad spend the platforms report + agency fees), each summed over the "
        "period before the division. Not the advertising costs of the costs table: the platforms report that "
        "spend, and it would count twice. VAT not reported by the source is taken out at [project] vat_rate.",
        unit="ratio",
        direction="higher",
        kind="derived",
        expr=f"({EX_VAT}) / (ad_spend + agency_fees)",
        parameters={"vat_rate": VAT_RATE},
        stage="Act",
        reference=GUIDES + " (ROAS with an agency, for a business that sells online)",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in ADS_KPIS:
        register(kpi)
