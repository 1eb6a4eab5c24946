"""File destinations: a directory of Parquet (``parquet:///dir``), Arrow IPC (``arrow:///dir``),
CSV (``csv:///dir``) or JSON Lines (``jsonl:///dir``) files.

Layout::

    dir/_kpihub/state.json     the commit point: stream state + each table's live files and schema
    dir/_kpihub/lock           one writer at a time
    dir/<table>/<table>-<n>-<id>.parquet                      one file per commit (per run and chunk)
    dir/<table>/date=2024-01-05/<table>-<n>-<id>.parquet      with ?partition=date (hive style)

With ``?partition=date`` a canonical table is split by the day of its time
column (UTC for timestamps), so tools that read hive partitions prune by day.

A commit writes new files under temporary names, fsyncs and renames them,
then atomically replaces ``state.json`` (the only place that says which files
are live). A crash before that leaves unreferenced files, which the next
writer deletes; readers only ever read the files ``state.json`` lists.
Merge rewrites only the files holding keys that the new rows replace.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kpihub.destinations.base import (
    Destination,
    DestinationSession,
    FileLock,
    TableWrite,
    dedup_last,
    evolve_schema,
    evolves,
    full_replace,
    quote,
    uri_options,
    uri_path,
)
from kpihub.destinations.formats import FORMATS, FileFormat
from kpihub.destinations.stores import LocalStore, Store, open_store
from kpihub.errors import DestinationError
from kpihub.failpoints import failpoint
from kpihub.model import CANONICAL_TABLES

__all__ = ["ParquetDestination", "ParquetSession"]

MANIFEST_VERSION = 1


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
#: Rows of rewritten files gathered into one new file during a merge.
REWRITE_ROWS = 100_000
MAX_VIEW_FILES = 64


STATE_FILE = "_kpihub/state.json"


class ParquetSession(DestinationSession):
    def __init__(
        self,
        store: Store | Path,
        *,
        read_only: bool = False,
        fmt: str = "parquet",
        partition: str | None = None,
    ) -> None:
        store = LocalStore(store) if isinstance(store, Path) else store
        if fmt not in FORMATS:
            raise DestinationError(f"unknown file format {fmt!r} (choose from {', '.join(FORMATS)})")
        if partition not in (None, "date"):
            raise DestinationError(f"{store.where}: partition={partition!r} is not supported (use partition=date)")
        self.store = store
        self.root = store.root if isinstance(store, LocalStore) else None
        self.format: FileFormat = FORMATS[fmt]
        self.partition = partition
        self.uri = f"{fmt}:///{store.where}" if isinstance(store, LocalStore) else f"{store.where} ({fmt})"
        self.read_only = read_only
        self._lock = threading.Lock()
        self._file_lock: FileLock | None = None
        if not read_only:
            self._file_lock = store.lock(f"file destination {store.where!r}")
        elif not store.exists(STATE_FILE):
            raise DestinationError(f"no kpihub data in {store.where!r} (run `kpihub sync` first)")
        self.manifest = self._load()
        if not read_only:
            self._remove_orphans()

    def _load(self) -> dict[str, Any]:
        where = f"{self.store.where}/{STATE_FILE}"
        try:
            if not self.store.exists(STATE_FILE):
                return {"version": MANIFEST_VERSION, "streams": {}, "tables": {}}
            manifest = json.loads(self.store.read_bytes(STATE_FILE))
        except (OSError, ValueError) as exc:
            raise DestinationError(f"{where}: unreadable state file: {exc}") from None
        if manifest.get("version") != MANIFEST_VERSION:
            raise DestinationError(f"{where}: unsupported state version {manifest.get('version')!r}")
        return manifest

    def _remove_orphans(self) -> None:
        live = {f for t in self.manifest["tables"].values() for f in t["files"]}
        for rel in self.store.files():
            name = rel.rsplit("/", 1)[-1]
            if rel.startswith("_kpihub/"):
                if name.startswith(".tmp-"):
                    self.store.delete(rel)
                continue
            if (name.endswith(self.format.suffix) or name.startswith(".tmp-")) and rel not in live:
                self.store.delete(rel)

    # -- state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        return self.manifest["streams"].get(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest["streams"])

    # -- writes ------------------------------------------------------------------

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise DestinationError(f"{self.uri} is open read-only")
        with self._lock:
            manifest = json.loads(json.dumps(self.manifest))
            pending: list[Any] = []  # staged files, live once published and listed in the manifest
            obsolete: list[str] = []
            for write in writes:
                self._plan(write, manifest, pending, obsolete)
            failpoint("files.staged")
            self.store.publish(pending)
            failpoint("files.renamed")
            manifest["streams"].update(json.loads(json.dumps(state, default=str)))
            encoded = json.dumps(manifest, indent=1, sort_keys=True).encode()
            failpoint("files.state_staged")
            self.store.replace(STATE_FILE, encoded)  # the commit point
            failpoint("files.committed")
            self.manifest = manifest
            for rel in obsolete:
                self.store.delete(rel)

    def _plan(self, write: TableWrite, manifest: dict[str, Any], pending: list[Any], obsolete: list[str]) -> None:
        if write.mode == "merge" and not write.primary_key:
            raise DestinationError(f"table {write.table!r}: merge needs a primary key")
        entry = manifest["tables"].setdefault(write.table, {"files": [], "seq": 0, "schema": None})
        # Check the schema change first: an incompatible type fails before any file is written.
        current = _decode(entry["schema"])
        if current is not None and full_replace(write) and not evolves(write.table, current, write.data.schema):
            current = None  # a full refresh rebuilds a table whose types changed
        merged_schema = _merge_schema(write.table, current, write.data.schema)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        keep: list[str] = []
        touched = self._touched(entry["files"], write, data, current) if write.mode != "append" else set()
        # The rows that survive in rewritten files are gathered into few files (at most REWRITE_ROWS
        # in memory at once): merges compact a table as they go instead of multiplying small files.
        survivors: list[pa.Table] = []
        gathered = 0

        def stage_survivors() -> None:
            nonlocal survivors, gathered
            if survivors:
                merged = pa.concat_tables(survivors, promote_options="permissive")
                keep.extend(self._stage(merged, write.table, entry, pending))
            survivors, gathered = [], 0

        for rel in entry["files"]:
            if write.mode == "append" or rel not in touched:
                keep.append(rel)
                continue
            obsolete.append(rel)
            if write.mode == "replace" and not write.scope:
                continue
            remaining = _without(self._read_file(rel, current), data, write)
            if remaining.num_rows:
                survivors.append(remaining)
                gathered += remaining.num_rows
            if gathered >= REWRITE_ROWS:
                stage_survivors()
        stage_survivors()
        if data.num_rows:
            keep.extend(self._stage(data, write.table, entry, pending))
        entry["files"] = keep
        entry["schema"] = merged_schema

    def _touched(self, files: list[str], write: TableWrite, data: pa.Table, current: pa.Schema | None) -> set[str]:
        """Live files holding rows the write replaces, found by reading key (or scope) columns only."""
        if write.mode == "replace" and not write.scope:
            return set(files)
        columns = list(write.scope or {}) if write.mode == "replace" else list(write.primary_key)
        if self.format.name == "parquet" and files:
            # One multi-threaded scan of every file's key columns (a partitioned table has many files).
            dataset = self._dataset(files, current)
            present = [c for c in columns if current is None or c in current.names]
            probe = dataset.to_table(columns=[*present, "__filename"])
            hits = probe.filter(pc.invert(_survives(probe.drop_columns(["__filename"]), data, write)))
            root = self.store.arrow_filesystem()[1] + "/"
            return {name.removeprefix(root) for name in pc.unique(hits["__filename"]).to_pylist()}
        out = set()
        for rel in files:
            with self._local(rel) as path:
                probe = self.format.read_columns(path, columns, current)
            if _without(probe, data, write).num_rows != probe.num_rows:
                out.add(rel)
        return out

    def _stage(self, data: pa.Table, table: str, entry: dict[str, Any], pending: list[Any]) -> list[str]:
        """Write ``data`` as new files (one per partition), live only once published; return their paths."""
        out = []
        for partition, part in self._partitions(table, data):
            entry["seq"] += 1
            name = f"{table}-{entry['seq']:06d}-{uuid.uuid4().hex[:8]}{self.format.suffix}"
            rel = f"{table}/{partition}/{name}" if partition else f"{table}/{name}"
            pending.append(self.store.stage(rel, partial(self.format.write, part)))
            out.append(rel)
        return out

    def _partitions(self, table: str, data: pa.Table) -> list[tuple[str, pa.Table]]:
        column = CANONICAL_TABLES[table].time_column if self.partition and table in CANONICAL_TABLES else None
        if column is None or column not in data.column_names:
            return [("", data)]
        values = data[column]
        days = pc.cast(values, pa.date32()) if pa.types.is_timestamp(values.type) else values
        labels = pc.fill_null(pc.cast(days, pa.string()), HIVE_NULL)
        out = []
        for label in pc.unique(labels).to_pylist():
            out.append((f"date={label}", data.filter(pc.equal(labels, label))))
        return sorted(out)

    # -- reads -------------------------------------------------------------------

    def tables(self) -> list[str]:
        return sorted(self.manifest["tables"])

    def files(self, name: str) -> list[str]:
        """The live files of table ``name``, relative to the destination's root."""
        return list(self.manifest["tables"].get(name, {}).get("files", []))

    def local_files(self, name: str) -> list[Path] | None:
        """The live files of ``name`` as local paths (None for an object store)."""
        if self.root is None:
            return None
        return [self.root / rel for rel in self.files(name)]

    def _dataset(self, files: list[str], schema: pa.Schema | None) -> Any:
        # Imported here: pyarrow.dataset imports pandas when installed (~0.3 s on every `kpihub sync`).
        import pyarrow.dataset as ds

        fs, base = self.store.arrow_filesystem()
        return ds.dataset([f"{base}/{rel}" for rel in files], filesystem=fs, format="parquet", schema=schema)

    @contextmanager
    def _local(self, rel: str) -> Iterator[Path]:
        """A local path to read ``rel`` from (a temporary copy when the store is remote)."""
        path = self.store.local(rel)
        if path is not None:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="kpihub-read-") as tmp:
            yield self.store.fetch(rel, Path(tmp))

    def _read_file(self, rel: str, schema: pa.Schema | None) -> pa.Table:
        """One file as the table's current ``schema`` (older files keep their own, narrower types)."""
        if self.format.name == "parquet" and self.root is None:
            fs, base = self.store.arrow_filesystem()
            return _conform(pq.read_table(f"{base}/{rel}", filesystem=fs), schema)
        with self._local(rel) as path:
            return _conform(self.format.read(path, _file_schema(schema, path)), schema)

    def table_schema(self, name: str) -> pa.Schema | None:
        return _decode(self.manifest["tables"].get(name, {}).get("schema"))

    def read_table(self, name: str) -> pa.Table:
        files = self.files(name)
        schema = self.table_schema(name)
        if not files:
            return schema.empty_table() if schema is not None else pa.table({})
        tables = [self._read_file(rel, schema) for rel in files]
        return pa.concat_tables(tables, promote_options="permissive")

    def attach(self, con: Any) -> None:
        for name in self.tables():
            files = self.local_files(name) or []
            if self.root is None and self.files(name) and self.format.name == "parquet":
                # An object store: DuckDB scans a pyarrow dataset (no DuckDB extension to download).
                con.register(name, self._dataset(self.files(name), self.table_schema(name)))
            elif files and self.format.name != "parquet":
                con.register(name, self.read_table(name))  # text formats: typed by the recorded schema
            elif files:
                listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                scan = f"SELECT * FROM read_parquet([{listing}], union_by_name=true)"
                # A view re-reads every file footer at each query: fine for a few files, slow for the
                # thousands a day-partitioned table has, which are read into DuckDB once instead.
                kind = "VIEW" if len(files) <= MAX_VIEW_FILES else "TEMP TABLE"
                con.execute(f"CREATE OR REPLACE {kind} {quote(name)} AS {scan}")
            else:
                schema = self.table_schema(name)
                if schema is not None:
                    con.register(f"__empty_{name}", schema.empty_table())
                    con.execute(f"CREATE OR REPLACE TABLE {quote(name)} AS SELECT * FROM {quote('__empty_' + name)}")

    def close(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


def _survives(existing: pa.Table, new: pa.Table, write: TableWrite) -> pa.Array:
    """A mask of the rows of ``existing`` that ``write`` leaves in place."""
    if write.mode == "replace":
        mask = None
        for column, value in (write.scope or {}).items():
            if column not in existing.column_names:
                return pa.array([True] * existing.num_rows)
            cond = pc.equal(existing[column], pa.scalar(value))
            mask = cond if mask is None else pc.and_(mask, cond)
        return pc.invert(pc.fill_null(mask, False)) if mask is not None else pa.array([False] * existing.num_rows)
    keys = list(write.primary_key)
    if len(keys) == 1:
        return pc.invert(pc.is_in(existing[keys[0]], value_set=new[keys[0]].combine_chunks()))
    marked = existing.select(keys).append_column("__row", pa.array(range(existing.num_rows), pa.int64()))
    gone = marked.join(new.select(keys), keys=keys, join_type="left semi")["__row"]
    return pc.invert(pc.is_in(pa.array(range(existing.num_rows), pa.int64()), value_set=gone.combine_chunks()))


def _without(existing: pa.Table, new: pa.Table, write: TableWrite) -> pa.Table:
    """Rows of ``existing`` that survive ``write`` (outside the replace scope / key set)."""
    return existing.filter(_survives(existing, new, write))


def _conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    if schema is None:
        return table
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.table(columns, schema=schema)


def _decode(encoded: str | None) -> pa.Schema | None:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded))) if encoded else None


