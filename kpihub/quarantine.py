"""The ``_rejected`` table: records a sync could not store as their table's types, kept with the reason.

With ``on_bad_record = "quarantine"`` a record whose value cannot be read as
its column's type (``"n/a"`` where the table holds integers, a null primary
key …) is not loaded and does not fail the stream: it lands in
``_rejected`` — in the same commit as the records around it and the state
that moves past it, so it is never silently dropped — and the sync reports
how many.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

__all__ = ["REJECTED_SCHEMA", "REJECTED_TABLE", "Rejected", "rejected_table"]

REJECTED_TABLE = "_rejected"
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string()),
        pa.field("stream", pa.string()),
        pa.field("table_name", pa.string()),
        #: The record's primary key as a JSON object (null when it has none).
        pa.field("record_key", pa.string()),
        #: The field that could not be stored (null for a whole-record problem).
        pa.field("field", pa.string()),
        #: One line: what was wrong, as the error would have said it.
        pa.field("reason", pa.string()),
        #: The record as received (JSON text), to fix and replay.
        pa.field("record", pa.string()),
        pa.field("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class Rejected:
    """One record kept out of its table, and why."""

    record_key: Mapping[str, Any] | None
    field: str | None
    reason: str
    record: Any


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # integers beyond 64 bits, the very values that get records quarantined
        import json

        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def rejected_table(
    rows: Sequence[Rejected], *, source_id: str, stream: str, table: str, loaded_at: dt.datetime
) -> pa.Table:
    """``rows`` as ``_rejected`` rows."""
    n = len(rows)
    return pa.table(
        [
            pa.array([source_id] * n, pa.string()),
            pa.array([stream] * n, pa.string()),
            pa.array([table] * n, pa.string()),
            pa.array([_json(dict(r.record_key)) if r.record_key else None for r in rows], pa.string()),
            pa.array([r.field for r in rows], pa.string()),
            pa.array([r.reason for r in rows], pa.string()),
            pa.array([_json(r.record) for r in rows], pa.string()),
            pa.array([loaded_at] * n, pa.timestamp("us", tz="UTC")),
        ],
        schema=REJECTED_SCHEMA,
    )
