"""Databases through ADBC (Arrow Database Connectivity): PostgreSQL, SQLite, any ADBC driver.

URIs::

    postgresql://user@host:5432/db?schema=analytics     adbc-driver-postgresql (bulk COPY of Arrow)
    sqlite:///path/to/file.sqlite                       adbc-driver-sqlite
    adbc+<driver>://<the driver's own URI>              any installed adbc_driver_<driver>
                                                        (snowflake, bigquery, flightsql …)

Query options other than ``schema`` go to the driver as database options
(``adbc+snowflake://…?adbc.snowflake.sql.warehouse=WH``).

Every commit is one database transaction: each table's rows are bulk-ingested
into a temporary load table (Arrow → COPY on PostgreSQL, no row-by-row
inserts), then moved into the target — appended; swapped for the rows in the
write's scope (replace; a range's bounds are bulk-loaded like rows, so they
compare as the column's own values do); or upserted on the primary key with ``INSERT … ON
CONFLICT … DO UPDATE`` (merge) — and the stream state is upserted into
``_kpihub_state`` before the single COMMIT. A staged replace
(``TableWrite.staged_from``) moves the staging table's rows into the target
with ``DELETE`` + ``INSERT … SELECT`` and drops the stage, in that same
transaction (the target table itself is kept, with its grants and the views
users build on it, unless its types must change).

Type mapping (Arrow → PostgreSQL / SQLite): string → text; int8–64 → smallint/
integer/bigint (SQLite integer); float → double precision (real); bool →
boolean (integer); decimal(p, s) → numeric(p, s) (SQLite text, exact);
date → date (text); timestamp with zone → timestamptz (text, ISO 8601, UTC);
timestamp → timestamp (text); lists and structs → jsonb (text holding JSON).
Reading back casts to the recorded Arrow schema, so values round-trip.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import threading
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

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
    masked_uri,
    quote,
    range_bounds,
    sql_string,
    uri_path,
)
from kpihub.destinations.formats import iso_timestamps, json_to_nested, nested_to_json
from kpihub.errors import DestinationError
from kpihub.failpoints import failpoint
from kpihub.secrets import first_line, redact

__all__ = ["ADBCDestination", "ADBCSession", "sql_type"]

STATE_TABLE = "_kpihub_state"
#: Each data table's Arrow schema (IPC, base64), so reads round-trip types the database lacks.
SCHEMA_TABLE = "_kpihub_schemas"
#: A range scope's bounds, bulk-loaded as values of their column's type (see ``ADBCSession._delete_scope``).
BOUNDS_TABLE = "_kpihub_bounds"
#: The SQLite ADBC driver's rows per batch (its default), restored after a whole-table read.
SQLITE_BATCH_ROWS = 1024


def sql_type(field_type: pa.DataType, dialect: str) -> str:
    """The column type a destination stores an Arrow type as (see the module docstring)."""
    t = field_type
    if dialect == "generic":
        return _generic_type(t)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "TEXT"
    if pa.types.is_boolean(t):
        return "BOOLEAN" if dialect == "postgres" else "INTEGER"
    if pa.types.is_integer(t):
        if dialect == "sqlite":
            return "INTEGER"
        return {8: "SMALLINT", 16: "SMALLINT", 32: "INTEGER"}.get(t.bit_width, "BIGINT")
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision}, {t.scale})" if dialect == "postgres" else "TEXT"
    if pa.types.is_date(t):
        return "DATE" if dialect == "postgres" else "TEXT"
    if pa.types.is_timestamp(t):
        if dialect != "postgres":
            return "TEXT"
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_nested(t):
        return "JSONB" if dialect == "postgres" else "TEXT"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BYTEA" if dialect == "postgres" else "BLOB"
    return "TEXT"


def _generic_type(t: pa.DataType) -> str:
    """ANSI SQL names every ADBC database understands."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    return "VARCHAR"


