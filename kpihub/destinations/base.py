"""What a destination declares, and helpers every destination shares.

A destination writes chunks of Arrow tables and the sync state that covers
them **in one atomic commit** (a database transaction, or files renamed into
place before the state file that lists them). A sync killed at any point and
re-run therefore sees either the data and its state, or neither.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    "Destination",
    "DestinationSession",
    "STAGE_PREFIX",
    "FileLock",
    "TableWrite",
    "check_write",
    "dedup_last",
    "evolve_schema",
    "evolves",
    "full_replace",
    "is_staging",
    "masked_uri",
    "quote",
    "staged_table",
    "staging_name",
    "widened_type",
]

#: Tables whose name starts with this are staging tables (see :func:`staging_name`): never listed by
#: ``tables()``, never attached for the KPI engine.
STAGE_PREFIX = "_kpihub_stage__"
#: The longest table name every destination keeps whole (PostgreSQL's NAMEDATALEN - 1).
MAX_NAME = 63


@dataclass
class TableWrite:
    """One table's part of a commit.

    :param mode: ``append`` adds rows; ``replace`` swaps the rows in ``scope``
        (all rows when ``scope`` is None) for ``data``; ``merge`` replaces rows
        with the same primary key and adds the rest.
    :param scope: column values that bound a ``replace`` (e.g. ``{"source_id": "hubspot"}``),
        so one source can replace its rows in a canonical table others also feed.
    :param staged_from: the name of a staging table (:func:`staging_name`) whose rows, together with
        ``data``, become the new contents; mode ``replace`` only (with or without ``scope``). The
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
    so only a staging table may be named there) or a merge without a key."""
    if write.mode == "merge" and not write.primary_key:
        raise DestinationError(f"table {write.table!r}: merge needs a primary key")
    if write.staged_from is None:
        return
    if write.mode != "replace":
        raise DestinationError(f"table {write.table!r}: staged_from needs mode 'replace', not {write.mode!r}")
    if not is_staging(write.staged_from) or is_staging(write.table):
        raise DestinationError(
            f"table {write.table!r}: staged_from={write.staged_from!r} is not a staging table "
            f"(name it with staging_name(); its name starts with {STAGE_PREFIX!r})"
        )


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
