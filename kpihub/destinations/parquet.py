"""Parquet directory destination: ``parquet:///path/to/dir``.

Layout::

    dir/_kpihub/state.json     the commit point: stream state + each table's live files
    dir/_kpihub/lock           one writer at a time
    dir/<table>/<table>-<n>-<id>.parquet

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
import pyarrow.parquet as pq

from kpihub.destinations.base import (
    Destination,
    DestinationSession,
    FileLock,
    TableWrite,
    dedup_last,
    evolve_schema,
    fsync_dir,
    quote,
    uri_path,
)
from kpihub.errors import DestinationError

__all__ = ["ParquetDestination", "ParquetSession"]

MANIFEST_VERSION = 1


class ParquetSession(DestinationSession):
    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = root
        self.uri = f"parquet:///{root}"
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
        for table_dir in self.root.iterdir():
            if not table_dir.is_dir() or table_dir.name.startswith("_"):
                continue
            for file in table_dir.iterdir():
                rel = f"{table_dir.name}/{file.name}"
                if (file.suffix == ".parquet" or file.name.startswith(".tmp-")) and rel not in live:
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
            for tmp, final in pending:
                os.replace(tmp, final)
            for directory in {final.parent for _, final in pending}:
                fsync_dir(directory)
            manifest["streams"].update(json.loads(json.dumps(state, default=str)))
            tmp_state = self.meta_dir / f".state-{uuid.uuid4().hex}.json"
            with open(tmp_state, "w") as fh:
                json.dump(manifest, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_state, self.state_file)  # the commit point
            fsync_dir(self.meta_dir)
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
        merged_schema = _merge_schema(write.table, entry["schema"], write.data.schema)
        table_dir = self.root / write.table
        table_dir.mkdir(parents=True, exist_ok=True)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        keep: list[str] = []
        for rel in entry["files"]:
            if write.mode == "append":
                keep.append(rel)
                continue
            path = self.root / rel
            if write.mode == "replace" and not write.scope:
                obsolete.append(rel)
                continue
            # Read only the key (or scope) columns to find out whether this file is touched at all.
            probe_columns = list(write.scope or {}) if write.mode == "replace" else list(write.primary_key)
            file_columns = set(pq.read_schema(path).names)
            probe = pq.read_table(path, columns=[c for c in probe_columns if c in file_columns])
            if _without(probe, data, write).num_rows == probe.num_rows:
                keep.append(rel)
                continue
            existing = pq.read_table(path)
            remaining = _without(existing, data, write)
            obsolete.append(rel)
            if remaining.num_rows:
                keep.append(self._stage(remaining, write.table, entry, pending))
        if data.num_rows:
            keep.append(self._stage(data, write.table, entry, pending))
        entry["files"] = keep
        entry["schema"] = merged_schema

    def _stage(self, data: pa.Table, table: str, entry: dict[str, Any], pending: list[tuple[Path, Path]]) -> str:
        entry["seq"] += 1
        name = f"{table}-{entry['seq']:06d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.root / table / name
        tmp = final.with_name(f".tmp-{name}")
        with open(tmp, "wb") as fh:
            pq.write_table(data, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        pending.append((tmp, final))
        return f"{table}/{name}"

    # -- reads -------------------------------------------------------------------

    def tables(self) -> list[str]:
        return sorted(self.manifest["tables"])

    def files(self, name: str) -> list[Path]:
        return [self.root / rel for rel in self.manifest["tables"].get(name, {}).get("files", [])]

    def schema(self, name: str) -> pa.Schema | None:
        encoded = self.manifest["tables"].get(name, {}).get("schema")
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded))) if encoded else None

    def read_table(self, name: str) -> pa.Table:
        files = self.files(name)
        schema = self.schema(name)
        if not files:
            return schema.empty_table() if schema is not None else pa.table({})
        # Older files keep their own (narrower) types: read each as the table's current schema.
        tables = [_conform(pq.read_table(f), schema) for f in files]
        return pa.concat_tables(tables, promote_options="permissive")

    def attach(self, con: Any) -> None:
        for name in self.tables():
            files = self.files(name)
            if files:
                listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                scan = f"read_parquet([{listing}], union_by_name=true)"
                con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS SELECT * FROM {scan}")
            else:
                schema = self.schema(name)
                if schema is not None:
                    con.register(f"__empty_{name}", schema.empty_table())
                    con.execute(f"CREATE OR REPLACE TABLE {quote(name)} AS SELECT * FROM {quote('__empty_' + name)}")

    def close(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


def _without(existing: pa.Table, new: pa.Table, write: TableWrite) -> pa.Table:
    """Rows of ``existing`` that survive ``write`` (outside the replace scope / key set)."""
    if write.mode == "replace":
        mask = None
        for column, value in (write.scope or {}).items():
            if column not in existing.column_names:
                return existing
            cond = pc.equal(existing[column], pa.scalar(value))
            mask = cond if mask is None else pc.and_(mask, cond)
        return existing.filter(pc.invert(pc.fill_null(mask, False))) if mask is not None else existing.slice(0, 0)
    keys = list(write.primary_key)
    if len(keys) == 1:
        hit = pc.is_in(existing[keys[0]], value_set=new[keys[0]].combine_chunks())
        return existing.filter(pc.invert(hit))
    return existing.join(new.select(keys), keys=keys, join_type="left anti").select(existing.column_names)


def _conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    if schema is None:
        return table
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.table(columns, schema=schema)


def _merge_schema(table: str, encoded: str | None, schema: pa.Schema) -> str:
    if encoded:
        old = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))
        schema = evolve_schema(table, old, schema)
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


class ParquetDestination(Destination):
    """A directory of Parquet files, one sub-directory per table."""

    name = "parquet"
    schemes = ("parquet",)
    title = "Parquet directory"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> ParquetSession:
        return ParquetSession(uri_path(uri, root), read_only=read_only)
