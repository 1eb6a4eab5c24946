"""kpihub-meta-pages: Facebook Page and Instagram insights -> social_daily (public connector API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_meta_pages.source import MetaPagesSettings, MetaPagesSource

__all__ = ["MetaPagesSettings", "MetaPagesSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(MetaPagesSource())
