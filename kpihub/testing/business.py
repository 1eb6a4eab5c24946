"""One synthetic business that every first-party fake draws from, so ``kpihub demo`` is coherent.

The same campaigns run on the ad platforms and arrive in web analytics with
matching UTM tags; the same customers (by email) are in the CRM and in
billing; everything is in one currency and one time zone. Plugin fakes take
what they need from :data:`DEMO_BUSINESS`; plugins stay independent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = ["DEMO_BUSINESS", "Campaign", "DemoBusiness"]


@dataclass(frozen=True)
class Campaign:
    """A campaign as the ad platform names it and as its UTM tags arrive in analytics."""

    name: str
    platform: str
    utm_source: str
    utm_medium: str
    utm_campaign: str


@dataclass(frozen=True)
class DemoBusiness:
    name: str = "Nordlys Outdoor AS"
    currency: str = "EUR"
    time_zone: str = "Europe/Oslo"
    start: dt.date = dt.date(2025, 1, 1)
    end: dt.date = dt.date(2026, 6, 30)
    #: The quarter the demo scores, against the quarter before it as baseline.
    period: str = "2026-Q2"
    #: Norway's standard VAT (merverdiavgift) rate: sales whose source reports no tax carry it.
    vat_rate: float = 0.25
    #: Customers Stripe bills, per ``--scale``: the first of the CRM's customers; the web shop's come after them.
    billed_customers: int = 1_200
    #: Gross margin of what it sells (about its files' cost of goods ÷ its sales): CAC payback uses it.
    gross_margin: float = 0.5
    campaigns: tuple[Campaign, ...] = field(
        default=(
            Campaign("Brand search", "google_ads", "google", "cpc", "brand_search"),
            Campaign("Generic search", "google_ads", "google", "cpc", "generic_search"),
            Campaign("Prospecting", "meta_ads", "facebook", "paid_social", "prospecting"),
            Campaign("Retargeting", "meta_ads", "instagram", "paid_social", "retargeting"),
            Campaign("ABM decision makers", "linkedin_ads", "linkedin", "paid_social", "abm"),
        )
    )

    def campaigns_on(self, platform: str) -> list[Campaign]:
        """The demo campaigns run on ``platform`` (``google_ads``, ``meta_ads``, ``linkedin_ads``)."""
        return [c for c in self.campaigns if c.platform == platform]

    @staticmethod
    def customer_email(index: int) -> str:
        """The email of the business's ``index``-th customer, the same in CRM and billing."""
        return f"customer{index:05d}@nordlys.example"


DEMO_BUSINESS = DemoBusiness()