def _for_ingest(table: pa.Table, dialect: str) -> pa.Table:
    """What the driver can ingest: nested values as JSON text; SQLite's text stand-ins as text."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        if pa.types.is_nested(t):
            column = nested_to_json(column)
        elif dialect == "generic" and pa.types.is_decimal(t):
            column = pc.cast(column, pa.string())  # not every driver ingests decimals; CAST on insert
        elif dialect == "sqlite" and (pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)):
            if pa.types.is_timestamp(t) and t.tz:
                column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S+00:00")  # %S carries the fraction
            else:
                column = pc.cast(column, pa.string())
        elif dialect == "sqlite" and pa.types.is_boolean(t):
            column = pc.cast(column, pa.int8())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _from_database(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Database results cast back to the recorded Arrow schema (numeric text → decimal …)."""
    columns, names = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        numeric = getattr(column.type, "type_name", "") == "numeric"
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        target = schema.field(field.name).type if schema is not None and field.name in schema.names else None
        if target is None and numeric:  # a computed numeric (a KPI's Σ): a number, not text
            target = pa.float64()
        if target is not None and column.type != target:
            if pa.types.is_nested(target):
                column = json_to_nested(column, target)
            elif pa.types.is_timestamp(target) and pa.types.is_string(column.type):
                column = iso_timestamps(column, target)
            elif pa.types.is_boolean(target):
                column = pc.not_equal(column, 0)
            else:
                column = pc.cast(column, target)
        columns.append(column)
        names.append(field.name)
    return pa.table(columns, names=names)


