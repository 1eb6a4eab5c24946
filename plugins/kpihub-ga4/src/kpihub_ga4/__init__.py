"""kpihub-ga4: the Google Analytics 4 connector for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_ga4.source import GA4Settings, GA4Source

__all__ = ["GA4Settings", "GA4Source", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(GA4Source())
