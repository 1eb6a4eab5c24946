"""kpihub-google-ads: the Google Ads connector for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_google_ads.source import GoogleAdsSettings, GoogleAdsSource

__all__ = ["GoogleAdsSettings", "GoogleAdsSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(GoogleAdsSource())
