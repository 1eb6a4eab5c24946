"""kpihub-matomo: page load times (and visits) from the Matomo Reporting API for kpihub (public connector API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_matomo.source import MatomoSettings, MatomoSource

__all__ = ["MatomoSettings", "MatomoSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(MatomoSource())
