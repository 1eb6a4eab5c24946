"""Builders for small canonical tables in DuckDB, for KPI tests with hand-calculated numbers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa

from kpihub.model import CANONICAL_TABLES


def ts(text: str | None) -> dt.datetime | None:
    """``2024-01-05`` (noon UTC) or ``2024-01-05T23:30`` as an aware UTC datetime."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text if "T" in text else text + "T12:00").replace(tzinfo=dt.timezone.utc)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def money(text: str | int | None) -> Decimal | None:
    return None if text is None else Decimal(str(text))


def canonical(name: str, rows: list[dict], source_id: str = "crm") -> pa.Table:
    """``rows`` as the canonical table ``name`` (missing columns null)."""
    schema = CANONICAL_TABLES[name].schema
    full = [{f.name: row.get(f.name) for f in schema} | {"source_id": source_id} for row in rows]
    return pa.Table.from_pylist(full, schema=schema)


def load(con: duckdb.DuckDBPyConnection, name: str, rows: list[dict]) -> None:
    """Create table ``name`` in ``con`` from ``rows``."""
    con.register("_rows", canonical(name, rows))
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _rows")
    con.unregister("_rows")
