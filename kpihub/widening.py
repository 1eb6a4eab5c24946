"""The one type-widening rule: what a column's type becomes when new values need more room.

The sync uses it when a stream's values outgrow a column's type (a field the
stream does not declare that was ``1`` and is now ``1.5``), and every destination
uses it to evolve a table's schema, so what a stream may write and what a table
accepts never disagree.
"""

from __future__ import annotations

import pyarrow as pa

from kpihub.errors import DestinationError

__all__ = ["evolve_schema", "evolves", "widened_type"]


def widened_type(table: str, column: str, old: pa.DataType, new: pa.DataType) -> pa.DataType:
    """The type ``column`` must have to hold both its ``old`` values and ``new`` ones.

    Safe widenings: a narrower int into a wider one, an int or a decimal into a decimal with as
    many integer digits and as much scale, an int into float64 (JSON has one number type: a field
    that was ``1`` and is now ``1.5``; the normalizer does not widen values beyond 2**53, which a
    float cannot hold exactly), float32 into float64, a coarser timestamp unit into a finer one
    (same zone), null into anything. Anything else (text into a number, a number into text, a
    float into an int, a date into a timestamp) cannot be migrated without loss or guessing: a
    DestinationError names the table, the column and both types.
    """
    if old == new or pa.types.is_null(new):
        return old
    if pa.types.is_null(old):
        return new
    if (
        pa.types.is_integer(old)
        and pa.types.is_integer(new)
        and pa.types.is_signed_integer(old) == pa.types.is_signed_integer(new)
    ):
        return old if old.bit_width >= new.bit_width else new
    if (pa.types.is_integer(old) or pa.types.is_decimal(old)) and (
        pa.types.is_integer(new) or pa.types.is_decimal(new)
    ):
        digits = [_integer_digits(t) for t in (old, new)]
        scale = max(t.scale if pa.types.is_decimal(t) else 0 for t in (old, new))
        if max(digits) + scale <= 38:
            widest = pa.decimal128(max(digits) + scale, scale)
            return (
                old if pa.types.is_decimal(old) and old.precision >= widest.precision and old.scale == scale else widest
            )
    if pa.types.is_integer(old) and pa.types.is_float64(new):
        return new
    if pa.types.is_float64(old) and pa.types.is_integer(new):
        return old
    if pa.types.is_floating(old) and pa.types.is_floating(new):
        return old if old.bit_width >= new.bit_width else new
    if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
        units = ["s", "ms", "us", "ns"]
        return old if units.index(old.unit) >= units.index(new.unit) else new
    raise DestinationError(
        f"table {table!r}, column {column!r}: type changed from {old} to {new}, which cannot be migrated "
        "safely; fix the source's mapping or rebuild the table with --full-refresh"
    )


def _integer_digits(t: pa.DataType) -> int:
    if pa.types.is_decimal(t):
        return t.precision - t.scale
    return {8: 3, 16: 5, 32: 10, 64: 19}[t.bit_width]


def evolves(table: str, old: pa.Schema, new: pa.Schema) -> bool:
    """Whether ``new`` can evolve ``old`` (see :func:`evolve_schema`)."""
    try:
        evolve_schema(table, old, new)
    except DestinationError:
        return False
    return True


def evolve_schema(table: str, old: pa.Schema, new: pa.Schema) -> pa.Schema:
    """``old`` with ``new``'s extra columns added and shared columns widened (see :func:`widened_type`)."""
    fields = {f.name: f for f in old}
    for field in new:
        current = fields.get(field.name)
        if current is None:
            fields[field.name] = field
        else:
            fields[field.name] = current.with_type(widened_type(table, field.name, current.type, field.type))
    return pa.schema(list(fields.values()), metadata=old.metadata)
