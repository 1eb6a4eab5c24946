"""$title for kpihub: registers the KPIs of ``kpis.py`` (see ``pyproject.toml``'s entry point)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from $package.kpis import KPIS

__all__ = ["KPIS"]


@kpihub.hookimpl
def kpihub_register_kpis(register: Callable[[kpihub.KPI], None]) -> None:
    for kpi in KPIS:
        register(kpi)
