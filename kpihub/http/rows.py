"""Report rows of positional values → Arrow columns, without a Python loop over the rows.

Report APIs send a header per column and each row as lists of values in header order: GA4's
``runReport`` ``{"dimensionHeaders": [{"name"}], "metricHeaders": [{"name", "type"}], "rows":
[{"dimensionValues": [{"value"}], "metricValues": [{"value"}]}]}`` (shared API notes §2). Arrow
takes each list's j-th value into column j (``list_element``); the engine casts the string columns to
the stream's schema when the batch is yielded from ``read()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def positional_type(columns: Iterable[str], *, value_key: str = "value") -> pa.StructType:
    """The Arrow type of a positional row: ``struct<dimensionValues: list<struct<value: string>>, ...>``."""
    return pa.struct([(key, pa.list_(pa.struct([(value_key, pa.string())]))) for key in columns])


def positional_batch(
    rows: Sequence[Mapping[str, Any]] | pa.StructArray,
    columns: Mapping[str, Sequence[str]],
    *,
    value_key: str = "value",
) -> pa.RecordBatch:
    """One string column per header: ``columns`` maps each list in a row to its headers' names.

    ``positional_batch(body["rows"], {"dimensionValues": dims, "metricValues": mets})``. A row whose
    list has another length than its headers raises ``ValueError`` naming the list: the values
    would land in the wrong columns otherwise. ``rows`` may be the ``pa.StructArray`` a paginator
    with a ``record_type`` read (:data:`positional_type` gives it).
    """
    array = rows if isinstance(rows, pa.Array) else pa.array(rows, type=positional_type(columns, value_key=value_key))
    n = len(rows)
    out: dict[str, pa.Array] = {}
    for key, names in columns.items():
        lists = array.field(key)
        width = len(names)
        lengths = pc.fill_null(pc.list_value_length(lists), 0)
        if n and not pc.all(pc.equal(lengths, width)).as_py():
            row = pc.index(pc.equal(lengths, width), False).as_py()
            raise ValueError(f"row {row}: {key} has {lengths[row].as_py()} values for {width} headers")
        for j, name in enumerate(names):
            out[name] = pc.list_element(lists, j).field(value_key)
    return pa.RecordBatch.from_pydict(out)
