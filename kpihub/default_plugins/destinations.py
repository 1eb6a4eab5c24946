"""Built-in destinations: DuckDB file (the default), Parquet directory, databases through ADBC."""

from __future__ import annotations

from collections.abc import Callable

from kpihub.destinations.adbc import ADBCDestination
from kpihub.destinations.base import Destination
from kpihub.destinations.duckdb import DuckDBDestination
from kpihub.destinations.parquet import ParquetDestination
from kpihub.hookspecs import hookimpl


@hookimpl
def kpihub_register_destinations(register: Callable[[Destination], None]) -> None:
    register(DuckDBDestination())
    register(ParquetDestination())
    register(ADBCDestination())
