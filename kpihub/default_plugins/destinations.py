"""Built-in destinations: DuckDB file (the default) and Parquet directory."""

from __future__ import annotations

from collections.abc import Callable

from kpihub.destinations.base import Destination
from kpihub.destinations.duckdb import DuckDBDestination
from kpihub.destinations.parquet import ParquetDestination
from kpihub.hookspecs import hookimpl


@hookimpl
def kpihub_register_destinations(register: Callable[[Destination], None]) -> None:
    register(DuckDBDestination())
    register(ParquetDestination())
