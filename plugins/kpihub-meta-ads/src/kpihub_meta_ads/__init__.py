"""kpihub-meta-ads: the Meta Ads connector for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_meta_ads.source import MetaAdsSettings, MetaAdsSource

__all__ = ["MetaAdsSettings", "MetaAdsSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(MetaAdsSource())
