"""kpihub-files: CSV and Parquet files as a source of canonical tables (public API only)."""

from __future__ import annotations

from collections.abc import Callable

import kpihub
from kpihub_files.source import FilesSettings, FilesSource

__all__ = ["FilesSettings", "FilesSource", "kpihub_register_sources"]
__version__ = "0.1.0"


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(FilesSource())
