"""Canonical rows as the model says they are: the contract of ``to_canonical`` and the unique grain.

Two invariants every connector inherits, checked on each chunk before it is committed:

* **Contract** (:func:`conform`): what ``Stream.to_canonical`` returns has only columns of
  the canonical table, every column the table requires, and values that cast to the
  column's type. A misnamed column would otherwise come out as NULL in every row.
* **Grain** (:func:`aggregate_to_grain`): a canonical table's primary key is unique in
  every commit. Rows that share a key (a report with a dimension the canonical table
  does not have, GA4's ``sessionDefaultChannelGroup`` say) are added up by each column's
  declared additivity (``kpihub.additivity`` field metadata in :mod:`kpihub.model`):
  additive measures are summed; snapshots and every other column must agree within
  the key, or the chunk fails naming the column and the key — never "last one wins".
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from kpihub.errors import NormalizationError
from kpihub.model import CanonicalTable

__all__ = ["additivity", "aggregate_to_grain", "conform"]

#: Columns the engine fills itself; a stream's ``to_canonical`` need not (and should not) set them.
ENGINE_COLUMNS = ("source_id", "_loaded_at")


def additivity(f: pa.Field) -> str:
    """``additive``, ``snapshot`` or ``attribute`` (not a measure: must agree within a key)."""
    meta = f.metadata or {}
    return meta.get(b"kpihub.additivity", b"attribute").decode()


def conform(mapped: pa.Table, target: CanonicalTable, *, source: str, stream: str) -> dict[str, pa.Array]:
    """The columns of ``mapped`` cast to ``target``'s types, checked against its schema.

    :raises NormalizationError: an unknown column, a missing required column or a value that
        cannot be cast, naming the source, the stream, the table and the column.
    """
    where = f"source {source!r}, stream {stream!r}: to_canonical for {target.name!r}"
    known = set(target.schema.names)
    unknown = [c for c in mapped.column_names if c not in known]
    if unknown:
        raise NormalizationError(
            f"{where} returned column {unknown[0]!r}, which {target.name} does not have "
            f"(columns: {', '.join(c for c in target.schema.names if c not in ENGINE_COLUMNS)})",
            stream=stream,
            field=unknown[0],
        )
    columns: dict[str, pa.Array] = {}
    for f in target.schema:
        if f.name in ENGINE_COLUMNS:
            continue
        if f.name not in mapped.column_names:
            if not f.nullable:
                raise NormalizationError(
                    f"{where} did not return required column {f.name!r}", stream=stream, field=f.name
                )
            continue
        column = mapped[f.name]
        try:
            columns[f.name] = column.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise NormalizationError(
                f"{where}: column {f.name!r} holds {column.type}, which cannot be cast to {f.type}: "
                f"{str(exc).splitlines()[0]}",
                stream=stream,
                field=f.name,
            ) from None
        if not f.nullable and column.null_count:
            raise NormalizationError(
                f"{where}: column {f.name!r} is part of the table's key but {column.null_count} row(s) are null",
                stream=stream,
                field=f.name,
            )
    return columns


def aggregate_to_grain(table: pa.Table, target: CanonicalTable, *, stream: str) -> tuple[pa.Table, int]:
    """``table`` with one row per primary key, and how many rows were added into others.

    :raises NormalizationError: rows of one key differ in a column that does not add up.
    """
    key = list(target.primary_key)
    if table.num_rows < 2:
        return table, 0
    if table.group_by(key, use_threads=False).aggregate([]).num_rows == table.num_rows:
        return table, 0
    measures = [f.name for f in target.schema if f.name not in key and additivity(f) == "additive"]
    others = [f.name for f in target.schema if f.name not in key and f.name not in measures]
    aggregations = [(m, "sum") for m in measures]
    aggregations += [(o, "count_distinct", pc.CountOptions(mode="all")) for o in others]
    aggregations += [(o, "min") for o in others]
    grouped = table.group_by(key, use_threads=False).aggregate(aggregations)
    for name in others:
        differs = pc.greater(grouped[f"{name}_count_distinct"], 1)
        if pc.any(differs).as_py():
            _refuse(grouped, target, key, name, differs, stream)
    columns = {}
    for f in target.schema:
        if f.name in key:
            columns[f.name] = grouped[f.name].cast(f.type)
        elif f.name in measures:
            columns[f.name] = grouped[f"{f.name}_sum"].cast(f.type)
        else:
            columns[f.name] = grouped[f"{f.name}_min"].cast(f.type)
    out = pa.table(columns, schema=table.schema)
    return out, table.num_rows - out.num_rows


def _refuse(
    grouped: pa.Table, target: CanonicalTable, key: Sequence[str], name: str, differs: pa.Array, stream: str
) -> None:
    row = grouped.filter(differs).slice(0, 1).to_pylist()[0]
    shown = ", ".join(f"{k}={row[k]!s}" for k in key if k != "source_id")
    kind = "a snapshot" if additivity(target.schema.field(name)) == "snapshot" else "not a measure that adds up"
    raise NormalizationError(
        f"stream {stream!r}: several rows map to one {target.name} row ({shown}) with different "
        f"{name!r} values, and {name!r} is {kind}; map the stream to the table's grain "
        f"({target.grain}) or keep such rows in the raw table only",
        stream=stream,
        field=name,
    )
