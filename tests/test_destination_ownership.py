"""A destination deletes only what it wrote (issue 13, finding 6): a user's own files under a file
destination's root, and a user's own tables in a database, survive opening, every kind of commit and
closing, byte for byte; the orphans of a killed commit are still cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from kpihub.destinations.base import TableWrite, staging_name
from kpihub.destinations.parquet import ParquetDestination
from tests import test_destinations
from tests.test_destinations import r, rows, table

open_dest = test_destinations.open_dest  # the fixture: every destination kind

ROOT = Path(__file__).resolve().parents[1]
FILE_KINDS = ("parquet", "csv", "jsonl", "arrow", "s3", "s3+jsonl")


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"mine": [1, 2, 3]}), sink)
    return sink.getvalue().to_pybytes()


#: Files a user keeps under the destination's root: some look like kpihub's (a table directory, a
#: ``.tmp-`` name, the destination's own suffix), none was written by kpihub.
USER_FILES = {
    "mine.parquet": _parquet_bytes(),
    "sub/other.parquet": _parquet_bytes(),
    "t/mine.parquet": _parquet_bytes(),
    "t/notes.csv": b"a,b\n1,2\n",
    "t/.tmp-draft.jsonl": b'{"a": 1}\n',
    ".tmp-scratch.arrow": b"not arrow",
    "t/t-000001-deadbeef.parquet": _parquet_bytes(),  # even a name in kpihub's old style
}


class _Root:
    """The destination's root as a pyarrow filesystem (a local directory or the fake S3 bucket)."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        if kind.startswith("s3"):
            uri = request.getfixturevalue("s3_uri")
            location, _, query = uri.partition("?")
            options = dict(p.split("=", 1) for p in query.split("&"))
            self.fs = pafs.S3FileSystem(
                access_key="kpihub-test",
                secret_key="kpihub-test-secret",
                endpoint_override=options["endpoint_override"],
                scheme="http",
                region="us-east-1",
                allow_bucket_creation=True,
            )
            self.base = location.removeprefix("s3://")
            self.fs.create_dir(self.base)
        else:
            self.fs = pafs.LocalFileSystem()
            self.base = str(tmp_path / kind)
            os.makedirs(self.base, exist_ok=True)

    def put(self, rel: str, data: bytes) -> None:
        self.fs.create_dir(f"{self.base}/{rel}".rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(f"{self.base}/{rel}") as out:
            out.write(data)

    def get(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(f"{self.base}/{rel}") as fh:
                return fh.read()
        except FileNotFoundError:
            return None


def _every_kind_of_commit(session) -> None:
    session.commit([TableWrite("t", table([r("a", "1", 1), r("b", "1", 1)]), "append")], {"k": {"c": 1}})
    session.commit([TableWrite("t", table([r("a", "1", 2)]), "merge", ("source_id", "id"))], {"k": {"c": 2}})
    session.commit([TableWrite("t", table([r("a", "2", 2)]), "replace", scope={"source_id": "a"})], {})
    stage = staging_name("t", "test.t")
    session.commit([TableWrite(stage, table([r("a", "3", 3)]), "replace")], {})
    session.commit([TableWrite("t", table([r("a", "4", 4)]), "replace", staged_from=stage)], {"k": {"c": 3}})
    session.commit([TableWrite("t", table([r("z", "9", 9)]), "replace")], {"k": {"c": 4}})


def test_a_file_destination_never_deletes_a_file_it_did_not_write(open_dest, tmp_path, request):
    if open_dest.kind not in FILE_KINDS:
        pytest.skip("a database destination: see test_a_database_destination_keeps_tables_it_did_not_write")
    root = _Root(open_dest.kind, tmp_path, request)
    for rel, data in USER_FILES.items():
        root.put(rel, data)
    with open_dest() as s:
        _every_kind_of_commit(s)
    with open_dest() as s:  # a second writer's start-up clean-up
        assert rows(s, "t") == [("z", "9", 9)]
    with open_dest(read_only=True) as s:
        assert s.tables() == ["t"]
    for rel, data in USER_FILES.items():
        assert root.get(rel) == data, f"{open_dest.kind}: the user's file {rel!r} was deleted or changed"


def test_a_database_destination_keeps_tables_it_did_not_write(open_dest, tmp_path):
    if open_dest.kind in FILE_KINDS:
        pytest.skip("a file destination: see test_a_file_destination_never_deletes_a_file_it_did_not_write")
    # A user's table, and one named like the temporary table the ADBC destinations bulk-load into.
    names = ["mine", "_kpihub_load_t"]
    with open_dest() as s:
        for name in names:
            _sql(s, f'CREATE TABLE "{name}" (x INTEGER)')
            _sql(s, f'INSERT INTO "{name}" VALUES (42)')
        _every_kind_of_commit(s)
    with open_dest() as s:
        assert rows(s, "t") == [("z", "9", 9)]
        for name in names:
            assert _sql(s, f'SELECT x FROM "{name}"', fetch=True) == [(42,)], f"{open_dest.kind}: {name} changed"


def _sql(session, sql: str, fetch: bool = False):
    if hasattr(session, "cur"):  # ADBC: the destination's own schema comes first in search_path
        table = session.schema and not sql.startswith("SELECT")
        if table and session.dialect != "sqlite":
            sql = sql.replace('TABLE "', f'TABLE "{session.schema}"."').replace('INTO "', f'INTO "{session.schema}"."')
        session.cur.execute(sql)
        out = session.cur.fetchall() if fetch else None
        session.con.commit()
        return out
    result = session.con.execute(sql)
    return result.fetchall() if fetch else None


def test_orphans_of_a_killed_commit_are_removed_and_nothing_else(tmp_path):
    """A commit SIGKILLed after its files were renamed into place but before the state file listed them
    leaves orphans; the next writer deletes exactly those (its journal names the run that wrote them)."""
    lake = tmp_path / "lake"
    with ParquetDestination().open(f"parquet:///{lake}") as s:
        s.commit([TableWrite("t", table([r("a", "1", 1)]), "append")], {"k": {"cursor": 1}})
        live = set(s.files("t"))
    for rel, data in USER_FILES.items():
        (lake / rel).parent.mkdir(parents=True, exist_ok=True)
        (lake / rel).write_bytes(data)
    script = (
        "import pyarrow as pa\n"
        "from kpihub.destinations.base import TableWrite\n"
        "from kpihub.destinations.parquet import ParquetDestination\n"
        f"s = ParquetDestination().open('parquet:///{lake}')\n"
        "t = pa.table({'source_id': ['a'], 'id': ['2'], 'v': [2]})\n"
        "s.commit([TableWrite('t', t, 'append'), TableWrite('u', t, 'append')], {'k': {'cursor': 2}})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KPIHUB_FAILPOINT": "files.renamed"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    written = {p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")} - set(USER_FILES) - live
    assert len(written) == 2, written  # the killed commit's two files, renamed into place, unlisted
    with ParquetDestination().open(f"parquet:///{lake}") as s:
        assert s.get_state("k") == {"cursor": 1} and rows(s, "t") == [("a", "1", 1)]
        assert s.tables() == ["t"]
    left = {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}
    assert not written & left, f"orphans left: {written & left}"
    assert live <= left
    for rel, data in USER_FILES.items():
        assert (lake / rel).read_bytes() == data, rel
