"""kpihub-hubspot: the HubSpot CRM connector for kpihub.

Registered through the ``kpihub`` entry-point group like any third-party
plugin; it uses only kpihub's public API.
"""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_hubspot.source import HubSpotSettings, HubSpotSource

__all__ = ["HubSpotSettings", "HubSpotSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(HubSpotSource())
