"""What a destination declares, and helpers every destination shares.

A destination writes chunks of Arrow tables and the sync state that covers
them **in one atomic commit** (a database transaction, or files renamed into
place before the state file that lists them). A sync killed at any point and
re-run therefore sees either the data and its state, or neither.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from kpihub.errors import DestinationError
from kpihub.secrets import masked_uri
from kpihub.source import WriteMode
from kpihub.widening import evolve_schema, evolves, widened_type

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "Between",
    "Destination",
    "DestinationSession",
    "STAGE_PREFIX",
    "FileLock",
    "TableWrite",
    "check_scope",
    "check_write",
    "columns_of",
    "dedup_last",
    "evolve_schema",
    "evolves",
    "full_replace",
    "is_staging",
    "masked_uri",
    "quote",
    "range_bounds",
    "staged_table",
    "staging_name",
    "widened_type",
]

#: Tables whose name starts with this are staging tables (see :func:`staging_name`): never listed by
#: ``tables()``, never attached for the KPI engine.
STAGE_PREFIX = "_kpihub_stage__"
#: The longest table name every destination keeps whole (PostgreSQL's NAMEDATALEN - 1).
MAX_NAME = 63


@dataclass(frozen=True)
class Between:
    """A range scope value: the rows whose column lies in ``[low, high]``, both ends inclusive.

    Either end may be None (unbounded on that side). Bounds are of the kind the column holds: dates for
    a date column, datetimes for a timestamp column (compared as instants: a bound in any zone, a naive
    one read as UTC, kpihub's zone), numbers for a numeric column, text for a text column. A row whose
    value is null is never in a range. ``Between(d1, d2)`` with ``d1 > d2`` matches nothing.
    """

    low: Any = None
    high: Any = None

    def __post_init__(self) -> None:
        kinds = {_bound_kind(v) for v in (self.low, self.high) if v is not None}
        if None in kinds:
            bad = next(v for v in (self.low, self.high) if v is not None and _bound_kind(v) is None)
            raise DestinationError(f"Between: {bad!r} is not a date, timestamp, number or text")
        if len(kinds) > 1:
            raise DestinationError(f"Between({self.low!r}, {self.high!r}): both bounds must be of one kind")

    def __str__(self) -> str:
        return f"[{'…' if self.low is None else self.low}, {'…' if self.high is None else self.high}]"


def _bound_kind(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return "number"
    return "text" if isinstance(value, str) else None


@dataclass
class TableWrite:
    """One table's part of a commit.

    :param mode: ``append`` adds rows; ``replace`` swaps the rows in ``scope``
        (all rows when ``scope`` is None) for ``data``; ``merge`` replaces rows
        with the same primary key and adds the rest.
    :param scope: what bounds a ``replace``: ``{column: value}``, each an equality (``{"source_id": "hubspot"}``,
        so one source can replace its rows in a canonical table others also feed) or a :class:`Between`
        range (both ends inclusive, either open): ``{"source_id": "ga4", "date": Between(d1, d2)}`` deletes
        exactly the ga4 rows dated d1 to d2 — a report stream's re-read window, so a row the platform removed
        or restated goes too — and ``data`` (possibly empty) takes their place. A null never lies in a range;
        timestamps compare as instants. Every scope column must be a column of the table (or of ``data``):
        otherwise a DestinationError names the table and the column. File destinations partitioned by day
        skip the files of days outside a range and drop, unread, files whose rows all lie in the scope.
    :param staged_from: the name of a staging table (:func:`staging_name`) whose rows, together with
        ``data``, become the new contents; mode ``replace`` only (with or without ``scope``, ranges too). The
        destination drops the staging table in the same atomic commit, so a full refresh written chunk
        by chunk into the stage swaps in whole or not at all. A whole-table replace takes the schema of
        the staged rows and ``data`` (as :func:`full_replace` allows); a scoped one evolves the table's.
        The stage's rows move inside the destination (a rename, ``INSERT … SELECT``, files listed under
        the table), never through Python.
    """

    table: str
    data: pa.Table
    mode: WriteMode
    primary_key: tuple[str, ...] = ()
    scope: Mapping[str, Any] | None = None
    #: The source a raw stream table belongs to: databases with schemas put it in a schema of its own.
    namespace: str | None = None
    staged_from: str | None = None


def staging_name(table: str, key: str) -> str:
    """The staging table in which a run builds ``table``'s new contents before one commit swaps them in.

    ``key`` tells apart streams staging into the same table (two sources replacing their rows of one
    canonical table): ``staging_name("contacts", "hubspot.contacts")`` is
    ``_kpihub_stage__contacts__<8 hex digits of table and key>``. Names fit PostgreSQL's 63 characters
    (a long table name is cut; the digest keeps it unique). Write to it with ordinary TableWrites (same
    ``namespace`` as the target), then commit the target with ``staged_from=`` this name.
    """
    digest = hashlib.sha1(f"{table}\0{key}".encode()).hexdigest()[:8]
    room = MAX_NAME - len(STAGE_PREFIX) - len(digest) - 2
    return f"{STAGE_PREFIX}{table[:room]}__{digest}"


def is_staging(name: str) -> bool:
    """Whether ``name`` is a staging table (hidden from ``tables()`` and ``attach()``)."""
    return name.startswith(STAGE_PREFIX)


def staged_table(name: str) -> str | None:
    """The table a staging table stages for, read back from its name (a cut name gives its prefix only)."""
    if not is_staging(name) or len(name) < len(STAGE_PREFIX) + 11 or name[-10:-8] != "__":
        return None
    return name[len(STAGE_PREFIX) : -10]


def check_write(write: TableWrite) -> None:
    """Refuse a write no destination can apply: a bad ``staged_from`` (a destination drops what it names,
    so only a staging table may be named there), a merge without a key, a range scope outside a replace.
    (What needs the table's schema, :func:`check_scope` checks.)"""
    if write.mode == "merge" and not write.primary_key:
        raise DestinationError(f"table {write.table!r}: merge needs a primary key")
    ranges = [c for c, v in (write.scope or {}).items() if isinstance(v, Between)]
    if ranges and write.mode != "replace":
        raise DestinationError(f"table {write.table!r}: a range scope ({ranges[0]!r}) needs mode 'replace'")
    if write.staged_from is None:
        return
    if write.mode != "replace":
        raise DestinationError(f"table {write.table!r}: staged_from needs mode 'replace', not {write.mode!r}")
    if not is_staging(write.staged_from) or is_staging(write.table):
        raise DestinationError(
            f"table {write.table!r}: staged_from={write.staged_from!r} is not a staging table "
            f"(name it with staging_name(); its name starts with {STAGE_PREFIX!r})"
        )


def check_scope(table: str, scope: Mapping[str, Any] | None, schema: pa.Schema) -> None:
    """Refuse a scope naming a column ``schema`` (the table's, with the write's new columns) lacks, or a
    range whose bounds do not fit its column's type: a replace must never quietly delete nothing."""
    for column, value in (scope or {}).items():
        if column not in schema.names:
            what = f"range {value}" if isinstance(value, Between) else f"value {value!r}"
            raise DestinationError(
                f"table {table!r}: scope column {column!r} ({what}) is not a column of the table"
            )
        if isinstance(value, Between):
            range_bounds(table, column, schema.field(column).type, value)


def columns_of(*schemas: pa.Schema | None) -> pa.Schema:
    """Every column of ``schemas``, each with its type in the first that has it (for :func:`check_scope`
    before a table evolves: the table's columns, then those a write brings)."""
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for field in schema or ():
            fields.setdefault(field.name, field)
    return pa.schema(list(fields.values()))


def range_bounds(table: str, column: str, column_type: pa.DataType, between: Between) -> tuple[Any, Any]:
    """``between``'s ends as exact values of ``column_type`` (None where open), so that comparing stored
    values with them selects exactly the rows in the range: the low end rounded up to the column's
    resolution (a timestamp unit, an integer, a decimal scale), the high end down; timestamps in UTC
    (aware for a zoned column, naive for a naive one)."""
    return (
        _fit_bound(table, column, column_type, between.low, up=True),
        _fit_bound(table, column, column_type, between.high, up=False),
    )


_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _fit_bound(table: str, column: str, t: pa.DataType, value: Any, *, up: bool) -> Any:
    if value is None:
        return None
    kind = _bound_kind(value)
    where = f"table {table!r}, column {column!r}"
    if pa.types.is_date(t) and kind == "date":
        return value
    if pa.types.is_timestamp(t) and kind == "timestamp":
        aware = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
        step = _UNIT_US[t.unit]
        micros = (aware - _EPOCH) // dt.timedelta(microseconds=1)
        micros = -(-micros // step) * step if up else micros // step * step
        out = _EPOCH + dt.timedelta(microseconds=micros)
        return out if t.tz else out.replace(tzinfo=None)
    if kind == "number" and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        if isinstance(value, float) and math.isnan(value):
            raise DestinationError(f"{where}: a range bound cannot be NaN")
        if pa.types.is_floating(t):
            return float(value)
        number = Decimal(value)
        if not number.is_finite():  # ±inf on an exact column: the range is open on that side, or empty
            raise DestinationError(f"{where}: range bound {value!r} on a column of type {t} (use None for open)")
        rounding = ROUND_CEILING if up else ROUND_FLOOR
        if pa.types.is_integer(t):
            return int(number.to_integral_value(rounding))
        return number.quantize(Decimal(1).scaleb(-t.scale), rounding)
    if kind == "text" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return value
    raise DestinationError(f"{where}: range bound {value!r} does not fit the column's type {t}")


class DestinationSession(ABC):
    """An open destination: reads state, commits writes with state atomically."""

    uri: str

    @abstractmethod
    def get_state(self, key: str) -> dict[str, Any] | None:
        """The committed state for ``key`` (``<source_id>.<stream>``), or None."""

    @abstractmethod
    def all_state(self) -> dict[str, dict[str, Any]]:
        """Every committed state entry."""

    @abstractmethod
    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        """Write every table change and the state entries in one atomic step."""

    @abstractmethod
    def tables(self) -> list[str]:
        """Names of the data tables present (never a staging table: see :func:`is_staging`)."""

    @abstractmethod
    def read_table(self, name: str) -> pa.Table:
        """The whole table as Arrow (exports and tests; small tables)."""

    def table_schema(self, name: str) -> pa.Schema | None:
        """The Arrow schema table ``name`` has now, or None when it does not exist (or cannot be told).

        The sync reads it before a stream starts, so values that no longer fit a column's type are
        found record by record (and failed or quarantined) instead of failing the whole commit.
        """
        return None

    @abstractmethod
    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make every table of :meth:`tables` queryable by name in ``con`` (for the KPI engine)."""

    def close(self) -> None:
        """Release files and locks."""

    def __enter__(self) -> DestinationSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Destination(ABC):
    """A kind of destination, chosen by URI scheme."""

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    title: ClassVar[str] = ""

    @abstractmethod
    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> DestinationSession:
        """Open (creating if needed) the destination at ``uri``; relative paths from ``root``."""

    @staticmethod
    def path_uri(scheme: str, path: Path) -> str:
        """The URI of an absolute ``path`` (``duckdb:////abs/file.duckdb``)."""
        return f"{scheme}:///{path.resolve()}"


def uri_path(uri: str, root: Path | None) -> Path:
    """The path in a destination URI, as SQLAlchemy writes them.

    ``duckdb:///kpihub.duckdb`` and ``duckdb:kpihub.duckdb`` are relative to
    ``root`` (the project directory); ``duckdb:////data/kpihub.duckdb`` is absolute.
    """
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("?", 1)[0]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("/"):
            rest = rest[1:]
    path = Path(rest).expanduser()
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    return path


def uri_options(uri: str) -> dict[str, str]:
    """The query options of a destination URI: ``duckdb:///x.duckdb?memory_limit=1GB``."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl(uri.split("?", 1)[1])) if "?" in uri else {}


def quote(identifier: str) -> str:
    """A quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A SQL string literal (standard quoting: a quote is doubled)."""
    return "'" + value.replace("'", "''") + "'"


def dedup_last(table: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    """Keep the last row of each primary key, in the order read (a page may repeat a record)."""
    if not primary_key or table.num_rows < 2:
        return table
    import numpy as np

    indexed = table.select(list(primary_key)).append_column("__row", pa.array(np.arange(table.num_rows)))
    last = indexed.group_by(list(primary_key), use_threads=False).aggregate([("__row", "max")])
    if last.num_rows == table.num_rows:
        return table
    rows = last["__row_max"].combine_chunks()
    return table.take(pc.take(rows, pc.array_sort_indices(rows)))


def full_replace(write: TableWrite) -> bool:
    """A replace of the whole table: it may take the new data's schema even where that cannot evolve
    the old one (``kpihub sync --full-refresh`` after an incompatible type change)."""
    return write.mode == "replace" and not write.scope


class FileLock:
    """An exclusive, non-blocking ``flock``: one writer per pipeline at a time."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise DestinationError(
                f"another sync is already running on {self.what}{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
