"""Tables as JSON lines, and what a commit does to a table's rows (Arrow in, Arrow out).

One JSON object per row; decimals, dates and timestamps as ISO text, read back into the table's
Arrow types (its schema is kept beside the file), so every value reads back as it was written.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

import kpihub


def schema_text(schema: pa.Schema) -> str:
    """An Arrow schema as text for the state file (types, nullability and metadata kept)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_text(text: str) -> pa.Schema:
    """The schema :func:`schema_text` wrote."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} value cannot be written as JSON")


def write_lines(table: pa.Table, out: IO[str]) -> None:
    """Every row of ``table`` as one line of JSON."""
    for batch in table.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            out.write(json.dumps(row, default=_encode, ensure_ascii=False) + "\n")


def read_lines(lines: Iterable[str], schema: pa.Schema) -> pa.Table:
    """The rows :func:`write_lines` wrote, as a table of ``schema``."""
    rows = [json.loads(line) for line in lines if line.strip()]
    return pa.table(
        {f.name: pa.array(_decode(f.type, [r.get(f.name) for r in rows]), f.type) for f in schema}, schema=schema
    )


def _decode(type_: pa.DataType, values: list[Any]) -> list[Any]:
    if pa.types.is_decimal(type_):
        return [None if v is None else Decimal(v) for v in values]
    if pa.types.is_timestamp(type_):
        return [None if v is None else dt.datetime.fromisoformat(v) for v in values]
    if pa.types.is_date(type_):
        return [None if v is None else dt.date.fromisoformat(v) for v in values]
    return values


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns and types: columns it lacks are null."""
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def in_scope(table: pa.Table, scope: Mapping[str, Any]) -> pa.ChunkedArray | pa.Array:
    """Which rows of ``table`` a replace's scope covers: equalities and :class:`kpihub.Between` ranges."""
    mask: Any = pa.array([True] * table.num_rows, pa.bool_())
    for column, value in scope.items():
        if column not in table.column_names:
            raise kpihub.DestinationError(f"scope column {column!r} is not a column of the table")
        values = table[column]
        if isinstance(value, kpihub.Between):
            hit = pc.is_valid(values)
            if value.low is not None:
                hit = pc.and_(hit, pc.greater_equal(values, pa.scalar(value.low, values.type)))
            if value.high is not None:
                hit = pc.and_(hit, pc.less_equal(values, pa.scalar(value.high, values.type)))
        else:
            hit = pc.equal(values, pa.scalar(value, values.type))
        mask = pc.and_(mask, pc.fill_null(hit, False))
    return mask


def merged(old: pa.Table, new: pa.Table, primary_key: tuple[str, ...]) -> pa.Table:
    """``old`` with the rows of ``new`` in place of those with the same key (of a key ``new`` repeats,
    its last row)."""
    new = kpihub.dedup_last(new, primary_key)
    keys = set(zip(*(new[c].to_pylist() for c in primary_key), strict=True))
    old_keys = zip(*(old[c].to_pylist() for c in primary_key), strict=True)
    kept = old.filter(pa.array([k not in keys for k in old_keys], pa.bool_()))
    return pa.concat_tables([kept, new])


def applied(write: kpihub.TableWrite, old: pa.Table | None, data: pa.Table) -> pa.Table:
    """The table's rows after ``write`` (``data``: its rows, with a staged run's rows before them)."""
    if write.mode == "replace" and not write.scope:
        return data  # a whole-table replace takes the new rows' schema
    if old is None:
        old = data.schema.empty_table()
    schema = kpihub.evolve_schema(write.table, old.schema, data.schema)  # raises on an incompatible type
    old, data = conform(old, schema), conform(data, schema)
    if write.mode == "append":
        return pa.concat_tables([old, data])
    if write.mode == "merge":
        return merged(old, data, write.primary_key)
    return pa.concat_tables([old.filter(pc.invert(in_scope(old, write.scope or {}))), data])
