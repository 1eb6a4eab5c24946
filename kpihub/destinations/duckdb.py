"""DuckDB file destination, the embedded default: ``duckdb:///path/to/file.duckdb``.

Each commit is one DuckDB transaction: table changes and the state rows in
``_kpihub_state`` become durable together or not at all. A staged replace
(``TableWrite.staged_from``) renames the staging table into place (whole
table) or moves its rows with ``INSERT … SELECT`` (scoped), in that same
transaction.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kpihub.destinations.base import (
    Between,
    Destination,
    DestinationSession,
    FileLock,
    TableWrite,
    check_scope,
    check_write,
    columns_of,
    dedup_last,
    evolve_schema,
    evolves,
    full_replace,
    is_staging,
    quote,
    range_bounds,
    sql_string,
    uri_options,
    uri_path,
)
from kpihub.errors import DestinationError
from kpihub.failpoints import failpoint

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBDestination", "DuckDBSession", "fetch_arrow", "quote"]

STATE_TABLE = "_kpihub_state"


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run ``sql`` and return the result as an Arrow table (DuckDB 1.x and 2.x)."""
    relation = con.sql(sql)
    method = getattr(relation, "to_arrow_table", None) or relation.arrow
    return method()


#: DuckDB caches table blocks up to 80 % of RAM by default; a sync's memory should
#: stay flat however large the database grows, so the writer gets a bounded pool.
DEFAULT_MEMORY_LIMIT = "128MB"
#: What a writer keeps cached between commits. The pool keeps every block a commit wrote until it
#: is full (2M contacts: 92 MB more than 200k); a sync does not read them again but for the next
#: merge's key scan, which the operating system's page cache serves as well.
RESIDENT_BETWEEN_COMMITS = "16MB"


