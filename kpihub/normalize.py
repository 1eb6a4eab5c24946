"""Records -> Arrow record batches of a stream's schema, column-wise.

A page of JSON records is converted in one C++ pass into a struct array of
the *wire* types (what the API sends: strings for HubSpot properties, GA4
metrics, Google Ads int64s …), then each field is cast column-wise to its
declared type: ints, decimals, floats, booleans, dates and UTC timestamps.

Drift is handled by policy and reported in a :class:`DriftReport`:

* a field the schema does not know is **added** (schema evolution);
* a value of another JSON type than declared is converted to the wire type;
* a value that cannot be coerced **fails** with an error naming the stream,
  the record key and the field (``on_coerce_error="fail"``, the default),
  becomes null and is counted (``"null"``), or takes its whole record out of
  the batch into :attr:`Normalizer.rejected` with that same message
  (``"quarantine"``; the sync writes them to the ``_rejected`` table);
* a new field whose column already exists in the destination (``known_types``,
  from an earlier sync) is read as that column's type, so its values are
  checked one by one instead of failing the whole commit.

Field metadata understood (``pa.field(..., metadata={...})``):
``path`` — dotted path in the record (default: the field name);
``wire`` — ``string``, ``int``, ``float``, ``bool`` (default from the stream);
``minimum`` / ``exclusive_minimum`` — a number the values may not go below (or
reach): a negative click count or a zero quantity is a bad value like one that
does not parse, and follows the same policy.
Timestamps without an offset are read as UTC; all-digit values as epoch
milliseconds (13+ digits) or seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from kpihub.errors import NormalizationError
from kpihub.quarantine import Rejected

__all__ = ["DriftReport", "Normalized", "Normalizer", "coerce_array", "field_path"]

CoercePolicy = Literal["fail", "null", "quarantine"]
UTC_US = pa.timestamp("us", tz="UTC")

_OFFSET_RE = r"(Z|z|[+-]\d\d:?\d\d)$"
_DIGITS_RE = r"^-?\d+$"


@dataclass
class DriftReport:
    """What normalization had to adapt: new fields, converted and nulled values."""

    new_fields: list[str] = field(default_factory=list)
    converted: Counter[str] = field(default_factory=Counter)
    nulled: Counter[str] = field(default_factory=Counter)
    #: Records quarantined to ``_rejected``, by the field that could not be stored.
    quarantined: Counter[str] = field(default_factory=Counter)
    #: Fields the stream does not declare whose type widened: name → "old -> new".
    widened: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.new_fields or self.converted or self.nulled or self.quarantined or self.widened)

    def merge(self, other: DriftReport) -> None:
        """Add ``other`` (a later batch's report) into this one.

        New fields are kept once, in order; a field widened twice reads ``first -> last``;
        the per-field counts of converted, nulled and quarantined values add up.
        """
        self.new_fields.extend(f for f in other.new_fields if f not in self.new_fields)
        for name, change in other.widened.items():
            first = self.widened.get(name, change).split(" -> ")[0]
            self.widened[name] = f"{first} -> {change.split(' -> ')[-1]}"
        self.converted.update(other.converted)
        self.nulled.update(other.nulled)
        self.quarantined.update(other.quarantined)

    def summary(self) -> str:
        """The report as one line (``new fields added: ...; fields widened: ...``); ``""`` when nothing drifted."""
        parts = []
        if self.new_fields:
            parts.append(f"new fields added: {', '.join(self.new_fields)}")
        if self.widened:
            parts.append("fields widened: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.widened.items())))
        if self.converted:
            parts.append("values converted from another JSON type: " + _counts(self.converted))
        if self.nulled:
            parts.append("uncoercible values set to null: " + _counts(self.nulled))
        if self.quarantined:
            parts.append("records quarantined to _rejected: " + _counts(self.quarantined))
        return "; ".join(parts)


@dataclass
class Normalized:
    """One page converted: the batch, the records kept out of it, and what had to adapt."""

    batch: pa.RecordBatch
    #: Records quarantined (``on_coerce_error="quarantine"``): for the ``_rejected`` table.
    rejected: list[Rejected]
    #: This page's drift (new fields, widened types, converted / nulled / quarantined values).
    drift: DriftReport


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(counter.items()))


def field_path(f: pa.Field) -> str:
    meta = f.metadata or {}
    return meta.get(b"path", f.name.encode()).decode()


def _wire_kind(f: pa.Field, default_strings: bool) -> str:
    meta = f.metadata or {}
    if b"wire" in meta:
        return meta[b"wire"].decode()
    t = f.type
    if (
        default_strings
        or pa.types.is_string(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_decimal(t)
    ):
        return "string"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    return "string"


_WIRE_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def _python_to_wire(value: Any, kind: str) -> Any:
    """Slow path for one value of an unexpected JSON type."""
    if value is None:
        return None
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value) if isinstance(value, float) else str(value)
        return orjson.dumps(value).decode()
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise ValueError(value)  # beyond int64
            return value
        if isinstance(value, float) and value.is_integer() and -(2**63) <= value < 2**63:
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(value)
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return float(str(value))
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0"):
            return False
        raise ValueError(value)
    raise ValueError(kind)


def coerce_array(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast a wire array to ``target`` column-wise; raises ``pa.ArrowInvalid`` on a bad value."""
    if values.type == target:
        return values
    if pa.types.is_string(values.type) and not pa.types.is_string(target):
        if not pa.types.is_boolean(target) and not pa.types.is_date(target):
            try:  # the common case: clean values (ISO timestamps with an offset, plain numbers)
                return pc.cast(values, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        values = pc.utf8_trim_whitespace(values)
        # APIs send "" for a cleared value (HubSpot): that is null, not a parse error.
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        if pa.types.is_timestamp(target):
            return _parse_timestamps(values, target)
        if pa.types.is_date(target):
            return _parse_dates(values, target)
        if pa.types.is_boolean(target):
            values = pc.utf8_lower(values)
        if pa.types.is_decimal(target):
            # Some APIs send more digits than any money needs (LinkedIn's "107.5300000000000335346"):
            # keep the declared scale, cut the rest rather than fail.
            values = pc.replace_substring_regex(values, rf"(\.\d{{{target.scale}}})\d+$", r"\1")
    if pa.types.is_timestamp(target) and pa.types.is_integer(values.type):
        return _epoch_to_timestamp(values, target)
    return pc.cast(values, target)


def _epoch_to_timestamp(values: pa.Array, target: pa.DataType) -> pa.Array:
    # 13+ digits are milliseconds (HubSpot, JS), fewer are seconds (Stripe, unix).
    ints = pc.cast(values, pa.int64())
    is_ms = pc.greater_equal(pc.abs(ints), 10**11)
    micros = pc.if_else(is_ms, pc.multiply(ints, 1000), pc.multiply(ints, 1_000_000))
    return pc.cast(pc.cast(micros, pa.timestamp("us", tz="UTC")), target)


def _parse_timestamps(values: pa.Array, target: pa.DataType) -> pa.Array:
    null_str = pa.scalar(None, pa.string())
    values = pc.utf8_upper(values)  # RFC 3339 allows "t" and "z"
    # Nanoseconds (RFC 3339 "nano" formats): keep the microseconds the column holds.
    values = pc.replace_substring_regex(values, r"(\.\d{6})\d+", r"\1")
    is_epoch = pc.fill_null(pc.match_substring_regex(values, _DIGITS_RE), False)
    has_offset = pc.fill_null(pc.match_substring_regex(values, _OFFSET_RE), False)
    naive = pc.and_(pc.invert(is_epoch), pc.invert(has_offset))
    parts = []
    if pc.any(is_epoch).as_py():
        parts.append(_epoch_to_timestamp(pc.if_else(is_epoch, values, null_str), UTC_US))
    if pc.any(has_offset).as_py():
        parts.append(pc.cast(pc.if_else(has_offset, values, null_str), UTC_US))
    if pc.any(pc.and_(naive, pc.is_valid(values))).as_py():
        local = pc.cast(pc.if_else(naive, values, null_str), pa.timestamp("us"))
        parts.append(pc.assume_timezone(local, "UTC"))
    if not parts:
        return pa.nulls(len(values), target)
    out = parts[0] if len(parts) == 1 else pc.coalesce(*parts)
    return pc.cast(out, target)


def _parse_dates(values: pa.Array, target: pa.DataType) -> pa.Array:
    # A date may come as "2024-06-14", "20240614" (GA4) or a midnight timestamp.
    compact = pc.fill_null(pc.match_substring_regex(values, r"^\d{8}$"), False)
    if pc.any(compact).as_py():
        values = pc.if_else(
            compact,
            pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(values, 0, 4),
                pc.utf8_slice_codeunits(values, 4, 6),
                pc.utf8_slice_codeunits(values, 6, 8),
                "-",
            ),
            values,
        )
    plain = pc.fill_null(pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}$"), True)
    if pc.all(plain).as_py():
        return pc.cast(values, target)
    return pc.cast(_parse_timestamps(values, UTC_US), target)


def _find_bad(values: pa.Array, target: pa.DataType) -> list[int]:
    """Indices of values that cannot be coerced (slow path, only after a failure)."""
    bad = []
    for i, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            coerce_array(pa.array([value], values.type), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
            bad.append(i)
    return bad


class Normalizer:
    """Converts pages of one stream into batches of its (evolving) schema."""

    def __init__(
        self,
        stream: str,
        schema: pa.Schema,
        *,
        primary_key: Sequence[str] = (),
        on_coerce_error: CoercePolicy = "fail",
        wire_strings: bool = False,
        on_new_field: Literal["evolve", "ignore"] = "evolve",
        known_types: Mapping[str, pa.DataType] | None = None,
    ) -> None:
        self.stream = stream
        self.schema = schema
        self.primary_key = tuple(primary_key)
        self.on_coerce_error = on_coerce_error
        self.wire_strings = wire_strings
        self.on_new_field = on_new_field
        self.known_types = dict(known_types or {})
        #: Everything normalization adapted so far, all pages together.
        self.drift = DriftReport()
        self._declared = frozenset(schema.names)
        self._page = DriftReport()  # this page's drift
        self._bad_rows: dict[int, tuple[str, str]] = {}  # this page: record index → (field, reason)
        #: Fields whose values come in another JSON type than their declared wire type: name → the
        #: kind the API sends (learnt on a slow-path page), so later pages build column-wise.
        self._sent_kinds: dict[str, str] = {}
        self._seen_kinds: dict[str, str] = {}  # this page's learnt kinds, applied after the page
        self._rebuild()

    def _rebuild(self) -> None:
        self._paths = {f.name: field_path(f) for f in self.schema}
        self._kinds = {f.name: self._sent_kinds.get(f.name) or _wire_kind(f, self.wire_strings) for f in self.schema}
        tree: dict[str, Any] = {}
        for f in self.schema:
            node = tree
            parts = self._paths[f.name].split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"stream {self.stream!r}: path {self._paths[f.name]!r} clashes with a leaf")
            node[parts[-1]] = _WIRE_TYPES[self._kinds[f.name]]
        self._tree = tree
        self._wire_type = _struct_of(tree)
        self._known_paths = set(self._paths.values())
        # pyarrow truncates 12.5 to 12 when it builds an int64 from a JSON float: read the integer
        # fields once more as float64 to find such values (one C++ pass, no Python loop).
        ints = {f.name: self._paths[f.name] for f in self.schema if self._kinds[f.name] == "int"}
        self._int_paths = ints
        float_tree: dict[str, Any] = {}
        for path in ints.values():
            node = float_tree
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = pa.float64()
        self._float_type = _struct_of(float_tree) if ints else None

    # -- public ---------------------------------------------------------------

    def to_batch(self, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        """The batch of :meth:`normalize`, for callers that quarantine nothing (drift: :attr:`drift`)."""
        out = self.normalize(records)
        if out.rejected:
            raise NormalizationError(out.rejected[0].reason, stream=self.stream, field=out.rejected[0].field)
        return out.batch

    def normalize(self, records: Sequence[Mapping[str, Any]] | pa.RecordBatch) -> Normalized:
        """Convert one page of JSON records; the schema may grow or widen (reported in the drift).

        A page may also be an Arrow batch (a source that builds columns itself): its columns are
        matched to the schema by name and cast from the types they came in, bad values reported
        as a record's would be; a declared column the batch lacks is null.
        """
        self._page, self._bad_rows, self._seen_kinds = DriftReport(), {}, {}
        try:
            if isinstance(records, pa.RecordBatch):
                batch, rejected = self._convert_batch(records)
            else:
                batch, rejected = self._convert(records)
        finally:
            self.drift.merge(self._page)
        if self._seen_kinds:
            self._sent_kinds.update(self._seen_kinds)
            self._rebuild()
        return Normalized(batch, rejected, self._page)

    def _convert(self, records: Sequence[Mapping[str, Any]]) -> tuple[pa.RecordBatch, list[Rejected]]:
        if not records:
            return pa.RecordBatch.from_pylist([], schema=self.schema), []
        if self.on_new_field == "evolve":
            self._evolve(records)
        self._widen_for_fractions(records)
        for index, record in enumerate(records):  # a page of objects has none: a cheap check
            if type(record) is not dict and not isinstance(record, Mapping):
                self._bad_value("(record)", records, index, record, why="not a JSON object")
        try:
            wire = pa.array(records, type=self._wire_type)
            fractions = self._fractions(records, wire)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            wire, fractions = self._slow_wire(records), {}
        columns = []
        for f in self.schema:
            column = pc.struct_field(wire, self._path_indices(self._paths[f.name]))
            if f.name in fractions:
                floats, bad = fractions[f.name]
                for i in pc.indices_nonzero(bad).to_pylist():
                    self._bad_value(f.name, records, i, floats[i].as_py(), target=f.type)
                column = pc.if_else(bad, pa.scalar(None, column.type), column)
            columns.append(self._coerce(column, f, records))
        return self._kept(pa.RecordBatch.from_arrays(columns, schema=self.schema), records)

    def _convert_batch(self, page: pa.RecordBatch) -> tuple[pa.RecordBatch, list[Rejected]]:
        rows = _BatchRows(page)
        if self.on_new_field == "evolve":
            known = set(self.schema.names)
            new = [f for f in page.schema if f.name not in known]
            if new:
                self.schema = pa.schema(list(self.schema) + list(new), metadata=self.schema.metadata)
                self._page.new_fields.extend(f.name for f in new)
                self._rebuild()
        columns = []
        for f in self.schema:
            if f.name in page.schema.names:
                columns.append(self._coerce(page.column(f.name), f, rows))
            else:
                columns.append(pa.nulls(page.num_rows, f.type))
        return self._kept(pa.RecordBatch.from_arrays(columns, schema=self.schema), rows)

    def _kept(
        self, batch: pa.RecordBatch, records: Sequence[Mapping[str, Any]]
    ) -> tuple[pa.RecordBatch, list[Rejected]]:
        """The page's batch without its quarantined rows, and those rows."""
        if not self._bad_rows:
            return batch, []
        rejected = []
        for index, (name, reason) in sorted(self._bad_rows.items()):
            rejected.append(Rejected(self._record_key(records[index]), name, reason, records[index]))
            self._page.quarantined[name] += 1
        keep = pa.array([i not in self._bad_rows for i in range(len(records))])
        return batch.filter(keep), rejected

    def _widen_for_fractions(self, records: Sequence[Any]) -> None:
        """An integer field the stream does not declare becomes float64 when a value has a fraction.

        Its type came from the values seen so far; JSON has one number type, so ``1`` then ``1.5``
        is a float column (the destinations widen int to float64 by the same rule, see
        :func:`kpihub.widening.widened_type`). Not where an integer beyond 2**53 would lose digits:
        such a fraction stays a bad value.
        """
        names = [n for n in self._int_paths if n not in self._declared]
        if not names:
            return
        for name in names:
            values = _numbers_at(records, self._paths[name])
            if values is None or not len(values):
                continue
            fraction = pc.fill_null(pc.not_equal(values, pc.floor(values)), False)
            if not pc.any(fraction).as_py():
                continue
            if pc.fill_null(pc.max(pc.abs(values)), 0).as_py() > 2**53:
                continue
            i = self.schema.get_field_index(name)
            old = self.schema.field(i)
            meta = {**(old.metadata or {}), b"wire": b"float"}
            self.schema = self.schema.set(i, old.with_type(pa.float64()).with_metadata(meta))
            self._page.widened[name] = f"{old.type} -> {pa.float64()}"
            self._rebuild()

    # -- internals -------------------------------------------------------------

    def _fractions(self, records: Sequence[Any], wire: pa.StructArray) -> dict[str, tuple[pa.Array, pa.Array]]:
        """Integer fields whose JSON value had a fraction: name → (the floats, mask of bad rows)."""
        if self._float_type is None:
            return {}
        floats = pa.array(records, type=self._float_type)
        found = {}
        for name, path in self._int_paths.items():
            as_float = pc.struct_field(floats, _indices(self._float_type, path))
            as_int = pc.struct_field(wire, self._path_indices(path))
            bad = pc.fill_null(pc.not_equal(pc.cast(as_int, pa.float64()), as_float), False)
            if pc.any(bad).as_py():
                found[name] = (as_float, bad)
        return found

    def _path_indices(self, path: str) -> list[int]:
        return _indices(self._wire_type, path)

    def _evolve(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add fields for keys the schema does not know (top level and declared sub-objects)."""
        new: list[tuple[str, str]] = []
        self._scan(records, self._tree, "", new, depth=0)
        if not new:
            return
        added = []
        names = set(self.schema.names)
        for path, kind in new:
            name = path.rsplit(".", 1)[-1]
            if name in names:
                name = path.replace(".", "__")
            names.add(name)
            known = self.known_types.get(name)
            if known is not None:  # an earlier sync made this column: keep its type
                kind = _wire_kind(pa.field(name, known), False)
                added.append(pa.field(name, known, metadata={"path": path, "wire": kind}))
            else:
                added.append(pa.field(name, _WIRE_TYPES[kind], metadata={"path": path, "wire": kind}))
            self._page.new_fields.append(name)
        self.schema = pa.schema(list(self.schema) + added, metadata=self.schema.metadata)
        self._rebuild()

    def _scan(
        self, records: Sequence[Any], tree: dict[str, Any], prefix: str, new: list[tuple[str, str]], depth: int
    ) -> None:
        keys: set[str] = set()
        for r in records:
            if type(r) is dict or isinstance(r, Mapping):  # a dict, from JSON: no ABC check per record
                keys.update(r.keys())
        for key in sorted(keys - tree.keys()):
            values = [r[key] for r in records if isinstance(r, Mapping) and r.get(key) is not None]
            kinds = {_kind_of(v) for v in values}
            # Ints and fractions: a float column, unless an integer would lose digits as a float.
            exact = kinds == {"int", "float"} and all(abs(v) <= 2**53 for v in values)
            new.append((f"{prefix}{key}", "float" if exact else _kind_of(next(iter(values), None))))
        for key, sub in tree.items():
            if isinstance(sub, dict) and depth < 4:
                children = [r.get(key) for r in records if type(r) is dict or isinstance(r, Mapping)]
                self._scan(children, sub, f"{prefix}{key}.", new, depth + 1)

    def _slow_wire(self, records: Sequence[Mapping[str, Any]]) -> pa.StructArray:
        """Build the wire struct value by value, converting unexpected JSON types."""
        from kpihub.http.paginators import get_path

        arrays = {}
        for f in self.schema:
            path, kind = self._paths[f.name], self._kinds[f.name]
            out: list[Any] = []
            sent: set[str] = set()
            for r in records:
                value = get_path(r, path)
                try:
                    converted = _python_to_wire(value, kind)
                except (ValueError, TypeError):
                    converted = _python_to_wire(value, "string") if kind == "string" else None
                    self._bad_value(f.name, records, len(out), value, target=f.type)
                if value is not None:
                    sent.add(_kind_of(value))
                if converted is not None and type(converted) is not type(value):
                    self._page.converted[f.name] += 1
                out.append(converted)
            arrays[path] = pa.array(out, type=_WIRE_TYPES[kind])
            native = _native_kind(sent, f.type)
            if native is not None and native != kind:
                self._seen_kinds[f.name] = native
        return _nest(arrays, self._tree, "")

    def _coerce(self, column: pa.Array, f: pa.Field, records: Sequence[Mapping[str, Any]]) -> pa.Array:
        values = self._cast(column, f, records)
        meta = f.metadata or {}
        for key, test, words in ((b"minimum", pc.less, "below"), (b"exclusive_minimum", pc.less_equal, "not above")):
            if key not in meta or not len(values):
                continue
            bound = meta[key].decode()
            out_of_range = pc.fill_null(test(values, pa.scalar(_number(bound, f.type), f.type)), False)
            if not pc.any(out_of_range).as_py():
                continue
            for i in pc.indices_nonzero(out_of_range).to_pylist():
                self._bad_value(f.name, records, i, values[i].as_py(), why=f"{words} the minimum {bound}")
            values = pc.if_else(out_of_range, pa.scalar(None, f.type), values)
        return values

    def _cast(self, column: pa.Array, f: pa.Field, records: Sequence[Mapping[str, Any]]) -> pa.Array:
        try:
            return coerce_array(column, f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            pass
        bad = _find_bad(column, f.type)
        if not bad:  # pragma: no cover - cast failed on the whole but on no value alone
            raise NormalizationError(
                f"stream {self.stream!r}: field {f.name!r}: cannot cast to {f.type}", stream=self.stream, field=f.name
            )
        for i in bad:
            self._bad_value(f.name, records, i, column[i].as_py(), target=f.type)
        mask = pa.array([i in set(bad) for i in range(len(column))])
        cleaned = pc.if_else(mask, pa.scalar(None, column.type), column)
        return coerce_array(cleaned, f.type)

    def _bad_value(
        self,
        name: str,
        records: Sequence[Mapping[str, Any]],
        index: int,
        value: Any,
        target: Any = None,
        why: str | None = None,
    ) -> None:
        if self.on_coerce_error == "null":
            self._page.nulled[name] += 1
            return
        key = self._record_key(records[index])
        key_text = ", ".join(f"{k}={v!r}" for k, v in key.items()) or f"#{index}"
        shown = repr(value)
        shown = shown[:60] + "…" if len(shown) > 60 else shown
        what = f"as {target}" if target is not None else "to its declared type"
        problem = f"{shown} is {why}" if why else f"cannot read {shown} {what}"
        message = f"stream {self.stream!r}, record {key_text}, field {name!r}: {problem}"
        if self.on_coerce_error == "quarantine":
            self._bad_rows.setdefault(index, (name, message))
            return
        raise NormalizationError(message, stream=self.stream, field=name, record_key=key)

    def _record_key(self, record: Mapping[str, Any]) -> dict[str, Any]:
        from kpihub.http.paginators import get_path

        if not isinstance(record, Mapping):
            return {}
        if isinstance(record, _Row):  # a row of an Arrow page: columns by name
            return {k: record.get(k) for k in self.primary_key}
        return {k: get_path(record, self._paths.get(k, k)) for k in self.primary_key}


class _Row(dict):  # type: ignore[type-arg]
    """One row of an Arrow page, as a record for messages and the ``_rejected`` table."""


class _BatchRows(Sequence[Mapping[str, Any]]):
    """An Arrow page's rows as records, made only for the few a message or quarantine needs."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return self.batch.num_rows

    def __getitem__(self, index: int) -> _Row:  # type: ignore[override]
        return _Row(self.batch.slice(index, 1).to_pylist()[0])


def _numbers_at(records: Sequence[Any], path: str) -> pa.Array | None:
    """The values at ``path`` read as float64 (one C++ pass), or None when some are not numbers."""
    tree: dict[str, Any] = {}
    node = tree
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = pa.float64()
    struct = _struct_of(tree)
    try:
        return pc.struct_field(pa.array(records, type=struct), _indices(struct, path))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _indices(struct: pa.StructType, path: str) -> list[int]:
    out = []
    node: pa.DataType = struct
    for part in path.split("."):
        out.append(node.get_field_index(part))
        node = node.field(out[-1]).type
    return out


def _number(text: str, type_: pa.DataType) -> Any:
    """A bound from field metadata as a value of the field's type."""
    if pa.types.is_decimal(type_):
        from decimal import Decimal

        return Decimal(text)
    if pa.types.is_integer(type_):
        return int(text)
    return float(text)


def _native_kind(sent: set[str], target: pa.DataType) -> str | None:
    """The wire kind to read a field in when the API sends ``sent`` kinds, or None to keep it.

    Only where the column-wise cast from that kind gives what the value-by-value conversion gives
    (strings are cast by :func:`coerce_array`, ints to strings and epochs like ``str(value)``).
    """
    if sent == {"string"}:
        return "string"
    if sent == {"bool"} and pa.types.is_boolean(target):
        return "bool"
    if sent == {"int"} and (pa.types.is_integer(target) or pa.types.is_timestamp(target) or pa.types.is_string(target)):
        return "int"
    if sent <= {"int", "float"} and "float" in sent and pa.types.is_floating(target):
        return "float"
    return None


def _kind_of(sample: Any) -> str:
    if isinstance(sample, bool):
        return "bool"
    if isinstance(sample, int):
        return "int"
    if isinstance(sample, float):
        return "float"
    return "string"


def _struct_of(tree: Mapping[str, Any]) -> pa.StructType:
    return pa.struct([pa.field(k, _struct_of(v) if isinstance(v, dict) else v) for k, v in tree.items()])


def _nest(arrays: Mapping[str, pa.Array], tree: Mapping[str, Any], prefix: str) -> pa.StructArray:
    children, names = [], []
    for key, sub in tree.items():
        names.append(key)
        if isinstance(sub, dict):
            children.append(_nest(arrays, sub, f"{prefix}{key}."))
        else:
            children.append(arrays[f"{prefix}{key}"])
    return pa.StructArray.from_arrays(children, names=names)
