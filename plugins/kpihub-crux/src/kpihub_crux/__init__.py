"""kpihub-crux: Core Web Vitals from the Chrome UX Report API for kpihub (public connector API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_crux.source import CruxSettings, CruxSource

__all__ = ["CruxSettings", "CruxSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(CruxSource())
