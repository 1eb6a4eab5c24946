"""kpihub-linkedin-ads: the LinkedIn Ads connector for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_linkedin_ads.source import LinkedInAdsSettings, LinkedInAdsSource

__all__ = ["LinkedInAdsSettings", "LinkedInAdsSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(LinkedInAdsSource())
