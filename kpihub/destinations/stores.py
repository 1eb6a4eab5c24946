"""Where a file destination keeps its files: a local directory, or an object store through pyarrow's filesystems.

A file destination needs few operations: stage a new file, publish the
staged files, replace one small file atomically (the manifest, the commit
point), list, delete and read. A local directory does them with temporary
names, fsync and rename, under an exclusive ``flock``. An object store
(``s3://``, ``gs://`` — whatever ``pyarrow.fs.FileSystem.from_uri`` opens)
has no rename and no fsync but writes each object atomically: new files go
straight to their final (unique, not yet referenced) names and the manifest
is one PUT, so readers see the old commit or the new one. Object stores
give kpihub no lock: run one sync per prefix at a time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from kpihub.destinations.base import FileLock, fsync_dir, masked_uri
from kpihub.errors import DestinationError
from kpihub.secrets import first_line

__all__ = ["LocalStore", "ObjectStore", "Store", "open_store"]

#: URI options that configure the filesystem (passed to pyarrow), next to kpihub's own (format, partition).
KPIHUB_OPTIONS = ("format", "partition")


class Store:
    """Files under one root, addressed by ``/``-separated paths relative to it."""

    where: str

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes:
        raise NotImplementedError

    def replace(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` atomically and durably (readers see the old or the new file)."""
        raise NotImplementedError

    def stage(self, rel: str, write: Callable[[Path], None]) -> Any:
        """Write a new file for ``rel`` with ``write(local_path)``; it is live only after :meth:`publish`."""
        raise NotImplementedError

    def copy(self, src: str, rel: str) -> Any:
        """Make ``rel`` a new file with ``src``'s bytes without reading them here (live after :meth:`publish`)."""
        raise NotImplementedError

    def publish(self, staged: list[Any]) -> None:
        raise NotImplementedError

    def files(self, under: str = "") -> list[str]:
        """Every file under the root (or under its sub-directory ``under``)."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        raise NotImplementedError

    def local(self, rel: str) -> Path | None:
        """A local path to read ``rel`` at, when the store is local."""
        return None

    def fetch(self, rel: str, into: Path) -> Path:
        """A local copy of ``rel`` inside directory ``into``."""
        raise NotImplementedError

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow filesystem and the root's path in it (for datasets)."""
        raise NotImplementedError

    def lock(self, what: str) -> FileLock | None:
        """Open for writing: the writer's exclusive lock, where the store has one."""
        return None


class LocalStore(Store):
    """A directory on this machine: temp name + fsync + rename, then fsync the directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def replace(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def stage(self, rel: str, write: Callable[[Path], None]) -> tuple[Path, Path]:
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{final.name}")
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        return tmp, final

    def copy(self, src: str, rel: str) -> tuple[Path, Path]:
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{final.name}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.root / src, tmp)  # a second name for the same bytes: nothing is copied
        except OSError:  # a filesystem without hard links
            shutil.copyfile(self.root / src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        return tmp, final

    def publish(self, staged: list[Any]) -> None:
        for tmp, final in staged:
            os.replace(tmp, final)
        for directory in {final.parent for _, final in staged}:
            fsync_dir(directory)

    def files(self, under: str = "") -> list[str]:
        base = self.root / under if under else self.root
        if not base.is_dir():
            return []
        return [p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()]

    def delete(self, rel: str) -> None:
        path = self.root / rel
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        # The directories the file was the last one in (a staging table's, a day's), never one with anything
        # left in it (rmdir refuses), nor the root.
        for parent in path.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def local(self, rel: str) -> Path | None:
        return self.root / rel

    def fetch(self, rel: str, into: Path) -> Path:
        return self.root / rel

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.root)

    def lock(self, what: str) -> FileLock:
        lock = FileLock(self.root / "_kpihub" / "lock", what)
        lock.acquire()
        return lock


class ObjectStore(Store):
    """A prefix in an object store (or any pyarrow filesystem): each object is written atomically."""

    def __init__(self, fs: pafs.FileSystem, root: str, where: str) -> None:
        self.fs, self.root, self.where = fs, root.rstrip("/"), where

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._path(rel)).type == pafs.FileType.File

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self._path(rel)) as fh:
            return fh.read()

    def replace(self, rel: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._path(rel)) as out:  # one PUT: atomic on S3 and GCS
            out.write(data)

    def stage(self, rel: str, write: Callable[[Path], None]) -> str:
        # Written under its final, unique name: nothing references it until the manifest does.
        with tempfile.TemporaryDirectory(prefix="kpihub-stage-") as tmp:
            local = Path(tmp) / Path(rel).name
            write(local)
            with open(local, "rb") as src, self.fs.open_output_stream(self._path(rel)) as out:
                shutil.copyfileobj(src, out, length=8 << 20)
        return rel

    def copy(self, src: str, rel: str) -> str:
        # A server-side copy: S3 CopyObject, GCS rewrite (apache/arrow cpp/src/arrow/filesystem/s3fs.cc,
        # S3FileSystem::CopyFile), under the final, unique, not yet referenced name as stage() writes.
        self.fs.copy_file(self._path(src), self._path(rel))
        return rel

    def publish(self, staged: list[Any]) -> None:
        return None

    def files(self, under: str = "") -> list[str]:
        base = f"{self.root}/{under}" if under else self.root
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise DestinationError(f"{self.where}: cannot list files: {exc}") from None
        prefix = self.root + "/"
        return [i.path.removeprefix(prefix) for i in infos if i.type == pafs.FileType.File]

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self._path(rel))
        except FileNotFoundError:
            pass

    def fetch(self, rel: str, into: Path) -> Path:
        local = into / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open_input_stream(self._path(rel)) as src, open(local, "wb") as out:
            shutil.copyfileobj(src, out, length=8 << 20)
        return local

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return self.fs, self.root

    def lock(self, what: str) -> None:
        # No lock to take (see the module docs); a writer makes sure its root exists, bucket included
        # where the URI allows it (allow_bucket_creation=true).
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise DestinationError(f"{self.where}: cannot write here: {first_line(exc)}") from None
        return None


def open_store(location: str, options: dict[str, str], root: Path | None) -> Store:
    """The store for a destination location: a local path, or a URI pyarrow opens (``s3://bucket/prefix``)."""
    if "://" not in location or location.startswith("file://"):
        path = Path(location.removeprefix("file://")).expanduser()
        return LocalStore(path if path.is_absolute() else (root or Path.cwd()) / path)
    from urllib.parse import urlencode

    fs_options = {k: v for k, v in options.items() if k not in KPIHUB_OPTIONS}
    if location.startswith("s3://"):
        # Objects smaller than a part go up in one PutObject instead of a three-request multipart upload;
        # an error still surfaces when the object is closed, before the manifest refers to it.
        fs_options.setdefault("allow_delayed_open", "true")
    uri = location + (f"?{urlencode(fs_options)}" if fs_options else "")
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DestinationError(f"{masked_uri(location)}: cannot open: {first_line(exc)}") from None
    return ObjectStore(fs, path, masked_uri(location))