class DuckDBSession(DestinationSession):
    def __init__(self, path: Path, *, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> None:
        self.uri = f"duckdb:///{path}"
        self.path = path
        self.read_only = read_only
        self.memory_limit = memory_limit
        self._file_lock: FileLock | None = None
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One writer per pipeline, also within a process (DuckDB only locks across processes).
            self._file_lock = FileLock(path.with_name(path.name + ".lock"), f"DuckDB file {str(path)!r}")
            self._file_lock.acquire()
        elif not path.exists():
            raise DestinationError(f"DuckDB file {str(path)!r} does not exist (run `kpihub sync` first)")
        import duckdb  # here, not at import: a sync to another destination does not load its 14 MB

        try:
            self.con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": memory_limit})
        except duckdb.IOException as exc:
            self._release()
            if "lock" in str(exc).lower():
                raise DestinationError(
                    f"DuckDB file {str(path)!r} is already in use by another process (a running sync?)"
                ) from None
            raise DestinationError(f"cannot open DuckDB file {str(path)!r}: {exc}") from None
        # Arrow results carry the session zone; kpihub's timestamps are UTC whatever the host says.
        self.con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()
        if not read_only:
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
                "(key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, updated_at TIMESTAMPTZ DEFAULT now())"
            )

    # -- state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        return self.all_state().get(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if not self._has_table(STATE_TABLE):
                return {}
            rows = self.con.execute(f"SELECT key, value FROM {STATE_TABLE}").fetchall()
        return {k: json.loads(v) for k, v in rows}

    # -- writes ------------------------------------------------------------------

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise DestinationError(f"{self.uri} is open read-only")
        for write in writes:
            check_write(write)
        with self._lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                for write in writes:
                    self._apply(write)
                failpoint("duckdb.written")
                for key, value in state.items():
                    con.execute(
                        f"INSERT OR REPLACE INTO {STATE_TABLE} (key, value, updated_at) VALUES (?, ?, now())",
                        [key, json.dumps(value, default=str)],
                    )
                failpoint("duckdb.before_commit")
                con.execute("COMMIT")
                failpoint("duckdb.committed")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                try:
                    con.unregister("__kpihub_new")
                except sys.modules["duckdb"].Error:  # loaded: this session holds a connection
                    pass
            self._shrink_pool()  # after the transaction: what it wrote is durable, whatever this does

    def _shrink_pool(self) -> None:
        """Evict what the commit left cached: lowering the limit makes DuckDB evict unpinned blocks
        down to it (or refuse, changing nothing), and the limit goes back for the next commit."""
        duckdb = sys.modules["duckdb"]
        try:
            self.con.execute(f"SET memory_limit = '{RESIDENT_BETWEEN_COMMITS}'")
        except duckdb.Error:  # blocks still pinned: they stay, the next commit tries again
            pass
        finally:
            self.con.execute(f"SET memory_limit = {sql_string(self.memory_limit)}")

    def _apply(self, write: TableWrite) -> None:
        if write.staged_from is not None:
            self._swap_in(write)
            write = dataclasses.replace(write, mode="append", scope=None, staged_from=None)
        con = self.con
        table = quote(write.table)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        con.register("__kpihub_new", data)
        exists = self._has_table(write.table)
        if exists and full_replace(write) and not evolves(write.table, self._schema(write.table), data.schema):
            con.execute(f"DROP TABLE {table}")  # a full refresh rebuilds a table whose types changed
        if not self._has_table(write.table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM __kpihub_new LIMIT 0")
        else:
            self._evolve(write.table, data.schema)
        if write.mode == "replace":
            where, params = _scope_clause(write.table, write.scope, self._schema(write.table))
            con.execute(f"DELETE FROM {table}{where}", params)
        elif write.mode == "merge":
            on = " AND ".join(f"{table}.{quote(k)} = n.{quote(k)}" for k in write.primary_key)
            con.execute(f"DELETE FROM {table} USING __kpihub_new AS n WHERE {on}")
        if data.num_rows:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __kpihub_new")

    def _swap_in(self, write: TableWrite) -> None:
        """The staging table's rows become the table's (in the write's scope), inside the transaction:
        the whole table is dropped and the stage renamed into place (no row is copied); a scoped replace
        deletes the scope's rows and moves the stage's in with ``INSERT … SELECT``."""
        stage, target, con = write.staged_from or "", write.table, self.con
        if not self._has_table(stage):
            raise DestinationError(f"table {target!r}: staging table {stage!r} does not exist (nothing was staged)")
        if write.scope:  # a scope on a column neither the table nor the stage has: refused before anything moves
            current = self._schema(target) if self._has_table(target) else None
            check_scope(target, write.scope, columns_of(current, self._schema(stage), write.data.schema))
        failpoint("duckdb.swap")
        if full_replace(write) or not self._has_table(target):
            if self._has_table(target):
                con.execute(f"DROP TABLE {quote(target)}")
            con.execute(f"ALTER TABLE {quote(stage)} RENAME TO {quote(target)}")
        else:
            self._evolve(target, self._schema(stage), source=stage)
            where, params = _scope_clause(target, write.scope, self._schema(target))
            con.execute(f"DELETE FROM {quote(target)}{where}", params)
            con.execute(f"INSERT INTO {quote(target)} BY NAME SELECT * FROM {quote(stage)}")
            con.execute(f"DROP TABLE {quote(stage)}")
        failpoint("duckdb.swapped")

    def _schema(self, name: str) -> pa.Schema:
        return fetch_arrow(self.con, f"SELECT * FROM {quote(name)} LIMIT 0").schema

    def table_schema(self, name: str) -> pa.Schema | None:
        with self._lock:
            return self._schema(name) if self._has_table(name) else None

    def _evolve(self, name: str, incoming: pa.Schema, source: str = "__kpihub_new") -> None:
        """Add columns the new data (in relation ``source``) has and the table lacks; widen types safely;
        refuse the rest."""
        existing = self._schema(name)
        merged = evolve_schema(name, existing, incoming)
        incoming_types = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE {quote(source)}").fetchall()}
        for field in merged:
            if field.name not in existing.names:
                column_type = incoming_types[field.name]
                self.con.execute(f"ALTER TABLE {quote(name)} ADD COLUMN {quote(field.name)} {column_type}")
            elif field.type != existing.field(field.name).type:
                duck = _duckdb_type(field.type)
                self.con.execute(f"ALTER TABLE {quote(name)} ALTER COLUMN {quote(field.name)} TYPE {duck}")

    def _has_table(self, name: str) -> bool:
        rows = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [name]
        ).fetchall()
        return bool(rows and rows[0][0])

    # -- reads -------------------------------------------------------------------

    def tables(self) -> list[str]:
        with self._lock:
            rows = self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        # kpihub's own tables (state, staging tables of a run in progress) are never the KPI engine's.
        return [r[0] for r in rows if not r[0].startswith("_kpihub") and not is_staging(r[0])]

    def read_table(self, name: str) -> pa.Table:
        with self._lock:
            return fetch_arrow(self.con, f"SELECT * FROM {quote(name)}")

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        if con is self.con:
            return
        con.execute(f"ATTACH {sql_string(str(self.path))} AS kpihub_data (READ_ONLY)")
        for name in self.tables():
            con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS SELECT * FROM kpihub_data.{quote(name)}")

    def close(self) -> None:
        self.con.close()
        self._release()

    def _release(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


def _duckdb_type(t: pa.DataType) -> str:
    """DuckDB's name for the widened types :func:`widened_type` can produce."""
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_integer(t):
        return {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[t.bit_width]
    if pa.types.is_floating(t):
        return "DOUBLE" if t.bit_width == 64 else "FLOAT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    raise DestinationError(f"no DuckDB type for {t}")


def _scope_clause(table: str, scope: Mapping[str, Any] | None, schema: pa.Schema) -> tuple[str, list[Any]]:
    """The ``WHERE`` of a scoped replace and its parameters: equalities, and ranges (both ends inclusive;
    a null compares as unknown, so it is never deleted by a range)."""
    if not scope:
        return "", []
    check_scope(table, scope, schema)
    parts: list[str] = []
    params: list[Any] = []
    for column, value in scope.items():
        if not isinstance(value, Between):
            parts.append(f"{quote(column)} = ?")
            params.append(value)
            continue
        low, high = range_bounds(table, column, schema.field(column).type, value)
        parts.append(f"{quote(column)} IS NOT NULL")
        for op, bound in ((">=", low), ("<=", high)):
            if bound is not None:
                parts.append(f"{quote(column)} {op} ?")
                params.append(bound)
    return " WHERE " + " AND ".join(parts), params


class DuckDBDestination(Destination):
    """A DuckDB database file (the embedded default)."""

    name = "duckdb"
    schemes = ("duckdb",)
    title = "DuckDB database file"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> DuckDBSession:
        options = uri_options(uri)
        return DuckDBSession(
            uri_path(uri, root), read_only=read_only, memory_limit=options.get("memory_limit", DEFAULT_MEMORY_LIMIT)
        )
