"""The ``open_dest`` fixture (every destination kind) the destination test modules share, and what is
particular to one destination. The contract every destination meets (modes, merge keys, types, atomic
state, evolution, locks, crash points) is kpihub.testing.DestinationConformance, run over every kind in
test_destination_conformance*.py."""

from __future__ import annotations

import os
from decimal import Decimal

import pyarrow as pa
import pytest

from kpihub.destinations.adbc import ADBCDestination
from kpihub.destinations.base import TableWrite, dedup_last
from kpihub.destinations.duckdb import DuckDBDestination
from kpihub.destinations.parquet import ParquetDestination
from kpihub.errors import DestinationError


@pytest.fixture(
    params=[
        *("duckdb", "parquet", "csv", "jsonl", "arrow", "postgres", "sqlite", "adbc+sqlite", "adbc+postgresql"),
        *("s3", "s3+jsonl"),
    ]
)
def open_dest(request, tmp_path):
    kind = request.param
    pg = request.getfixturevalue("postgres_uri") if "postgres" in kind else None
    s3 = request.getfixturevalue("s3_uri") if kind.startswith("s3") else None

    def opener(read_only: bool = False):
        if kind == "s3":
            return ParquetDestination().open(s3, read_only=read_only)
        if kind == "s3+jsonl":
            return ParquetDestination().open(f"{s3}&format=jsonl", read_only=read_only)
        if kind == "duckdb":
            return DuckDBDestination().open(f"duckdb:///{tmp_path}/x.duckdb", read_only=read_only)
        if kind in ("parquet", "csv", "jsonl", "arrow"):
            return ParquetDestination().open(f"{kind}:///{tmp_path}/{kind}", read_only=read_only)
        uri = {
            "postgres": pg,
            "sqlite": f"sqlite:///{tmp_path}/x.sqlite",
            "adbc+sqlite": f"adbc+sqlite:///{tmp_path}/y.db",  # the generic path, with the SQLite driver
            "adbc+postgresql": f"adbc+{pg}",  # the generic path, with the PostgreSQL driver
        }
        return ADBCDestination().open(uri[kind], read_only=read_only)

    opener.kind = kind  # type: ignore[attr-defined]
    return opener


