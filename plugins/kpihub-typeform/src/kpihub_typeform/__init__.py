"""kpihub-typeform: Typeform responses as a declarative source (``typeform.toml``; no connector code)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

import kpihub

__all__ = ["SPEC", "kpihub_register_sources", "source"]
__version__ = "0.1.0"

#: The declarative description of the Typeform Responses API this plugin is.
SPEC = files(__name__) / "typeform.toml"


def source() -> kpihub.DeclarativeSource:
    """The Typeform source, loaded from :data:`SPEC`."""
    return kpihub.DeclarativeSource.from_file(str(SPEC))


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(source())
