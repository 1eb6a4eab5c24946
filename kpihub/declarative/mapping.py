"""The canonical mapping of a declarative stream: one SQL expression per canonical column.

``first_response_at = "created_at + to_minutes(reply_minutes)"``: DuckDB evaluates the
expressions column-wise over each normalized Arrow batch (zero-copy), so a mapping can rename,
cast, compute, ``CASE`` and ``COALESCE`` with no Python per row. The expressions are bound against
the stream's schema when the file loads: a misspelt column or a type error fails there, naming
the file, the stream and the column. ``{setting}`` in an expression is the setting's value as a
SQL literal (a string quoted, a number as it is, unset as ``NULL``): which survey question is the
NPS one, say. Secrets may not appear there.
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
        self._compiled: tuple[object, str] | None = None
        self._check(schema)

    def sql(self, settings: object) -> str:
        """The ``SELECT`` with the settings' values in place of the placeholders."""
        compiled = self._compiled
        if compiled is None or compiled[0] is not settings:
            exprs = (f"{_literals(expr, settings)} AS {_quote(name)}" for name, expr in self.columns.items())
            compiled = self._compiled = (settings, "SELECT " + ", ".join(exprs) + " FROM batch")
        return compiled[1]

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._duckdb.connect()
        return con

    def _check(self, schema: pa.Schema) -> None:
        empty = schema.empty_table()
        for name, expr in self.columns.items():
            try:
                self._run(f"SELECT {_literals(expr, None)} AS {_quote(name)} FROM batch", empty)
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

    def apply(self, batch: pa.RecordBatch, settings: object) -> pa.RecordBatch:
        """The canonical columns of ``batch``, one row per row."""
        table = self._run(self.sql(settings), pa.Table.from_batches([batch]))
        return table.combine_chunks().to_batches()[0] if table.num_rows else _empty_batch(table.schema)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literals(expr: str, settings: object | None) -> str:
    """``expr`` with each ``{setting}`` as a SQL literal (``NULL`` when checking, with no settings)."""
    from kpihub.declarative.template import FORMATTER
    from kpihub.destinations.base import sql_string

    out = []
    for literal, name, _spec, _conversion in FORMATTER.parse(expr):
        out.append(literal)
        if name is None:
            continue
        value = getattr(settings, name) if settings is not None else None
        if value is None:
            out.append("NULL")
        elif isinstance(value, bool):
            out.append("TRUE" if value else "FALSE")
        elif isinstance(value, int | float):
            out.append(repr(value))
        else:
            out.append(sql_string(str(value)))
    return "".join(out)
