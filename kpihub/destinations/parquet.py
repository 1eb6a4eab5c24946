"""File destinations: a directory of Parquet (``parquet:///dir``), Arrow IPC (``arrow:///dir``),
CSV (``csv:///dir``) or JSON Lines (``jsonl:///dir``) files.

Layout::

    dir/_kpihub/state.json     the commit point: stream state + each table's live files and schema
    dir/_kpihub/lock           one writer at a time
    dir/<table>/<table>-<n>-<id>.parquet                      one file per commit (per run and chunk)
    dir/<table>/date=2024-01-05/<table>-<n>-<id>.parquet      with ?partition=date (hive style)

With ``?partition=date`` a canonical table is split by the day of its time
column (UTC for timestamps), so tools that read hive partitions prune by day.
So does a replace scoped by a range on that column (a report window): files of
days outside the range are kept unread, and a file whose rows all lie in the
scope is dropped unread; only files that also hold rows outside it are rewritten.

A commit writes new files under temporary names, fsyncs and renames them,
then atomically replaces ``state.json`` (the only place that says which files
are live); readers only ever read the files ``state.json`` lists. Merge
rewrites only the files holding keys that the new rows replace.

A destination deletes only files it wrote (the directory may hold the user's
own files too). Each writer session is a *run* with an id that every file it
writes carries in its name (``<table>-<seq>-<run>-<random>``), and before its
first file it records the run in ``_kpihub/runs/<run>.json`` with the tables
it writes into. Files a commit makes obsolete are listed in ``state.json``
(``garbage``) and deleted once it is durable. A clean close deletes the
journal; a killed run leaves it, and the next writer deletes exactly that
run's unlisted files and the last commit's garbage, then the journal.

A staged replace (``TableWrite.staged_from``) lists the staging table's
files under the target in the same ``state.json`` replace: each is hard-linked
(an object store: copied server-side) to a name of the target's, in its
directory, so tools reading the table's directory (hive partitions) find it
whole; nothing is read into memory.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
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
    staged_table,
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
#: One journal per writer session (run) that may have left files: ``<run>.json``.
RUNS_DIR = "_kpihub/runs"
_SUFFIXES = "|".join(re.escape(f.suffix) for f in FORMATS.values())


def _written_by(run: str) -> re.Pattern[str]:
    """The names of the files (and their temporary names) run ``run`` writes."""
    return re.compile(rf"(\.tmp-)?.+-\d{{6}}-{re.escape(run)}-[0-9a-f]{{6}}({_SUFFIXES})")


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
        #: This session's run id, in the name of every file it writes (see the module docs).
        self._run = uuid.uuid4().hex[:12]
        self._journaled: set[str] | None = None  # the tables this run's journal names (None: no journal)
        self._unclean = False  # a commit of this run failed part-way: its files may be unlisted
        self._leftover: list[str] = []  # obsolete files whose deletion failed, carried to the next garbage
        #: file → (key column → (min, max)) of the files this session wrote, exact from the data: a merge
        #: skips a file whose range on some key column misses the new rows' (see :meth:`_touched`).
        self._key_bounds: dict[str, dict[str, tuple[Any, Any]]] = {}
        self.manifest = self._load()
        if not read_only:
            self._clean_up()

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

    # -- what killed runs left (only ever files a run of this destination wrote) ---

    def _clean_up(self) -> None:
        """Delete what killed runs left: a half-replaced file of ``_kpihub/``, and for each run journal,
        the files that run wrote and no commit listed, plus the last commit's obsolete files."""
        journals = []
        for rel in self.store.files("_kpihub"):
            name = rel.rsplit("/", 1)[-1]
            if name.startswith(".tmp-"):  # kpihub's own directory: a state or journal file mid-replace
                self.store.delete(rel)
            elif rel.startswith(RUNS_DIR + "/") and name.endswith(".json"):
                journals.append(rel)
        if journals:
            self._clean_runs(journals, self.manifest)

    def _clean_runs(self, journals: list[str], manifest: dict[str, Any]) -> None:
        live = {f for t in manifest["tables"].values() for f in t["files"]}
        for rel in manifest.get("garbage", []):
            if rel not in live:
                self.store.delete(rel)
        for journal in journals:
            run = journal.rsplit("/", 1)[-1].removesuffix(".json")
            try:
                tables = json.loads(self.store.read_bytes(journal))["tables"]
            except (OSError, ValueError, KeyError, TypeError):
                tables = [""]  # an unreadable journal: look under the whole root (for that run's names only)
            ours = _written_by(run)
            for table in tables:
                for rel in self.store.files(table):
                    if rel not in live and ours.fullmatch(rel.rsplit("/", 1)[-1]):
                        self.store.delete(rel)
            self.store.delete(journal)

    def _journal(self, tables: set[str]) -> None:
        """Record this run and the tables it writes into before it writes there (one small file per run,
        rewritten only when a new table is written)."""
        if self._journaled is not None and tables <= self._journaled:
            return
        names = sorted((self._journaled or set()) | tables)
        body = {"run": self._run, "pid": os.getpid(), "tables": names}
        self.store.replace(f"{RUNS_DIR}/{self._run}.json", json.dumps(body).encode())
        self._journaled = set(names)

    def _finish_run(self) -> None:
        """At close: delete what a failed commit of this run left, then the journal (kept on an error,
        for the next writer)."""
        if self._journaled is None:
            return
        journal = f"{RUNS_DIR}/{self._run}.json"
        try:
            if self._unclean:
                # What is live is what the stored state file says, not this session's copy of it.
                self._clean_runs([journal], self._load())
            else:
                for rel in self._leftover:
                    self.store.delete(rel)
                self.store.delete(journal)
        except (OSError, DestinationError):
            pass
        self._journaled = None

    # -- state -------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        return self.manifest["streams"].get(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest["streams"])

    # -- writes ------------------------------------------------------------------

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise DestinationError(f"{self.uri} is open read-only")
        for write in writes:
            check_write(write)
        with self._lock:
            try:
                self._commit(writes, state)
            except BaseException:
                self._unclean = True  # files of this commit may be left unlisted: close() looks for them
                raise

    def _commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        manifest = json.loads(json.dumps(self.manifest))
        pending: list[Any] = []  # staged files, live once published and listed in the manifest
        obsolete: list[str] = []
        tables = {w.table for w in writes} | {w.staged_from for w in writes if w.staged_from}
        if tables:  # a state-only commit writes no file
            self._journal(tables)
        for write in writes:
            self._plan(write, manifest, pending, obsolete)
        failpoint("files.staged")
        self.store.publish(pending)
        failpoint("files.renamed")
        manifest["streams"].update(json.loads(json.dumps(state, default=str)))
        # Deleted once this state file is durable; if the run is killed first, by the next writer.
        manifest["garbage"] = sorted(set(obsolete) | set(self._leftover))
        encoded = json.dumps(manifest, indent=1, sort_keys=True).encode()
        failpoint("files.state_staged")
        self.store.replace(STATE_FILE, encoded)  # the commit point
        failpoint("files.committed")
        self.manifest = manifest
        self._leftover = self._delete(manifest["garbage"])

    def _delete(self, rels: list[str]) -> list[str]:
        """Delete files no commit lists any more; return those that could not be (tried again later)."""
        failed = []
        for rel in rels:
            try:
                self.store.delete(rel)
            except OSError:
                failed.append(rel)  # the commit stands: a file left behind is no reason to fail it
            failpoint("files.deleted")
        return failed

    def _plan(self, write: TableWrite, manifest: dict[str, Any], pending: list[Any], obsolete: list[str]) -> None:
        entry = manifest["tables"].setdefault(write.table, {"files": [], "seq": 0, "schema": None})
        stage = self._stage_entry(write, manifest)
        incoming = write.data.schema  # the schema of every row the write brings: the stage's and data's
        if stage is not None and stage["schema"] is not None:
            incoming = evolve_schema(write.table, _decode(stage["schema"]), incoming)
        # Check the schema change first: an incompatible type fails before any file is written.
        current = _decode(entry["schema"])
        if write.mode == "replace" and write.scope:
            check_scope(write.table, write.scope, columns_of(current, incoming))
        if current is not None and full_replace(write):
            if stage is not None or not evolves(write.table, current, incoming):
                current = None  # a full refresh rebuilds a table whose types changed (a staged one, always)
        merged_schema = _merge_schema(write.table, current, incoming)
        data = dedup_last(write.data, write.primary_key) if write.mode == "merge" else write.data
        keep: list[str] = []
        no_files: tuple[set[str], set[str]] = (set(), set())
        touched, whole = no_files if write.mode == "append" else self._touched(entry["files"], write, data, current)
        # The rows that survive in rewritten files are gathered into few files (at most REWRITE_ROWS
        # in memory at once): merges compact a table as they go instead of multiplying small files.
        survivors: list[pa.Table] = []
        gathered = 0

        def stage_survivors() -> None:
            nonlocal survivors, gathered
            if survivors:
                merged = pa.concat_tables(survivors, promote_options="permissive")
                keep.extend(self._stage(merged, write.table, entry, pending, write.primary_key))
            survivors, gathered = [], 0

        for rel in entry["files"]:
            if write.mode == "append" or rel not in touched:
                keep.append(rel)
                continue
            obsolete.append(rel)
            if rel in whole:  # every row of it is replaced: nothing to keep, nothing to read
                continue
            remaining = _without(self._read_file(rel, current), data, write)
            if remaining.num_rows:
                survivors.append(remaining)
                gathered += remaining.num_rows
            if gathered >= REWRITE_ROWS:
                stage_survivors()
        stage_survivors()
        if stage is not None:
            keep.extend(self._adopt(stage, write.table, entry, pending))
            obsolete.extend(stage["files"])
            del manifest["tables"][write.staged_from]
        if data.num_rows:
            keep.extend(self._stage(data, write.table, entry, pending, write.primary_key))
        entry["files"] = keep
        entry["schema"] = merged_schema

    def _stage_entry(self, write: TableWrite, manifest: dict[str, Any]) -> dict[str, Any] | None:
        if write.staged_from is None:
            return None
        stage = manifest["tables"].get(write.staged_from)
        if stage is None:
            raise DestinationError(
                f"table {write.table!r}: staging table {write.staged_from!r} does not exist (nothing was staged)"
            )
        return stage

    def _adopt(self, stage: dict[str, Any], table: str, entry: dict[str, Any], pending: list[Any]) -> list[str]:
        """The staging table's files under new names of ``table``'s, in its directory (same partition):
        hard links, or server-side copies in an object store; not a row is read."""
        out = []
        for rel in stage["files"]:
            partition = "/".join(rel.split("/")[1:-1])
            new = self._new_file(table, entry, partition)
            pending.append(self.store.copy(rel, new))
            out.append(new)
        failpoint("files.stage_adopted")
        return out

    def _touched(
        self, files: list[str], write: TableWrite, data: pa.Table, current: pa.Schema | None
    ) -> tuple[set[str], set[str]]:
        """Live files holding rows the write replaces, found by reading key (or scope) columns only; and
        those of them whose rows it replaces all (dropped without reading them). A range scope on the
        column a table is partitioned by skips the files of days outside the range unread."""
        if write.mode == "replace" and not write.scope:
            return set(files), set(files)
        if write.mode == "replace":
            files = [rel for rel in files if not self._outside(write, rel, current)]
        columns = list(write.scope or {}) if write.mode == "replace" else list(write.primary_key)
        if write.mode == "merge":
            # Within a run each chunk was checked against every file before it (O(chunks²) key reads:
            # 9 of a 2M-row GA4 sync's 20 CPU seconds); a file whose key range misses the new rows' holds none.
            incoming = key_bounds(data, write.primary_key)
            files = [rel for rel in files if not disjoint(self._key_bounds.get(rel), incoming)]
        touched: set[str] = set()
        whole: set[str] = set()
        if self.format.name == "parquet" and files:
            # The key columns file by file: memory stays that of one file however large the table grows
            # (one scan of every file, with a file name per row, held ~100 bytes per stored row).
            dataset = self._dataset(files, current)
            present = [c for c in columns if current is None or c in current.names]
            root = self.store.arrow_filesystem()[1] + "/"
            for fragment in dataset.get_fragments():
                probe = fragment.to_table(columns=present, schema=dataset.schema)
                kept = pc.sum(pc.cast(_survives(probe, data, write), pa.int64())).as_py() or 0
                if kept < probe.num_rows:
                    touched.add(fragment.path.removeprefix(root))
                    if not kept:
                        whole.add(fragment.path.removeprefix(root))
            return touched, whole
        for rel in files:
            with self._local(rel) as path:
                probe = self.format.read_columns(path, columns, current)
            left = _without(probe, data, write).num_rows
            if left != probe.num_rows:
                touched.add(rel)
                if not left:
                    whole.add(rel)
        return touched, whole

    def _outside(self, write: TableWrite, rel: str, current: pa.Schema | None) -> bool:
        """Whether file ``rel`` lies in a day partition (``date=…``, see :meth:`_partitions`) that a range of
        ``write.scope`` on the partition column excludes: its rows are outside the scope, unread. (Only for
        dates and UTC or naive timestamps, whose day the partition label is.)"""
        canonical = CANONICAL_TABLES.get(staged_table(write.table) or write.table)
        column = canonical.time_column if canonical is not None else None
        between = (write.scope or {}).get(column) if column else None
        label = next((p[5:] for p in rel.split("/")[1:-1] if p.startswith("date=")), None)
        if not isinstance(between, Between) or label is None or canonical is None:
            return False
        if label == HIVE_NULL:
            return True  # a null is never in a range
        known = current if current is not None and column in current.names else canonical.schema
        column_type = known.field(column).type
        low, high = range_bounds(write.table, column, column_type, between)
        day = dt.date.fromisoformat(label)
        if pa.types.is_date(column_type):
            return (low is not None and day < low) or (high is not None and day > high)
        if not pa.types.is_timestamp(column_type) or column_type.tz not in (None, "UTC", "+00:00"):
            return False
        start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
        low, high = (b.replace(tzinfo=dt.timezone.utc) if b is not None else None for b in (low, high))
        return (high is not None and start > high) or (low is not None and start + dt.timedelta(days=1) <= low)

    def _stage(
        self, data: pa.Table, table: str, entry: dict[str, Any], pending: list[Any], key: Sequence[str] = ()
    ) -> list[str]:
        """Write ``data`` as new files (one per partition), live only once published; return their paths.
        The ranges of the ``key`` columns in each file are kept for later merges of this session."""
        out = []
        for partition, part in self._partitions(table, data):
            rel = self._new_file(table, entry, partition)
            pending.append(self.store.stage(rel, partial(self.format.write, part)))
            if key:
                self._key_bounds[rel] = key_bounds(part, key)
            out.append(rel)
        return out

    def _new_file(self, table: str, entry: dict[str, Any], partition: str) -> str:
        """A new file's path: the table's sequence number, this run's id and a random part (unique even
        where a failed commit's sequence numbers are used again)."""
        entry["seq"] += 1
        name = f"{table}-{entry['seq']:06d}-{self._run}-{uuid.uuid4().hex[:6]}{self.format.suffix}"
        return f"{table}/{partition}/{name}" if partition else f"{table}/{name}"

    def _partitions(self, table: str, data: pa.Table) -> list[tuple[str, pa.Table]]:
        # A staging table is laid out as the table it stages for, so its files move in as they are.
        canonical = CANONICAL_TABLES.get(staged_table(table) or table)
        column = canonical.time_column if self.partition and canonical is not None else None
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
        return sorted(n for n in self.manifest["tables"] if not is_staging(n))

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
            elif self.files(name) and self.format.name != "parquet":
                # Text and IPC formats, local or in an object store: typed by the recorded schema.
                con.register(name, self.read_table(name))
            elif files:
                listing = ", ".join(sql_string(str(f)) for f in files)
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
        if not self.read_only:
            self._finish_run()
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