def _lit(value: Any) -> str:
    """A SQL literal (standard quoting), so one statement text works with every driver's paramstyle."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return sql_string(str(value))


def _schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


class ADBCSession(DestinationSession):
    """An open database: one ADBC connection, one transaction per commit."""

    def __init__(
        self,
        uri: str,
        *,
        driver: str,
        target: str,
        dialect: str,
        schema: str | None,
        options: Mapping[str, str],
        read_only: bool = False,
        lock_path: Path | None = None,
    ) -> None:
        self.uri = masked_uri(uri)
        self.driver = driver
        self.dialect = dialect
        self.schema = schema
        self.read_only = read_only
        self._lock = threading.Lock()
        self._file_lock: FileLock | None = None
        self._advisory: int | None = None
        #: Logical table name → (schema, table) where it is not the destination's own schema.
        self._locations: dict[str, tuple[str | None, str]] = {}
        try:
            module = importlib.import_module(f"adbc_driver_{driver}.dbapi")
        except ImportError:
            raise DestinationError(
                f"destination {self.uri}: the ADBC driver for {driver!r} is not installed "
                f"(pip install adbc-driver-{driver.replace('_', '-')})"
            ) from None
        if lock_path is not None and not read_only:
            self._file_lock = FileLock(lock_path, f"database {str(lock_path.with_suffix(''))!r}")
            self._file_lock.acquire()
        try:
            self.con = module.connect(target, db_kwargs=dict(options)) if options else module.connect(target)
        except Exception as exc:  # drivers raise their own DBAPI errors
            self._release()
            raise DestinationError(f"cannot connect to {self.uri}: {first_line(exc)}") from None
        self.cur = self.con.cursor()
        try:
            if driver == "postgresql" and not read_only:
                self._take_advisory_lock()
            if schema and dialect != "sqlite" and not read_only:
                self._exec(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            if schema and driver == "postgresql":
                # Unqualified names (KPI SQL) resolve in the destination's schema.
                self._exec(f"SET search_path TO {quote(schema)}, public")
            if not read_only:
                self._exec(
                    f"CREATE TABLE IF NOT EXISTS {self._name(STATE_TABLE)} "
                    "(key VARCHAR(1000) PRIMARY KEY, value VARCHAR(1000000) NOT NULL, updated_at VARCHAR(40))"
                )
                self._exec(
                    f"CREATE TABLE IF NOT EXISTS {self._name(SCHEMA_TABLE)} "
                    "(name VARCHAR(1000) PRIMARY KEY, arrow_schema VARCHAR(10000000), db_schema VARCHAR(1000), "
                    "db_table VARCHAR(1000))"
                )
                self.con.commit()
            self._load_locations()
            self.con.commit()
        except BaseException:
            self.close()
            raise

    # -- helpers -----------------------------------------------------------------

    def _name(self, table: str) -> str:
        schema, name = self._locations.get(table, (self.schema, table))
        return f"{quote(schema)}.{quote(name)}" if schema else quote(name)

    def _load_locations(self) -> None:
        if SCHEMA_TABLE in self._all_tables():
            rows = self._rows(f"SELECT name, db_schema, db_table FROM {self._name(SCHEMA_TABLE)}")
            self._locations = {n: (sch, tbl) for n, sch, tbl in rows if tbl}

    def _place(self, write: TableWrite) -> None:
        """A raw stream table goes to a schema of its source (PostgreSQL): ``hubspot.contacts``."""
        if write.table in self._locations or not write.namespace or self.dialect != "postgres":
            return
        base = self.schema or "public"
        schema = write.namespace if base == "public" else f"{base}__{write.namespace}"
        name = write.table.removeprefix(f"{write.namespace}_") or write.table
        self._exec(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        self._locations[write.table] = (schema, name)

    def _exec(self, sql: str) -> None:
        try:
            self.cur.execute(sql)
        except Exception as exc:
            raise DestinationError(f"{self.uri}: {first_line(exc)}") from None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        self._exec(sql)
        return list(self.cur.fetchall())

    def _take_advisory_lock(self) -> None:
        # One writer per database (and schema): a second sync gets a clear error, never interleaves.
        key = zlib.crc32(f"kpihub:{self.schema or ''}".encode())
        (got,) = self._rows(f"SELECT pg_try_advisory_lock({key})")[0]
        if not got:
            raise DestinationError(f"another sync is already running on {self.uri}; wait for it to finish")
        self._advisory = key
        self.con.commit()

    # -- state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        return self.all_state().get(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if STATE_TABLE not in self._all_tables():
                return {}
            rows = self._rows(f"SELECT key, value FROM {self._name(STATE_TABLE)}")
            self.con.commit()
        return {k: json.loads(v) for k, v in rows}

    # -- writes ------------------------------------------------------------------

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise DestinationError(f"{self.uri} is open read-only")
        for write in writes:
            check_write(write)
        with self._lock:
            locations = dict(self._locations)
            try:
                for write in writes:
                    self._apply(write)
                failpoint("adbc.written")
                for key, value in state.items():
                    self._upsert(STATE_TABLE, "key", key, value=json.dumps(value, default=str))
                failpoint("adbc.before_commit")
                self.con.commit()
                failpoint("adbc.committed")
            except BaseException:
                self.con.rollback()
                self._locations = locations  # a rolled-back swap's stage is still where it was
                raise

    def _apply(self, write: TableWrite) -> None:
        if write.staged_from is not None:
            self._swap_in(write)
            write = dataclasses.replace(write, mode="append", scope=None, staged_from=None)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        self._place(write)
        table = self._name(write.table)
        known = self._recorded_schema(write.table)
        if known is not None and full_replace(write) and not evolves(write.table, known, data.schema):
            self._exec(f"DROP TABLE {table}")  # a full refresh rebuilds a table whose types changed
            known = None
        if known is None:
            merged_schema = self._create(write, data.schema)
        else:
            merged_schema = self._evolve(write.table, known, data.schema)
        constraint = tuple(json.loads((merged_schema.metadata or {}).get(b"kpihub.primary_key", b"[]")))
        # The session's temporary bulk-load table (not a staging table of staging_name(): it lives and dies
        # inside this write, in the session's temporary schema).
        stage = f"_kpihub_load_{write.table}"[:63]
        if write.mode == "replace":
            self._delete_scope(write.table, write.scope, columns_of(merged_schema, data.schema))
        if data.num_rows and write.mode != "merge" and self.dialect != "generic":
            # Appends (and a replace's new rows) go straight into the table: one bulk COPY, no staging.
            schema, name = self._locations.get(write.table, (self.schema, write.table))
            self._ingest(name, _for_ingest(data, self.dialect), mode="append", schema=schema)
        elif data.num_rows:
            self._ingest(stage, _for_ingest(data, self.dialect), mode="replace", temporary=True)
            cols = ", ".join(quote(c) for c in data.column_names)
            values = ", ".join(
                f"CAST({quote(f.name)} AS {sql_type(f.type, self.dialect)})"
                if self.dialect == "generic" and pa.types.is_decimal(f.type)
                else quote(f.name)
                for f in data.schema
            )
            insert = f"INSERT INTO {table} ({cols}) SELECT {values} FROM {quote(stage)}"
            if write.mode == "merge" and constraint != tuple(write.primary_key):
                # No key constraint to conflict on (the table began as append): delete, then insert.
                same = " AND ".join(f"{table}.{quote(k)} = s.{quote(k)}" for k in write.primary_key)
                self._exec(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {quote(stage)} AS s WHERE {same})")
            elif write.mode == "merge":
                keys = ", ".join(quote(k) for k in write.primary_key)
                updates = [c for c in data.column_names if c not in write.primary_key]
                action = (
                    "DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
                    if updates
                    else "DO NOTHING"
                )
                # SQLite needs a WHERE to tell ON CONFLICT from a join's ON.
                insert += f"{' WHERE true' if self.dialect == 'sqlite' else ''} ON CONFLICT ({keys}) {action}"
            self._exec(insert)
            self._exec(f"DROP TABLE {quote(stage)}")
        self._record_schema(write.table, merged_schema)

    def _swap_in(self, write: TableWrite) -> None:
        """The staging table's rows become the table's (in the write's scope), inside the transaction:
        delete the scope's rows, ``INSERT … SELECT`` the stage's (no row passes through Python), drop the
        stage and its schema record. A whole-table replace whose types cannot evolve rebuilds the table."""
        stage, target = write.staged_from or "", write.table
        stage_schema = self._recorded_schema(stage)
        if stage_schema is None:
            raise DestinationError(f"table {target!r}: staging table {stage!r} does not exist (nothing was staged)")
        self._place(write)
        table = self._name(target)
        known = self._recorded_schema(target)
        if known is not None and full_replace(write) and not evolves(target, known, stage_schema):
            self._exec(f"DROP TABLE {table}")
            known = None
        failpoint("adbc.swap")
        if known is None:
            merged = self._create(dataclasses.replace(write, mode="replace"), stage_schema)
        else:
            merged = self._evolve(target, known, stage_schema)
        self._delete_scope(target, write.scope, columns_of(merged, write.data.schema))
        cols = ", ".join(quote(f.name) for f in stage_schema)
        self._exec(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {self._name(stage)}")
        self._exec(f"DROP TABLE {self._name(stage)}")
        self._exec(f"DELETE FROM {self._name(SCHEMA_TABLE)} WHERE name = {_lit(stage)}")
        self._locations.pop(stage, None)
        self._record_schema(target, merged)
        failpoint("adbc.swapped")

    def _ingest(
        self, name: str, data: pa.Table, *, mode: str, temporary: bool = False, schema: str | None = None
    ) -> None:
        """Bulk-load Arrow (binary COPY on PostgreSQL), inside the open transaction."""
        try:
            if temporary:
                self.cur.adbc_ingest(name, data, mode=mode, temporary=True)
            else:
                self.cur.adbc_ingest(name, data, mode=mode, db_schema_name=schema)
        except Exception as exc:
            raise DestinationError(f"{self.uri}: bulk load into {name!r} failed: {first_line(exc)}") from None

    def _create(self, write: TableWrite, schema: pa.Schema) -> pa.Schema:
        columns = [f"{quote(f.name)} {sql_type(f.type, self.dialect)}" for f in schema]
        if write.mode == "merge" and write.primary_key and self.dialect != "generic" and not is_staging(write.table):
            # The key constraint that merge's INSERT … ON CONFLICT upserts on. (Not on a staging table:
            # its rows move into the target, whose own constraint, if any, guards the key.)
            columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in write.primary_key)})")
            schema = schema.with_metadata(
                {**(schema.metadata or {}), "kpihub.primary_key": json.dumps(write.primary_key)}
            )
        self._exec(f"CREATE TABLE IF NOT EXISTS {self._name(write.table)} ({', '.join(columns)})")
        return schema

    def _evolve(self, name: str, known: pa.Schema, incoming: pa.Schema) -> pa.Schema:
        """Add new columns; widen types the database can widen safely; refuse the rest, naming them."""
        merged = evolve_schema(name, known, incoming)
        for field in merged:
            if field.name not in known.names:
                sql = sql_type(field.type, self.dialect)
                self._exec(f"ALTER TABLE {self._name(name)} ADD COLUMN {quote(field.name)} {sql}")
            elif field.type != known.field(field.name).type and self.driver != "sqlite":
                # (SQLite columns hold any value: nothing to migrate.) The standard form, which
                # PostgreSQL, Snowflake and most others accept.
                sql = sql_type(field.type, self.dialect)
                if sql != sql_type(known.field(field.name).type, self.dialect):
                    self._exec(f"ALTER TABLE {self._name(name)} ALTER COLUMN {quote(field.name)} SET DATA TYPE {sql}")
        return merged

    def _delete_scope(self, table: str, scope: Mapping[str, Any] | None, schema: pa.Schema) -> None:
        """Delete the rows of ``table`` in ``scope`` (every row without one), inside the transaction.

        A range's bounds are bulk-loaded into a temporary table as values of their column's Arrow type, so
        the database stores them exactly as it stores that column's rows (a timestamptz, SQLite's ISO text,
        whatever a generic driver makes of a date) and compares like with like; a null is never in range.
        """
        check_scope(table, scope, schema)
        parts: list[str] = []
        bounds: dict[str, pa.Array] = {}
        for column, value in (scope or {}).items():
            if not isinstance(value, Between):
                parts.append(f"{quote(column)} = {_lit(value)}")
                continue
            column_type = schema.field(column).type
            if self.dialect == "sqlite" and pa.types.is_decimal(column_type):
                # SQLite keeps decimals as exact text, which sorts as text: a range over it would be wrong.
                raise DestinationError(
                    f"table {table!r}, column {column!r}: SQLite stores decimals as text; a range scope "
                    "cannot bound them (use an integer, float, date or timestamp column)"
                )
            parts.append(f"{quote(column)} IS NOT NULL")
            for op, bound in zip((">=", "<="), range_bounds(table, column, column_type, value), strict=True):
                if bound is None:
                    continue
                name = f"b{len(bounds)}"
                bounds[name] = pa.array([bound], column_type)
                ref = f"(SELECT {quote(name)} FROM {quote(BOUNDS_TABLE)})"
                if self.dialect == "generic" and pa.types.is_decimal(column_type):
                    ref = f"CAST({ref} AS {sql_type(column_type, self.dialect)})"  # ingested as text
                parts.append(f"{quote(column)} {op} {ref}")
        if bounds:
            self._ingest(BOUNDS_TABLE, _for_ingest(pa.table(bounds), self.dialect), mode="replace", temporary=True)
        self._exec(f"DELETE FROM {self._name(table)}{' WHERE ' + ' AND '.join(parts) if parts else ''}")
        if bounds:
            self._exec(f"DROP TABLE {quote(BOUNDS_TABLE)}")

    def table_schema(self, name: str) -> pa.Schema | None:
        with self._lock:
            return self._recorded_schema(name) if SCHEMA_TABLE in self._all_tables() else None

    def _recorded_schema(self, name: str) -> pa.Schema | None:
        rows = self._rows(f"SELECT arrow_schema FROM {self._name(SCHEMA_TABLE)} WHERE name = {_lit(name)}")
        return _schema_from_text(rows[0][0]) if rows else None

    def _record_schema(self, name: str, schema: pa.Schema) -> None:
        db_schema, db_table = self._locations.get(name, (None, ""))
        self._upsert(
            SCHEMA_TABLE, "name", name, arrow_schema=_schema_text(schema), db_schema=db_schema, db_table=db_table
        )

    def _upsert(self, table: str, key_column: str, key: str, **values: str | None) -> None:
        columns = [key_column, *values]
        literals = [_lit(key), *(_lit(v) for v in values.values())]
        if table == STATE_TABLE:
            columns.append("updated_at")
            literals.append("CAST(CURRENT_TIMESTAMP AS VARCHAR(40))")
        insert = f"INSERT INTO {self._name(table)} ({', '.join(columns)}) VALUES ({', '.join(literals)})"
        if self.dialect == "generic":  # no portable upsert: delete, then insert (same transaction)
            self._exec(f"DELETE FROM {self._name(table)} WHERE {key_column} = {_lit(key)}")
            self._exec(insert)
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            self._exec(f"{insert} ON CONFLICT ({key_column}) DO UPDATE SET {sets}")

    # -- reads -------------------------------------------------------------------

    def _all_tables(self) -> set[str]:
        if self.dialect == "sqlite":
            rows = self._rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self.dialect == "postgres":
            rows = self._rows(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = {_lit(self.schema or 'public')}"
            )
        else:  # ADBC's own catalogue call works with every driver
            objects = (
                self.con.adbc_get_objects(
                    depth="tables", db_schema_filter=self.schema, table_types_filter=["table", "TABLE", "BASE TABLE"]
                )
                .read_all()
                .to_pylist()
            )
            return {
                t["table_name"]
                for catalog in objects
                for schema in catalog["catalog_db_schemas"] or []
                for t in schema["db_schema_tables"] or []
            }
        return {r[0] for r in rows}

    def tables(self) -> list[str]:
        with self._lock:
            names = self._all_tables() | set(self._locations)
            self.con.commit()
        # kpihub's own tables (state, schemas, staging tables of a run in progress) are never the KPI engine's.
        return sorted(n for n in names if not n.startswith("_kpihub") and not is_staging(n))

    def read_table(self, name: str) -> pa.Table:
        with self._lock:
            schema = self._recorded_schema(name) if SCHEMA_TABLE in self._all_tables() else None
            if self.driver == "sqlite":
                # The SQLite driver types a column by the first batch it reads (1,024 rows) and fails on a
                # later value of another type: null there, strings after. One batch: every value counts.
                (count,) = self._rows(f"SELECT count(*) FROM {self._name(name)}")[0]
                self._sqlite_batch_rows(max(count, 1))
            try:
                self._exec(f"SELECT * FROM {self._name(name)}")
                table = self.cur.fetch_arrow_table()
            finally:
                if self.driver == "sqlite":
                    self._sqlite_batch_rows(SQLITE_BATCH_ROWS)
            self.con.commit()
        return _from_database(table, schema)

    def _sqlite_batch_rows(self, rows: int) -> None:
        self.cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(rows)})

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` (this database's dialect) and return Arrow; computed numerics as float64."""
        with self._lock:
            try:
                self._exec(sql)
                table = self.cur.fetch_arrow_table()
            finally:
                self.con.rollback()  # read-only work; also clears a failed statement's aborted transaction
        return _from_database(table, None)

    def set_time_zone(self, zone: str) -> None:
        """The session's zone, so dates cut from timestamps fall as in the reporting zone (KPI engine)."""
        with self._lock:
            self._exec(f"SET TIME ZONE {_lit(zone)}")
            self.con.commit()

    def attach(self, con: Any) -> None:
        # DuckDB reads the tables as Arrow (a copy: for KPIs in place, use --engine postgres).
        for name in self.tables():
            con.register(name, self.read_table(name))

    def close(self) -> None:
        try:
            if self._advisory is not None:
                self._exec(f"SELECT pg_advisory_unlock({self._advisory})")
            self.cur.close()
            self.con.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
            pass
        self._release()

    def _release(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


class ADBCDestination(Destination):
    """PostgreSQL, SQLite or any database with an ADBC driver."""

    name = "adbc"
    schemes = ("postgresql", "postgres", "sqlite", "adbc")
    title = "Databases through ADBC (PostgreSQL, SQLite, adbc+<driver>://…)"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> ADBCSession:
        scheme, rest = uri.split(":", 1)
        scheme = scheme.lower()
        driver = scheme[5:] if scheme.startswith("adbc+") else scheme
        driver = {"postgres": "postgresql"}.get(driver, driver)
        generic = scheme.startswith("adbc+")
        parts = urlsplit(f"x:{rest}")
        options = dict(parse_qsl(parts.query))
        schema = options.pop("schema", None)
        if driver == "postgresql":
            target = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
            return ADBCSession(
                uri,
                driver=driver,
                target=target,
                dialect="generic" if generic else "postgres",
                schema=schema or "public",
                options=options,
                read_only=read_only,
            )
        if driver == "sqlite":
            path = uri_path(f"sqlite:{rest}", root)
            if read_only and not path.exists():
                raise DestinationError(f"SQLite file {str(path)!r} does not exist (run `kpihub sync` first)")
            path.parent.mkdir(parents=True, exist_ok=True)
            return ADBCSession(
                uri,
                driver=driver,
                target=str(path),
                dialect="generic" if generic else "sqlite",
                schema=None,
                options=options,
                read_only=read_only,
                lock_path=path.with_name(path.name + ".lock"),
            )
        if generic:
            # Any other driver: the rest of the URI is the driver's own, passed through as is.
            return ADBCSession(
                uri,
                driver=driver,
                target=rest.split("?", 1)[0].removeprefix("//"),
                dialect="generic",
                schema=schema,
                options=options,
                read_only=read_only,
            )
        raise DestinationError(f"not an ADBC URI: {redact(uri)}")
