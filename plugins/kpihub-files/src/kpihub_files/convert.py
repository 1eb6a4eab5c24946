"""One export column -> one canonical column, column-wise: values, decimal comma, formats, time zone, type.

Each step is an Arrow compute kernel over the whole column. Only when a column fails does
:func:`first_bad` look for the record that broke it, by bisection (a few conversions of
prefixes, not a Python loop over rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from kpihub import coerce_array
from kpihub_files.mapping import FileMapping

#: A value with a UTC offset (or ``Z``) after its time of day: not naive.
OFFSET_RE = r"(?i)\d:\d\d(:\d\d(\.\d+)?)?\s*(z|[+-]\d\d(:?\d\d)?)$"
UTC_US = pa.timestamp("us", tz="UTC")
Conversion = Callable[[pa.Array], pa.Array]


def conversion(field: pa.Field, mapping: FileMapping) -> Conversion:
    """The function that turns an export column (text or typed) into ``field``'s values."""
    target = field.type
    lookup = mapping.values.get(field.name)
    fmt = mapping.formats.get(field.name)
    if fmt is None:
        fmt = mapping.date_format if pa.types.is_date(target) else None
        fmt = mapping.timestamp_format if pa.types.is_timestamp(target) else fmt
    numeric = pa.types.is_decimal(target) or pa.types.is_floating(target) or pa.types.is_integer(target)

    def convert(values: pa.Array) -> pa.Array:
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            return coerce_array(values, target)  # typed Parquet: the canonical cast only
        values = pc.utf8_trim_whitespace(values.cast(pa.string()))
        if lookup:
            values = _lookup(values, lookup)
        if numeric:
            values = _plain_number(values, mapping)
        if fmt and pa.types.is_date(target):
            return pc.cast(pc.strptime(_blank_null(values), format=fmt, unit="s"), pa.date32())
        if pa.types.is_timestamp(target):
            return _timestamps(values, fmt, mapping.timezone or "UTC").cast(target)
        return coerce_array(values, target)

    return convert


def describe(field: pa.Field, mapping: FileMapping) -> str:
    """What a value of ``field`` was expected to be, for an error message."""
    fmt = mapping.formats.get(field.name)
    if pa.types.is_date(field.type):
        fmt = fmt or mapping.date_format
    if pa.types.is_timestamp(field.type):
        fmt = fmt or mapping.timestamp_format
    what = f"{'date' if pa.types.is_date(field.type) else 'time'} in format {fmt!r}" if fmt else str(field.type)
    if pa.types.is_timestamp(field.type) and mapping.timezone:
        what += f" ({mapping.timezone} unless it has an offset)"
    numeric = pa.types.is_decimal(field.type) or pa.types.is_floating(field.type) or pa.types.is_integer(field.type)
    if mapping.decimal_comma and numeric:
        what += " with a decimal comma"
    return what


def first_bad(convert: Conversion, values: pa.Array) -> int:
    """Index of the first value ``convert`` cannot read: the shortest failing prefix, by bisection."""
    lo, hi = 0, len(values)  # values[:lo] converts; values[:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(values.slice(0, mid))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            hi = mid
    return hi - 1


def _blank_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _lookup(values: pa.Array, lookup: Mapping[str, str]) -> pa.Array:
    idx = pc.index_in(values, value_set=pa.array(list(lookup), pa.string()))
    return pc.coalesce(pc.take(pa.array(list(lookup.values()), pa.string()), idx), values)


def _plain_number(values: pa.Array, mapping: FileMapping) -> pa.Array:
    if mapping.thousands:
        values = pc.replace_substring(values, mapping.thousands, "")
    if mapping.decimal_comma:
        values = pc.replace_substring(values, ",", ".")
    return values


def _timestamps(values: pa.Array, fmt: str | None, zone: str) -> pa.Array:
    """UTC timestamps; a value without an offset is wall-clock time in ``zone``."""
    values = _blank_null(values)
    if fmt is not None:
        parsed = pc.strptime(values, format=fmt, unit="us")
        if parsed.type.tz is not None:
            return parsed
        return pc.assume_timezone(parsed, zone, ambiguous="earliest", nonexistent="raise")
    parsed = coerce_array(values, UTC_US)  # ISO 8601, epoch numbers; naive ones read as UTC
    if zone == "UTC":
        return parsed
    naive = pc.invert(pc.fill_null(pc.match_substring_regex(values, OFFSET_RE), True))
    naive = pc.and_(naive, pc.invert(pc.fill_null(pc.match_substring_regex(values, r"^\d+$"), False)))
    if not pc.any(naive).as_py():
        return parsed
    local = pc.if_else(naive, parsed.cast(pa.timestamp("us")), pa.scalar(None, pa.timestamp("us")))
    wall = pc.assume_timezone(local, zone, ambiguous="earliest", nonexistent="raise").cast(UTC_US)
    return pc.if_else(naive, wall, parsed)