def _file_schema(schema: pa.Schema | None, path: Path) -> pa.Schema | None:
    """The schema a text file was written with: the current one minus columns added after it."""
    if schema is None or path.suffix == ".parquet" or path.suffix == ".arrow":
        return schema
    with open(path, "rb") as fh:
        head = fh.readline().decode(errors="replace")
    if path.suffix == ".csv":
        names = [n.strip('"') for n in head.rstrip("\r\n").split(",")]
        return pa.schema([schema.field(n) for n in names if n in schema.names])
    return schema


def _merge_schema(table: str, current: pa.Schema | None, schema: pa.Schema) -> str:
    """The table's schema after ``schema``'s rows land, encoded for the manifest (see :func:`_decode`)."""
    if current is not None:
        schema = evolve_schema(table, current, schema)
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


class ParquetDestination(Destination):
    """A directory of files, one sub-directory per table: Parquet, Arrow IPC, CSV or JSON Lines."""

    name = "files"
    schemes = ("parquet", "arrow", "csv", "jsonl", "s3", "gs", "gcs", "file")
    title = "Parquet / Arrow IPC / CSV / JSON Lines files in a directory or an object store (?partition=date)"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> ParquetSession:
        scheme = uri.split(":", 1)[0].lower()
        options = uri_options(uri)
        if scheme in FORMATS:
            store: Store = LocalStore(uri_path(uri, root))
            fmt = scheme
        else:  # s3://bucket/prefix?format=jsonl&partition=date&region=… (the rest configures pyarrow's filesystem)
            store = open_store(uri.split("?", 1)[0], options, root)
            fmt = options.get("format", "parquet")
        return ParquetSession(store, read_only=read_only, fmt=fmt, partition=options.get("partition"))