def key_bounds(table: pa.Table, columns: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """Each column's (min, max) in ``table``, where Arrow orders its type and it holds a value."""
    out: dict[str, tuple[Any, Any]] = {}
    for column in columns:
        if column not in table.column_names:
            continue
        try:
            low_high = pc.min_max(table[column])
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue  # a type with no order (nested): no bound, the file is read
        low, high = low_high["min"].as_py(), low_high["max"].as_py()
        if low is not None and high is not None:
            out[column] = (low, high)
    return out


def disjoint(file: Mapping[str, tuple[Any, Any]] | None, new: Mapping[str, tuple[Any, Any]]) -> bool:
    """Whether no row of a file with key ranges ``file`` can share a key with rows of ranges ``new``:
    a key matches on every column, so ranges apart on any one column are enough. Unknown: False."""
    if not file:
        return False
    for column, (low, high) in file.items():
        if column not in new:
            continue
        new_low, new_high = new[column]
        try:
            if high < new_low or low > new_high:
                return True
        except TypeError:  # values of kinds that do not compare (a widened column): no conclusion
            continue
    return False


def _survives(existing: pa.Table, new: pa.Table, write: TableWrite) -> pa.Array:
    """A mask of the rows of ``existing`` that ``write`` leaves in place."""
    if write.mode == "replace":
        mask = None
        for column, value in (write.scope or {}).items():
            if column not in existing.column_names:
                return pa.array([True] * existing.num_rows)  # a file older than the column: all null there
            cond = _in_scope(existing[column], write.table, column, value)
            mask = cond if mask is None else pc.and_(mask, cond)
        return pc.invert(pc.fill_null(mask, False)) if mask is not None else pa.array([False] * existing.num_rows)
    keys = list(write.primary_key)
    if len(keys) == 1:
        return pc.invert(pc.is_in(existing[keys[0]], value_set=new[keys[0]].combine_chunks()))
    import numpy as np  # row numbers: pa.array(range(n)) walks n Python ints (17 ms at 200,000)

    marked = existing.select(keys).append_column("__row", pa.array(np.arange(existing.num_rows, dtype=np.int64)))
    gone = marked.join(new.select(keys), keys=keys, join_type="left semi")["__row"]
    keep = np.ones(existing.num_rows, dtype=bool)
    keep[gone.to_numpy()] = False
    return pa.array(keep)


def _in_scope(values: pa.ChunkedArray, table: str, column: str, value: Any) -> pa.ChunkedArray:
    """Where ``values`` equal a scope value, or lie in its :class:`Between` range (null: unknown, never in)."""
    if not isinstance(value, Between):
        return pc.equal(values, pa.scalar(value))
    low, high = range_bounds(table, column, values.type, value)
    cond = pc.is_valid(values)
    if low is not None:
        cond = pc.and_(cond, pc.greater_equal(values, pa.scalar(low, values.type)))
    if high is not None:
        cond = pc.and_(cond, pc.less_equal(values, pa.scalar(high, values.type)))
    return cond


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
