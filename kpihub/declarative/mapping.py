"""The canonical mapping of a declarative stream: one SQL expression per canonical column.

``first_response_at = "created_at + to_minutes(reply_minutes)"``: DuckDB evaluates the
expressions column-wise over each normalized Arrow batch (zero-copy), so a mapping can rename,
cast, compute, ``CASE`` and ``COALESCE`` with no Python per row. The expressions are bound against
the stream's schema when the file loads: a misspelt column or a type error fails there, naming
the file, the stream and the column.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

from kpihub.errors import ConfigError

__all__ = ["CanonicalMapping"]


class CanonicalMapping:
    """Compiled ``SELECT expr AS column, ...`` over the stream's batches."""

    def __init__(self, columns: Mapping[str, str], schema: pa.Schema, *, where: str) -> None:
        import duckdb

        self.columns = dict(columns)
        self.where = where
        self._duckdb = duckdb
        self._local = threading.local()  # a DuckDB connection is not shared between threads
        self.sql = "SELECT " + ", ".join(f"{expr} AS {_quote(name)}" for name, expr in self.columns.items())
        self.sql += " FROM batch"
        self._check(schema)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._duckdb.connect()
        return con

    def _check(self, schema: pa.Schema) -> None:
        empty = schema.empty_table()
        for name, expr in self.columns.items():
            try:
                self._run(f"SELECT {expr} AS {_quote(name)} FROM batch", empty)
            except self._duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0]
                raise ConfigError(f"{self.where}.{name}: {expr!r} does not compile: {first}") from None

    def _run(self, sql: str, table: pa.Table) -> pa.Table:
        from kpihub.destinations.duckdb import fetch_arrow

        con = self._connection()
        con.register("batch", table)
        try:
            return fetch_arrow(con, sql)
        finally:
            con.unregister("batch")

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The canonical columns of ``batch``, one row per row."""
        table = self._run(self.sql, pa.Table.from_batches([batch]))
        return table.combine_chunks().to_batches()[0] if table.num_rows else _empty_batch(table.schema)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
