"""Incremental state: one JSON entry per ``<source_id>.<stream>``, kept by the destination.

An entry looks like ``{"cursor": "2024-06-01T10:00:00+00:00", "cursor_type":
"timestamp", "records": 1234, "synced_at": "..."}``. The destination commits it
in the same atomic step as the data it covers (see
:meth:`kpihub.destinations.base.DestinationSession.commit`), so it never
points past durable data.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

__all__ = ["decode_cursor", "encode_cursor", "later", "report_window", "state_key"]


def state_key(source_id: str, stream: str) -> str:
    return f"{source_id}.{stream}"


def encode_cursor(value: Any) -> tuple[Any, str]:
    """A JSON-safe cursor value and its type tag."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat(), "timestamp"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, decimal.Decimal):
        return str(value), "decimal"
    if isinstance(value, bool):
        raise TypeError("a boolean cannot be a cursor")
    if isinstance(value, int):
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    return str(value), "string"


def decode_cursor(state: Mapping[str, Any] | None) -> Any:
    """The cursor of a state entry as a Python value (``None`` without one)."""
    if not state or state.get("cursor") is None:
        return None
    value, kind = state["cursor"], state.get("cursor_type", "string")
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "decimal":
        return decimal.Decimal(value)
    return value


def later(a: Any, b: Any) -> Any:
    """The later of two cursor values; ``None`` is earliest. A unix time (a number, as a connector's
    older state may hold it) compares with a time as the moment it is; the time is kept."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, int | float) and isinstance(b, dt.datetime):
        a = dt.datetime.fromtimestamp(a, dt.timezone.utc)
    elif isinstance(b, int | float) and isinstance(a, dt.datetime):
        b = dt.datetime.fromtimestamp(b, dt.timezone.utc)
    return b if b > a else a


def report_window(
    state: Mapping[str, Any] | None,
    *,
    lookback_days: int,
    start_date: dt.date | None = None,
    default_days: int = 90,
    today: dt.date | None = None,
) -> tuple[dt.date, dt.date]:
    """``(first, last)`` day a report stream reads: from its cursor minus the lookback window.

    Ad platforms and analytics revise recent days (late conversions, settling
    data), so every sync reads ``lookback_days`` before the last day it
    loaded again; rows merge on their keys. A first sync starts at
    ``start_date`` (or ``default_days`` ago).
    """
    last = today or dt.datetime.now(dt.timezone.utc).date()
    cursor = decode_cursor(state) if state and state.get("cursor") else None
    if isinstance(cursor, dt.datetime):
        cursor = cursor.date()
    if isinstance(cursor, str):
        cursor = dt.date.fromisoformat(cursor)
    if cursor is not None:
        return cursor - dt.timedelta(days=lookback_days), last
    return start_date or last - dt.timedelta(days=default_days), last