def table(rows: list[dict]) -> pa.Table:
    schema = pa.schema(
        [("source_id", pa.string()), ("id", pa.string()), ("v", pa.int64()), ("amount", pa.decimal128(38, 9))]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def rows(session, name: str) -> list[tuple]:
    t = session.read_table(name)
    return sorted((r["source_id"], r["id"], r["v"]) for r in t.to_pylist())


def r(src: str, i: str, v: int) -> dict:
    return {"source_id": src, "id": i, "v": v, "amount": Decimal("1.5")}












def test_dedup_last_keeps_the_last_occurrence():
    t = table([r("a", "1", 1), r("a", "2", 1), r("a", "1", 2)])
    assert [(x["id"], x["v"]) for x in dedup_last(t, ["id"]).to_pylist()] == [("2", 1), ("1", 2)]


def test_parquet_a_failed_commit_leaves_no_file_behind_and_readers_never_see_its_files(tmp_path, monkeypatch):
    """A commit that fails after its files are renamed into place (the state file cannot be written):
    readers never see them, and closing the session deletes them (a killed run's are deleted by the next
    writer: tests/test_destination_ownership.py)."""
    root = tmp_path / "pq"
    with ParquetDestination().open(f"parquet:///{root}") as s:
        s.commit([TableWrite("t", table([r("a", "1", 1)]), "append")], {"k": {"cursor": 1}})
        live = set(s.files("t"))
        replace = s.store.replace

        def full_disk(rel: str, data: bytes) -> None:
            if rel.endswith("state.json"):
                raise OSError(28, "No space left on device")
            replace(rel, data)

        monkeypatch.setattr(s.store, "replace", full_disk)
        with pytest.raises(OSError, match="No space left"):
            s.commit([TableWrite("t", table([r("a", "2", 2)]), "append")], {"k": {"cursor": 2}})
        unlisted = {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")} - live
        assert len(unlisted) == 1  # renamed into place, listed nowhere
        with ParquetDestination().open(f"parquet:///{root}", read_only=True) as reader:
            assert len(reader.read_table("t")) == 1 and reader.get_state("k") == {"cursor": 1}
        monkeypatch.undo()
        s.commit([TableWrite("t", table([r("a", "3", 3)]), "append")], {"k": {"cursor": 3}})  # a later one works
        live = set(s.files("t"))
    assert {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")} == live and len(live) == 2
    assert not list(root.glob("_kpihub/runs/*"))  # the run's journal is gone with them


def test_parquet_merge_rewrites_only_files_with_replaced_keys(tmp_path):
    with ParquetDestination().open(f"parquet:///{tmp_path}/pq") as s:
        s.commit([TableWrite("t", table([r("a", "1", 1)]), "merge", ("id",))], {})
        s.commit([TableWrite("t", table([r("a", "2", 1)]), "merge", ("id",))], {})
        first, second = s.manifest["tables"]["t"]["files"]
        s.commit([TableWrite("t", table([r("a", "2", 2)]), "merge", ("id",))], {})
        files = s.manifest["tables"]["t"]["files"]
        assert first in files and second not in files
        assert rows(s, "t") == [("a", "1", 1), ("a", "2", 2)]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_merge_reads_only_the_files_whose_key_ranges_meet_the_new_rows(tmp_path, monkeypatch, fmt):
    # Each chunk of a sync merges into what its earlier chunks wrote; reading every file's keys made a
    # run O(chunks²). A file this session wrote whose range on a key column misses the new rows'
    # cannot hold one of their keys: it is not read. The rows stay those of reading them all.
    from kpihub.destinations import parquet

    reads: list[int] = []
    real = parquet._survives
    monkeypatch.setattr(parquet, "_survives", lambda old, new, w: reads.append(old.num_rows) or real(old, new, w))
    with ParquetDestination().open(f"{fmt}:///{tmp_path}/{fmt}") as s:
        for block in range(5):  # ids 00..09, 10..19, ... in five files
            s.commit(
                [TableWrite("t", table([r("a", f"{block}{i}", 1) for i in range(10)]), "merge", ("source_id", "id"))],
                {},
            )
        reads.clear()
        s.commit([TableWrite("t", table([r("a", "21", 2), r("a", "25", 2)]), "merge", ("source_id", "id"))], {})
        assert reads == [10, 10]  # the keys of the file of 20..29, then its rows as it is rewritten
        s.commit(
            [TableWrite("t", table([r("a", "05", 3), r("a", "45", 3), r("a", "99", 3)]), "merge", ("source_id", "id"))],
            {},
        )
        expected = {("a", f"{b}{i}"): 1 for b in range(5) for i in range(10)}
        expected |= {("a", "21"): 2, ("a", "25"): 2, ("a", "05"): 3, ("a", "45"): 3, ("a", "99"): 3}
        assert rows(s, "t") == sorted((src, i, v) for (src, i), v in expected.items())




def test_reading_a_destination_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(DestinationError, match="run `kpihub sync` first"):
        DuckDBDestination().open(f"duckdb:///{tmp_path}/none.duckdb", read_only=True)
    with pytest.raises(DestinationError, match="run `kpihub sync` first"):
        ParquetDestination().open(f"parquet:///{tmp_path}/none", read_only=True)


def test_relative_uri_is_relative_to_the_project_root(tmp_path):
    with DuckDBDestination().open("duckdb:///data/x.duckdb", root=tmp_path) as s:
        assert s.path == tmp_path / "data" / "x.duckdb"
    assert os.path.exists(tmp_path / "data" / "x.duckdb")


def _typed(values, type_) -> pa.Table:
    return pa.table(
        {
            "source_id": pa.array(["a"] * len(values)),
            "id": pa.array([str(i) for i in range(len(values))]),
            "n": pa.array(values, type_),
        }
    )






def test_a_password_in_a_database_uri_never_reaches_an_error(tmp_path):
    from kpihub.destinations.base import masked_uri

    assert (
        masked_uri("postgresql://bob:s3cr3t-pw@127.0.0.1:1/db?schema=x")
        == "postgresql://bob:***@127.0.0.1:1/db?schema=x"
    )
    with pytest.raises(DestinationError) as info:
        ADBCDestination().open("postgresql://bob:s3cr3t-pw@127.0.0.1:1/db")  # nothing listens on port 1
    assert "s3cr3t-pw" not in str(info.value) and "cannot connect to postgresql://bob:***@127.0.0.1:1/db" in str(
        info.value
    )


def test_partitioned_files_split_by_day_and_a_rerun_window_replaces_without_duplicates(tmp_path):
    import datetime as dt

    from kpihub.model import CANONICAL_TABLES

    schema = CANONICAL_TABLES["orders"].schema

    def orders(rows):
        return pa.Table.from_pylist(
            [
                {
                    "source_id": "stripe",
                    "order_id": o,
                    "net_amount": Decimal(n),
                    "currency": "EUR",
                    "ordered_at": dt.datetime(2024, 1, d, 12, tzinfo=dt.timezone.utc),
                }
                for o, d, n in rows
            ],
            schema=schema,
        )

    pk = ("source_id", "order_id")
    uri = f"parquet:///{tmp_path}/lake?partition=date"
    with ParquetDestination().open(uri) as s:
        s.commit([TableWrite("orders", orders([("a", 1, "10"), ("b", 1, "20"), ("c", 2, "30")]), "merge", pk)], {})
        # The same window again, one amount corrected: the day's file is replaced, nothing is doubled.
        s.commit([TableWrite("orders", orders([("a", 1, "10"), ("b", 1, "25")]), "merge", pk)], {})
        got = sorted((r["order_id"], r["net_amount"]) for r in s.read_table("orders").to_pylist())
    assert got == [("a", Decimal(10)), ("b", Decimal(25)), ("c", Decimal(30))]
    days = sorted(p.name for p in (tmp_path / "lake" / "orders").iterdir() if p.is_dir())
    assert days == ["date=2024-01-01", "date=2024-01-02"]
    files = sorted(p.relative_to(tmp_path / "lake").as_posix() for p in (tmp_path / "lake").rglob("*.parquet"))
    assert len(files) == 2  # the replaced file of 1 January is gone
    import pyarrow.dataset as ds

    hive = ds.dataset(tmp_path / "lake" / "orders", format="parquet", partitioning="hive")
    assert hive.to_table(filter=ds.field("date") == "2024-01-02").num_rows == 1  # pruned by day




def test_a_duckdb_writer_keeps_no_more_than_it_must_cached_between_commits(tmp_path):
    # DuckDB keeps every block a commit wrote in its pool until the pool is full, so a sync's memory
    # grew with the table (2M contacts: 92 MB more than 200k); the writer evicts after each commit.
    import numpy as np

    def noise(seed: int, n: int) -> pa.Array:  # 32 random bytes a row: blocks that do not compress
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(32), n, [None, pa.py_buffer(np.random.default_rng(seed).bytes(n * 32))]
        ).cast(pa.binary())

    with DuckDBDestination().open(f"duckdb:///{tmp_path}/x.duckdb") as session:
        for start in range(0, 400_000, 100_000):
            data = pa.table(
                {
                    "id": pa.array(range(start, start + 100_000)),
                    **{f"n{i}": noise(start + i, 100_000) for i in range(4)},
                }
            )
            session.commit([TableWrite("t", data, mode="merge", primary_key=("id",))], {})
        cached = session.con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0]
        assert session.con.execute("SELECT count(*) FROM t").fetchall() == [(400_000,)]
    assert cached <= 16 * 2**20  # of the table's 51 MB
