"""File formats a file destination writes and reads back with their Arrow types: Parquet, Arrow IPC,
CSV and JSON Lines.

Text formats cannot carry every type: nested values are written as JSON
text, and reading casts back to the table's recorded schema, so a table
round-trips whatever the format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kpihub.destinations.base import sql_string

if TYPE_CHECKING:
    import duckdb

__all__ = ["FORMATS", "FileFormat", "iso_timestamps", "json_to_nested", "nested_to_json"]


def nested_to_json(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lists and structs as JSON text, for stores without nested types (CSV, SQLite, jsonb)."""
    return pa.array([None if v is None else json.dumps(v, default=str) for v in column.to_pylist()], pa.string())


def json_to_nested(column: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    """The inverse of :func:`nested_to_json`."""
    return pa.array([None if v is None else json.loads(v) for v in column.to_pylist()], target)


def _flatten_nested(table: pa.Table) -> pa.Table:
    columns = [nested_to_json(col) if pa.types.is_nested(col.type) else col for col in table.columns]
    return pa.table(columns, names=table.column_names)


def _cast_back(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table[field.name]
        if pa.types.is_nested(field.type) and not pa.types.is_nested(col.type):
            col = json_to_nested(col, field.type)
        elif col.type != field.type:
            if pa.types.is_timestamp(field.type) and pa.types.is_timestamp(col.type) and col.type.tz is None:
                col = pc.assume_timezone(col, "UTC") if field.type.tz else col
            col = col.cast(field.type)
        columns.append(col)
    return pa.table(columns, schema=schema)


class FileFormat:
    """How one format writes a table to an open binary file and reads a file back."""

    def __init__(
        self,
        name: str,
        suffix: str,
        write: Callable[[pa.Table, Path], None],
        read: Callable[[Path, pa.Schema | None], pa.Table],
        read_columns: Callable[[Path, list[str]], pa.Table] | None = None,
    ) -> None:
        self.name, self.suffix, self._write, self._read, self._read_columns = name, suffix, write, read, read_columns

    def write(self, table: pa.Table, path: Path) -> None:
        """Write ``table`` to the local file ``path`` (the store makes it durable and publishes it)."""
        self._write(table, path)

    def read(self, path: Path, schema: pa.Schema | None) -> pa.Table:
        return self._read(path, schema)

    def read_columns(self, path: Path, columns: list[str], schema: pa.Schema | None) -> pa.Table:
        """Only ``columns`` (cheap for columnar formats: merges probe key columns first)."""
        if self._read_columns is not None:
            return self._read_columns(path, columns)
        table = self.read(path, schema)
        return table.select([c for c in columns if c in table.column_names])


def _parquet_columns(path: Path, columns: list[str]) -> pa.Table:
    present = set(pq.read_schema(path).names)
    return pq.read_table(path, columns=[c for c in columns if c in present])


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_ipc(path: Path, schema: pa.Schema | None) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _write_csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(_flatten_nested(table), str(path))


def _read_csv(path: Path, schema: pa.Schema | None) -> pa.Table:
    types = {f.name: (pa.string() if pa.types.is_nested(f.type) else f.type) for f in schema} if schema else None
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)
    table = pacsv.read_csv(path, convert_options=options)
    return _cast_back(table, schema) if schema is not None else table


_engine: duckdb.DuckDBPyConnection | None = None  # imported when first needed: 0.2 s off every Parquet sync
_engine_lock = threading.Lock()


def _duckdb() -> duckdb.DuckDBPyConnection:
    """A cursor on one shared in-memory DuckDB (a new database costs ~25 ms; a cursor, 0.2 ms)."""
    import duckdb

    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = duckdb.connect()
        con = _engine.cursor()  # one per call: cursors are DuckDB's unit of thread safety
    con.execute("SET TimeZone = 'UTC'")
    return con


def _write_jsonl(table: pa.Table, path: Path) -> None:
    # DuckDB writes JSON column-wise (pyarrow has no JSON writer); timestamps in UTC with offset.
    con = _duckdb()
    try:
        con.register("t", table)
        con.execute(f"COPY t TO {sql_string(str(path))} (FORMAT json)")
    finally:
        con.close()


def _read_jsonl(path: Path, schema: pa.Schema | None) -> pa.Table:
    con = _duckdb()
    try:
        if schema is None:
            relation = con.sql(f"SELECT * FROM read_json({sql_string(str(path))}, format = 'newline_delimited')")
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        # Read every value as JSON text, then type it from the recorded schema (exact decimals, UTC times).
        columns = ", ".join(f"'{f.name}': 'VARCHAR'" for f in schema)
        relation = con.sql(
            f"SELECT * FROM read_json({sql_string(str(path))}, format = 'newline_delimited', columns = {{{columns}}})"
        )
        table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
    finally:
        con.close()
    typed = []
    for field in schema:
        col = table[field.name]
        if pa.types.is_timestamp(field.type):
            col = iso_timestamps(col, field.type)
        elif pa.types.is_boolean(field.type):
            col = pc.equal(col, "true")
        elif not pa.types.is_nested(field.type) and not pa.types.is_string(field.type):
            col = col.cast(field.type)
        typed.append(col)
    return _cast_back(pa.table(typed, names=schema.names), schema)


def iso_timestamps(col: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """ISO 8601 text (``T`` or space, UTC offset ``+00:00``/``+00``/``Z`` or none) as ``target`` timestamps."""
    text = pc.replace_substring_regex(col, pattern=r"(\+00(:00)?|Z)$", replacement="")
    text = pc.replace_substring(text, pattern=" ", replacement="T", max_replacements=1)
    parsed = pc.cast(text, pa.timestamp(target.unit))
    return pc.assume_timezone(parsed, "UTC").cast(target) if target.tz else parsed


FORMATS: dict[str, FileFormat] = {
    "parquet": FileFormat(
        "parquet",
        ".parquet",
        lambda t, path: pq.write_table(t, str(path), compression="zstd"),
        lambda p, s: pq.read_table(p),
        _parquet_columns,
    ),
    "arrow": FileFormat("arrow", ".arrow", _write_ipc, _read_ipc),
    "csv": FileFormat("csv", ".csv", _write_csv, _read_csv),
    "jsonl": FileFormat("jsonl", ".jsonl", _write_jsonl, _read_jsonl),
}
