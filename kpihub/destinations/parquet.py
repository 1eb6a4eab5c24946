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
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from kpihub.destinations.base import (
    Destination,
    DestinationSession,
    FileLock,
    TableWrite,
    dedup_last,
    evolve_schema,
    evolves,
    fsync_dir,
    full_replace,
    quote,
    uri_options,
    uri_path,
)
from kpihub.destinations.formats import FORMATS, FileFormat
from kpihub.errors import DestinationError
from kpihub.failpoints import failpoint
from kpihub.model import CANONICAL_TABLES

__all__ = ["ParquetDestination", "ParquetSession"]

MANIFEST_VERSION = 1


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
MAX_VIEW_FILES = 64


class ParquetSession(DestinationSession):
    def __init__(
        self, root: Path, *, read_only: bool = False, fmt: str = "parquet", partition: str | None = None
    ) -> None:
        if fmt not in FORMATS:
            raise DestinationError(f"unknown file format {fmt!r} (choose from {', '.join(FORMATS)})")
        if partition not in (None, "date"):
            raise DestinationError(f"{fmt}:///{root}: partition={partition!r} is not supported (use partition=date)")
        self.root = root
        self.format: FileFormat = FORMATS[fmt]
        self.partition = partition
        self.uri = f"{fmt}:///{root}"
        self.read_only = read_only
        self.meta_dir = root / "_kpihub"
        self.state_file = self.meta_dir / "state.json"
        self._lock = threading.Lock()
        self._file_lock: FileLock | None = None
        if not read_only:
            self.meta_dir.mkdir(parents=True, exist_ok=True)
            self._file_lock = FileLock(self.meta_dir / "lock", f"Parquet destination {str(root)!r}")
            self._file_lock.acquire()
        elif not self.state_file.exists():
            raise DestinationError(f"no kpihub data in {str(root)!r} (run `kpihub sync` first)")
        self.manifest = self._load()
        if not read_only:
            self._remove_orphans()

    def _load(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"version": MANIFEST_VERSION, "streams": {}, "tables": {}}
        try:
            manifest = json.loads(self.state_file.read_text())
        except (OSError, ValueError) as exc:
            raise DestinationError(f"{self.state_file}: unreadable state file: {exc}") from None
        if manifest.get("version") != MANIFEST_VERSION:
            raise DestinationError(f"{self.state_file}: unsupported state version {manifest.get('version')!r}")
        return manifest

    def _remove_orphans(self) -> None:
        live = {f for t in self.manifest["tables"].values() for f in t["files"]}
        for file in self.root.rglob("*"):
            rel = file.relative_to(self.root).as_posix()
            if not file.is_file() or rel.startswith("_kpihub/"):
                continue
            if (file.suffix == self.format.suffix or file.name.startswith(".tmp-")) and rel not in live:
                file.unlink()

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
            pending: list[tuple[Path, Path]] = []  # (temp, final)
            obsolete: list[str] = []
            for write in writes:
                self._plan(write, manifest, pending, obsolete)
            failpoint("files.staged")
            for tmp, final in pending:
                os.replace(tmp, final)
            for directory in {final.parent for _, final in pending}:
                fsync_dir(directory)
            failpoint("files.renamed")
            manifest["streams"].update(json.loads(json.dumps(state, default=str)))
            tmp_state = self.meta_dir / f".state-{uuid.uuid4().hex}.json"
            with open(tmp_state, "w") as fh:
                json.dump(manifest, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            failpoint("files.state_staged")
            os.replace(tmp_state, self.state_file)  # the commit point
            fsync_dir(self.meta_dir)
            failpoint("files.committed")
            self.manifest = manifest
            for rel in obsolete:
                try:
                    (self.root / rel).unlink()
                except FileNotFoundError:
                    pass

    def _plan(
        self, write: TableWrite, manifest: dict[str, Any], pending: list[tuple[Path, Path]], obsolete: list[str]
    ) -> None:
        if write.mode == "merge" and not write.primary_key:
            raise DestinationError(f"table {write.table!r}: merge needs a primary key")
        entry = manifest["tables"].setdefault(write.table, {"files": [], "seq": 0, "schema": None})
        # Check the schema change first: an incompatible type fails before any file is written.
        current = _decode(entry["schema"])
        if current is not None and full_replace(write) and not evolves(write.table, current, write.data.schema):
            entry["schema"] = current = None  # a full refresh rebuilds a table whose types changed
        merged_schema = _merge_schema(write.table, entry["schema"], write.data.schema)
        table_dir = self.root / write.table
        table_dir.mkdir(parents=True, exist_ok=True)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        keep: list[str] = []
        touched = self._touched(entry["files"], write, data, current) if write.mode != "append" else set()
        for rel in entry["files"]:
            if write.mode == "append" or rel not in touched:
                keep.append(rel)
                continue
            path = self.root / rel
            if write.mode == "replace" and not write.scope:
                obsolete.append(rel)
                continue
            existing = _conform(self.format.read(path, _file_schema(current, path)), current)
            remaining = _without(existing, data, write)
            obsolete.append(rel)
            if remaining.num_rows:
                keep.extend(self._stage(remaining, write.table, entry, pending))
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
            paths = [str(self.root / rel) for rel in files]
            dataset = ds.dataset(paths, format="parquet", schema=current)
            present = [c for c in columns if current is None or c in current.names]
            probe = dataset.to_table(columns=[*present, "__filename"])
            hits = probe.filter(pc.invert(_survives(probe.drop_columns(["__filename"]), data, write)))
            root = str(self.root) + "/"
            return {name.removeprefix(root) for name in pc.unique(hits["__filename"]).to_pylist()}
        out = set()
        for rel in files:
            probe = self.format.read_columns(self.root / rel, columns, current)
            if _without(probe, data, write).num_rows != probe.num_rows:
                out.add(rel)
        return out

    def _stage(self, data: pa.Table, table: str, entry: dict[str, Any], pending: list[tuple[Path, Path]]) -> list[str]:
        """Write ``data`` as new files (one per partition) under temporary names; return their paths."""
        out = []
        for partition, part in self._partitions(table, data):
            entry["seq"] += 1
            name = f"{table}-{entry['seq']:06d}-{uuid.uuid4().hex[:8]}{self.format.suffix}"
            directory = self.root / table / partition if partition else self.root / table
            directory.mkdir(parents=True, exist_ok=True)
            final = directory / name
            tmp = final.with_name(f".tmp-{name}")
            self.format.write(part, tmp)
            pending.append((tmp, final))
            out.append(final.relative_to(self.root).as_posix())
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

    def files(self, name: str) -> list[Path]:
        return [self.root / rel for rel in self.manifest["tables"].get(name, {}).get("files", [])]

    def table_schema(self, name: str) -> pa.Schema | None:
        return _decode(self.manifest["tables"].get(name, {}).get("schema"))

    def read_table(self, name: str) -> pa.Table:
        files = self.files(name)
        schema = self.table_schema(name)
        if not files:
            return schema.empty_table() if schema is not None else pa.table({})
        # Older files keep their own (narrower) types: read each as the table's current schema.
        tables = [_conform(self.format.read(f, _file_schema(schema, f)), schema) for f in files]
        return pa.concat_tables(tables, promote_options="permissive")

    def attach(self, con: Any) -> None:
        for name in self.tables():
            files = self.files(name)
            if files and self.format.name != "parquet":
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


def _merge_schema(table: str, encoded: str | None, schema: pa.Schema) -> str:
    if encoded:
        old = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))
        schema = evolve_schema(table, old, schema)
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


class ParquetDestination(Destination):
    """A directory of files, one sub-directory per table: Parquet, Arrow IPC, CSV or JSON Lines."""

    name = "files"
    schemes = ("parquet", "arrow", "csv", "jsonl")
    title = "Directory of Parquet / Arrow IPC / CSV / JSON Lines files (?partition=date)"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> ParquetSession:
        fmt = uri.split(":", 1)[0].lower()
        return ParquetSession(
            uri_path(uri, root), read_only=read_only, fmt=fmt, partition=uri_options(uri).get("partition")
        )
