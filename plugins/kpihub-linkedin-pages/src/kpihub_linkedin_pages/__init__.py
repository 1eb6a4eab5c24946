"""kpihub-linkedin-pages: LinkedIn organization page statistics for kpihub (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_linkedin_pages.source import LinkedInPagesSettings, LinkedInPagesSource

__all__ = ["LinkedInPagesSettings", "LinkedInPagesSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(LinkedInPagesSource())
