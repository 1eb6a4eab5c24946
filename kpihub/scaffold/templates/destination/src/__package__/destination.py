"""The $name destination: a directory of JSON-lines files, one per table, and a state file.

``$name:///path/to/dir`` (relative paths from the project directory). Each commit writes a new
file for every table it changes, then replaces ``_state.json`` — which lists each table's file
and schema, and the sync state — in one ``os.replace``: the commit point. A process killed before
it leaves the old state file, which lists only the old files; the next writer deletes the files
no state file lists. So data and state change together or not at all. A table is rewritten
whole at each commit that changes it: simple, and fine for the tables of a small business;
a destination for big tables would write only the new rows (as kpihub's Parquet lake does).
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa

import kpihub
from $package.lines import applied, read_lines, schema_from_text, schema_text, write_lines

STATE_FILE = "_state.json"
LOCK_FILE = ".lock"


class ${cls}Destination(kpihub.Destination):
    """Tables as JSON-lines files in a directory, committed with their state by one rename."""

    name: ClassVar[str] = "$name"
    schemes: ClassVar[tuple[str, ...]] = ("$name",)
    title: ClassVar[str] = "$title (JSON lines in a directory)"

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> ${cls}Session:
        """Open (creating it unless ``read_only``) the directory ``uri`` names."""
        path = kpihub.uri_path(uri, root)
        if read_only and not (path / STATE_FILE).exists():
            raise kpihub.DestinationError(f"{uri}: no data there yet; run `kpihub sync` first")
        return ${cls}Session(uri, path, read_only=read_only)


class ${cls}Session(kpihub.DestinationSession):
    """An open directory: the state file's contents, and the lock while it may write."""

    def __init__(self, uri: str, path: Path, *, read_only: bool) -> None:
        self.uri, self.path, self.read_only = uri, path, read_only
        self._lock: IO[str] | None = None
        if not read_only:
            path.mkdir(parents=True, exist_ok=True)
            self._lock = _lock(path / LOCK_FILE, uri)
        self.manifest: dict[str, Any] = {"tables": {}, "state": {}}
        if (path / STATE_FILE).exists():
            self.manifest = json.loads((path / STATE_FILE).read_text())
        if not read_only:
            self._delete_unlisted()

    # -- state and reads ---------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The committed state entry ``key``, or None."""
        return self.manifest["state"].get(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        """Every committed state entry."""
        return dict(self.manifest["state"])

    def tables(self) -> list[str]:
        """The data tables (a sync's staging tables are hidden)."""
        return sorted(t for t in self.manifest["tables"] if not kpihub.is_staging(t))

    def table_schema(self, name: str) -> pa.Schema | None:
        """Table ``name``'s schema, or None when it does not exist."""
        entry = self.manifest["tables"].get(name)
        return schema_from_text(entry["schema"]) if entry else None

    def read_table(self, name: str) -> pa.Table:
        """Every row of table ``name``."""
        if name not in self.manifest["tables"]:
            raise kpihub.DestinationError(f"{self.uri} has no table {name!r}")
        return self._read(self.manifest["tables"][name])

    def attach(self, con: Any) -> None:
        """Register every table in DuckDB connection ``con`` under its name (for the KPI engine)."""
        for name in self.tables():
            con.register(name, self.read_table(name))

    # -- writes --------------------------------------------------------------------------

    def commit(self, writes: Sequence[kpihub.TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        """Write the new files, then the state file that lists them: the one atomic step."""
        if self.read_only:
            raise kpihub.DestinationError(f"{self.uri} is open read-only")
        for write in writes:
            kpihub.check_write(write)
        manifest = json.loads(json.dumps(self.manifest))
        written: list[Path] = []
        try:
            for write in writes:
                self._apply(write, manifest, written)
            _fsync_dir(self.path)  # the new files' names are durable before the state file lists them
            manifest["state"].update(json.loads(json.dumps(state, default=str)))
            self._write(STATE_FILE, json.dumps(manifest, indent=1, sort_keys=True))  # the commit point
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        self.manifest = manifest
        self._delete_unlisted()

    def _apply(self, write: kpihub.TableWrite, manifest: dict[str, Any], written: list[Path]) -> None:
        entry = manifest["tables"].get(write.table)
        data = write.data
        if write.staged_from is not None:  # a staged run: its rows, then the last chunk's, swapped in now
            stage = manifest["tables"].pop(write.staged_from, None)
            if stage is not None:
                data = applied(kpihub.TableWrite(write.table, data, "append"), self._read(stage), data)
        rows = applied(write, self._read(entry) if entry else None, data)
        name = f"{write.table}.{uuid.uuid4().hex[:12]}.jsonl"
        written.append(self.path / name)
        with _Durable(self.path / name) as out:
            write_lines(rows, out)
        manifest["tables"][write.table] = {"file": name, "schema": schema_text(rows.schema)}

    # -- files -----------------------------------------------------------------------------

    def _read(self, entry: Mapping[str, str]) -> pa.Table:
        with open(self.path / entry["file"], encoding="utf-8") as lines:
            return read_lines(lines, schema_from_text(entry["schema"]))

    def _write(self, name: str, text: str) -> None:
        tmp = self.path / f"{name}.{uuid.uuid4().hex[:8]}.tmp"
        with _Durable(tmp) as out:
            out.write(text)
        os.replace(tmp, self.path / name)
        _fsync_dir(self.path)

    def _delete_unlisted(self) -> None:
        """Delete the files no committed state lists: those of a replaced table, or of a killed commit."""
        listed = {entry["file"] for entry in self.manifest["tables"].values()}
        for path in self.path.iterdir():
            if path.name.endswith((".jsonl", ".tmp")) and path.name not in listed:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


class _Durable:
    """A new text file, flushed to disk (fsync) when closed."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> IO[str]:
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(path: Path, uri: str) -> IO[str]:
    """An exclusive lock on ``path`` (released when the process ends, however it ends)."""
    fh = open(path, "a+")  # noqa: SIM115 - held until the session closes
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise kpihub.DestinationError(f"another sync is already running on {uri}; wait for it to finish") from None
    return fh
