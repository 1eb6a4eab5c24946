"""$title for kpihub: registers the ``$name`` source (see ``pyproject.toml``'s entry point)."""

from __future__ import annotations

from typing import Any

import kpihub
from $package.source import ${cls}Settings, ${cls}Source

__all__ = ["${cls}Settings", "${cls}Source"]


@kpihub.hookimpl
def kpihub_register_sources(register: Any) -> None:
    register(${cls}Source())
