"""$title for kpihub: registers the ``$name:`` destination (see ``pyproject.toml``'s entry point)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from $package.destination import ${cls}Destination, ${cls}Session

__all__ = ["${cls}Destination", "${cls}Session"]


@kpihub.hookimpl
def kpihub_register_destinations(register: Callable[[kpihub.Destination], None]) -> None:
    register(${cls}Destination())
