"""Staged replace (issue 13, finding 3): a replacing stream's chunks go to a staging table and one commit swaps
them in with the state, so a run stopped or killed before the end leaves the previous table and state as
they were. The same contract over every destination (the ``open_dest`` kinds of test_destinations)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from kpihub.destinations.base import STAGE_PREFIX, TableWrite, is_staging, staged_table, staging_name
from kpihub.destinations.parquet import ParquetDestination
from kpihub.errors import DestinationError
from tests import test_destinations
from tests.test_destinations import _typed, r, rows, table

open_dest = test_destinations.open_dest  # the fixture: every destination kind

PK = ("source_id", "id")
#: A raw stream table (PostgreSQL puts it, and its stage, in a schema of the source's own).
RAW = "src_t"


def raw(table_: str, data: pa.Table, mode: str, **kw) -> TableWrite:
    return TableWrite(table_, data, mode, PK, namespace="src", **kw)  # type: ignore[arg-type]


def stage_exists(session, stage: str) -> bool:
    """Whether the staging table is still stored anywhere (not just hidden)."""
    if hasattr(session, "manifest"):
        files = [f for f in session.store.files() if f.startswith(stage + "/")]
        return stage in session.manifest["tables"] or bool(files)
    if hasattr(session, "cur"):
        schema, name = session._locations.get(stage, (session.schema, stage))
        if session.dialect == "sqlite" or session.schema is None:
            session.cur.execute(f"SELECT count(*) FROM sqlite_master WHERE name = '{name}'")
        else:
            session.cur.execute(
                f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{name}' AND "
                f"table_schema LIKE '{session.schema}%'"
            )
        (n,) = session.cur.fetchone()
        session.con.commit()
        return bool(n) or session.table_schema(stage) is not None
    return session._has_table(stage)


def stage_three_times(session, stage: str) -> None:
    """A run's chunks: the first replaces whatever an earlier run left, the next merge and append."""
    session.commit([raw(stage, table([r("a", "10", 10), r("a", "11", 11)]), "replace")], {})
    session.commit([raw(stage, table([r("a", "11", 12), r("a", "12", 12)]), "merge")], {})
    session.commit([raw(stage, table([r("a", "13", 13)]), "append")], {})


STAGED = [("a", "10", 10), ("a", "11", 12), ("a", "12", 12), ("a", "13", 13)]


def test_staging_names_are_hidden_short_and_distinct_per_stream():
    a, b = staging_name("contacts", "hubspot.contacts"), staging_name("contacts", "salesforce.contacts")
    assert a != b and a.startswith(STAGE_PREFIX + "contacts__") and is_staging(a)
    assert staged_table(a) == "contacts" and staged_table("contacts") is None
    long = staging_name("x" * 80, "k")
    assert len(long) == 63 and long != staging_name("x" * 81, "k")


def test_a_staged_replace_swaps_the_stage_and_data_in_with_the_state(open_dest):
    stage = staging_name(RAW, "src.t")
    with open_dest() as s:
        s.commit([raw(RAW, table([r("a", "1", 1), r("a", "2", 2)]), "append")], {"src.t": {"cursor": "old"}})
        stage_three_times(s, stage)
        # Until the swap, the table and the state are the previous ones, and the stage is nobody's to see.
        assert rows(s, RAW) == [("a", "1", 1), ("a", "2", 2)] and s.get_state("src.t") == {"cursor": "old"}
        assert s.tables() == [RAW] and rows(s, stage) == STAGED
        s.commit([raw(RAW, table([r("a", "14", 14)]), "replace", staged_from=stage)], {"src.t": {"cursor": "new"}})
        assert rows(s, RAW) == [*STAGED, ("a", "14", 14)]
        assert not stage_exists(s, stage) and s.tables() == [RAW]
    with open_dest(read_only=True) as s:
        assert rows(s, RAW) == [*STAGED, ("a", "14", 14)] and s.get_state("src.t") == {"cursor": "new"}
        assert s.tables() == [RAW] and not stage_exists(s, stage)
        import duckdb

        con = duckdb.connect()
        s.attach(con)
        assert con.execute(f'SELECT count(*) FROM "{RAW}"').fetchall() == [(5,)]
        with pytest.raises(duckdb.CatalogException):  # the KPI engine cannot see a stage by name
            con.execute(f'SELECT count(*) FROM "{stage}"')


def test_a_scoped_staged_replace_keeps_other_sources_rows(open_dest):
    mine, theirs = staging_name("t", "a.t"), staging_name("t", "b.t")
    with open_dest() as s:
        s.commit([TableWrite("t", table([r("a", "1", 1), r("b", "1", 1), r("c", "1", 1)]), "append")], {})
        s.commit([TableWrite(mine, table([r("a", "7", 7)]), "replace")], {})
        s.commit([TableWrite(theirs, table([r("b", "8", 8)]), "replace")], {})  # another source's stage
        s.commit([TableWrite(mine, table([r("a", "8", 8)]), "append")], {})
        scope = {"source_id": "a"}
        s.commit([TableWrite("t", table([r("a", "9", 9)]), "replace", PK, scope, staged_from=mine)], {"a.t": {"n": 3}})
        assert rows(s, "t") == [("a", "7", 7), ("a", "8", 8), ("a", "9", 9), ("b", "1", 1), ("c", "1", 1)]
        assert not stage_exists(s, mine) and rows(s, theirs) == [("b", "8", 8)]
        s.commit([TableWrite("t", table([]), "replace", PK, {"source_id": "b"}, staged_from=theirs)], {})
    with open_dest(read_only=True) as s:
        assert rows(s, "t") == [("a", "7", 7), ("a", "8", 8), ("a", "9", 9), ("b", "8", 8), ("c", "1", 1)]
        assert s.get_state("a.t") == {"n": 3} and s.tables() == ["t"]


def test_a_run_killed_before_the_swap_leaves_table_and_state_and_the_next_run_discards_its_stage(open_dest):
    stage = staging_name(RAW, "src.t")
    with open_dest() as s:
        s.commit([raw(RAW, table([r("a", "1", 1), r("a", "2", 2)]), "merge")], {"src.t": {"cursor": "old"}})
        before = s.read_table(RAW)
        stage_three_times(s, stage)  # ... and the run dies here: no swap
    with open_dest() as s:
        assert s.read_table(RAW).sort_by("id").equals(before.sort_by("id"))
        assert s.all_state() == {"src.t": {"cursor": "old"}} and s.tables() == [RAW]
        # The next run starts its stage with a replace: what the killed run staged is gone.
        s.commit([raw(stage, table([r("a", "20", 20)]), "replace")], {})
        assert rows(s, stage) == [("a", "20", 20)]
        s.commit([raw(RAW, table([r("a", "21", 21)]), "replace", staged_from=stage)], {"src.t": {"cursor": "new"}})
    with open_dest(read_only=True) as s:
        assert rows(s, RAW) == [("a", "20", 20), ("a", "21", 21)] and s.get_state("src.t") == {"cursor": "new"}


def test_staged_rows_may_bring_a_new_column_and_a_widened_type(open_dest):
    stage = staging_name("w", "src.w")
    with open_dest() as s:
        s.commit([TableWrite("w", _typed([1, 2], pa.int32()), "append")], {})
        s.commit([TableWrite(stage, _typed([3_000_000_000], pa.int64()), "replace")], {})  # int32 → int64
        wider = _typed([4, 5], pa.int64()).append_column("extra", pa.array(["x", None]))
        s.commit([TableWrite(stage, wider, "append")], {})
        last = _typed([Decimal("1.25")], pa.decimal128(38, 9))  # → decimal, in the swap's own rows
        s.commit([TableWrite("w", last, "replace", staged_from=stage)], {})
        got = s.read_table("w")
    assert pa.types.is_decimal(got.schema.field("n").type) and "extra" in got.column_names
    assert sorted(got["n"].to_pylist()) == [Decimal("1.25"), 4, 5, 3_000_000_000]
    assert sorted(got["extra"].to_pylist(), key=str) == [None, None, None, "x"]


def test_a_whole_table_staged_replace_rebuilds_a_table_whose_types_changed(open_dest):
    stage = staging_name("w", "src.w")
    with open_dest() as s:
        s.commit([TableWrite("w", _typed(["1,5", "2"], pa.string()), "append")], {})
        s.commit([TableWrite(stage, _typed([7, 8], pa.int64()), "replace")], {})
        s.commit([TableWrite("w", _typed([], pa.int64()), "replace", staged_from=stage)], {})
        got = s.read_table("w")
    assert got.schema.field("n").type == pa.int64() and sorted(got["n"].to_pylist()) == [7, 8]


def test_a_scoped_staged_replace_of_an_incompatible_type_fails_and_changes_nothing(open_dest):
    stage = staging_name("w", "a.w")
    with open_dest() as s:
        s.commit([TableWrite("w", _typed([1, 2], pa.int64()), "append")], {"k": {"v": 1}})
        s.commit([TableWrite(stage, _typed(["1,5"], pa.string()), "replace")], {})
        bad = TableWrite("w", _typed([], pa.string()), "replace", scope={"source_id": "a"}, staged_from=stage)
        with pytest.raises(DestinationError, match=r"table 'w', column 'n': type changed from int64 to string"):
            s.commit([bad], {"k": {"v": 2}})
        assert s.get_state("k") == {"v": 1} and sorted(s.read_table("w")["n"].to_pylist()) == [1, 2]
        assert s.read_table(stage).num_rows == 1  # the stage is still there, for a rerun to replace


def test_staged_from_is_refused_unless_it_names_a_staging_table_of_a_replace(open_dest):
    stage = staging_name("t", "src.t")
    with open_dest() as s:
        s.commit([TableWrite("t", table([r("a", "1", 1)]), "append"), TableWrite("u", table([]), "append")], {})
        s.commit([TableWrite(stage, table([r("a", "2", 2)]), "replace")], {"k": {"v": 1}})
        refused = {
            "needs mode 'replace'": TableWrite("t", table([]), "merge", PK, staged_from=stage),
            "is not a staging table": TableWrite("t", table([]), "replace", staged_from="u"),
            "does not exist": TableWrite("t", table([]), "replace", staged_from=staging_name("t", "other")),
        }
        for message, write in refused.items():
            with pytest.raises(DestinationError, match=message):
                s.commit([write], {"k": {"v": 2}})
        assert rows(s, "t") == [("a", "1", 1)] and rows(s, "u") == [] and rows(s, stage) == [("a", "2", 2)]
        assert s.get_state("k") == {"v": 1}


def test_the_swap_never_reads_the_stage_into_python(open_dest, monkeypatch):
    """The stage may be the whole table (millions of rows): it moves inside the destination."""
    stage = staging_name("t", "src.t")
    with open_dest() as s:
        s.commit([TableWrite("t", table([r("a", "1", 1), r("b", "1", 1)]), "append")], {})
        stage_rows = [r("a", str(i), i) for i in range(2000)]
        s.commit([TableWrite(stage, table(stage_rows), "replace")], {})
        s.commit([TableWrite(stage, table([r("a", "x", 1)]), "append")], {})
        reads = _spy_reads(s, monkeypatch)
        scope = {"source_id": "a"}
        s.commit([TableWrite("t", table([r("a", "y", 2)]), "replace", PK, scope, staged_from=stage)], {})
        monkeypatch.undo()
        assert not [x for x in reads if stage in x], f"{open_dest.kind} read the stage: {reads}"
        assert len(rows(s, "t")) == 2000 + 1 + 1 + 1


def _spy_reads(session, monkeypatch) -> list[str]:
    """Record what the session reads into Python: files (file destinations), result sets (databases)."""
    reads: list[str] = []
    if hasattr(session, "manifest"):
        for method in ("_read_file", "_local"):
            original = getattr(session, method)

            def spy(rel, *args, _original=original):
                reads.append(rel)
                return _original(rel, *args)

            monkeypatch.setattr(session, method, spy)
        dataset = session._dataset

        def spy_dataset(files, schema):
            reads.extend(files)
            return dataset(files, schema)

        monkeypatch.setattr(session, "_dataset", spy_dataset)
    elif hasattr(session, "cur"):

        class Cursor:
            def __init__(self, cur):
                self._cur = cur

            def execute(self, sql, *args):
                if sql.lstrip().upper().startswith("SELECT") and "_kpihub_schemas" not in sql:
                    reads.append(sql)  # a result set that comes back to Python
                return self._cur.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(self._cur, name)

        monkeypatch.setattr(session, "cur", Cursor(session.cur))
    else:
        import kpihub.destinations.duckdb as duck

        fetch = duck.fetch_arrow

        def spy_fetch(con, sql):
            if "LIMIT 0" not in sql:
                reads.append(sql)
            return fetch(con, sql)

        monkeypatch.setattr(duck, "fetch_arrow", spy_fetch)
    return reads


def test_a_partitioned_lake_takes_the_staged_files_into_its_day_directories(tmp_path):
    import datetime as dt

    import pyarrow.dataset as ds

    from kpihub.model import CANONICAL_TABLES

    def orders(rows_):
        return pa.Table.from_pylist(
            [
                {
                    "source_id": "stripe",
                    "order_id": o,
                    "net_amount": Decimal(10),
                    "currency": "EUR",
                    "ordered_at": dt.datetime(2024, 1, d, 12, tzinfo=dt.timezone.utc),
                }
                for o, d in rows_
            ],
            schema=CANONICAL_TABLES["orders"].schema,
        )

    lake = tmp_path / "lake"
    stage = staging_name("orders", "stripe.charges")
    scope = {"source_id": "stripe"}
    with ParquetDestination().open(f"parquet:///{lake}?partition=date") as s:
        s.commit([TableWrite("orders", orders([("old", 1)]), "append")], {})
        s.commit([TableWrite(stage, orders([("a", 1), ("b", 2)]), "replace")], {})
        s.commit([TableWrite(stage, orders([("c", 3)]), "append")], {})
        assert not (lake / "orders" / "date=2024-01-03").exists()  # directory readers see no staged row
        s.commit([TableWrite("orders", orders([("d", 3)]), "replace", ("order_id",), scope, staged_from=stage)], {})
        assert sorted(o["order_id"] for o in s.read_table("orders").to_pylist()) == ["a", "b", "c", "d"]
    assert not (lake / stage).exists()
    hive = ds.dataset(lake / "orders", format="parquet", partitioning="hive")
    assert sorted(hive.to_table()["order_id"].to_pylist()) == ["a", "b", "c", "d"]
    assert hive.to_table(filter=ds.field("date") == "2024-01-03").num_rows == 2


#: Where a swap can be killed, per destination, and whether the swap has happened by then.
SWAP_KILLS = {
    "duckdb": {"duckdb.swap": False, "duckdb.swapped": False, "duckdb.before_commit": False, "duckdb.committed": True},
    "adbc": {"adbc.swap": False, "adbc.swapped": False, "adbc.before_commit": False, "adbc.committed": True},
    "files": {
        "files.stage_adopted": False,
        "files.renamed": False,
        "files.state_staged": False,
        "files.committed": True,
        "files.deleted": True,
    },
}
KILL_KINDS = {
    **{"duckdb": "duckdb", "sqlite": "adbc", "postgres": "adbc"},
    **{"parquet": "files", "csv": "files", "s3": "files"},
}

_CHILD = """
import os, sys
from decimal import Decimal
import pyarrow as pa
from kpihub.destinations.base import TableWrite, staging_name
from kpihub.failpoints import configure
from kpihub.plugins import Registry

uri = sys.argv[1]
schema = pa.schema(
    [("source_id", pa.string()), ("id", pa.string()), ("v", pa.int64()), ("amount", pa.decimal128(38, 9))]
)
def t(*ids):
    rows = [{"source_id": "a", "id": i, "v": 2, "amount": Decimal(1)} for i in ids]
    return pa.Table.from_pylist(rows, schema=schema)
stage = staging_name("src_t", "src.t")
pk = ("source_id", "id")
s = Registry(load_entrypoints=False).destination_for(uri).open(uri)
s.commit([TableWrite(stage, t("n1", "n2"), "replace", pk, namespace="src")], {})
s.commit([TableWrite(stage, t("n3"), "merge", pk, namespace="src")], {})
configure(os.environ["KILL_AT"])
swap = TableWrite("src_t", t("n4"), "replace", pk, namespace="src", staged_from=stage)
s.commit([swap], {"src.t": {"cursor": "new"}})
"""


@pytest.mark.parametrize("kind", sorted(KILL_KINDS))
def test_a_swap_killed_at_any_of_its_steps_leaves_the_old_table_or_the_new_one(kind, tmp_path, request):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from kpihub.plugins import Registry

    if kind == "postgres":
        uri = request.getfixturevalue("postgres_uri")
    elif kind == "s3":
        uri = request.getfixturevalue("s3_uri")
    else:
        uri = {"duckdb": "duckdb:///{}/x.duckdb", "sqlite": "sqlite:///{}/x.sqlite"}.get(kind, kind + ":///{}/lake")
        uri = uri.format(tmp_path)
    destination = Registry(load_entrypoints=False).destination_for(uri)
    stage = staging_name(RAW, "src.t")
    old = [("a", "1", 1), ("a", "2", 1)]
    new = [("a", "n1", 2), ("a", "n2", 2), ("a", "n3", 2), ("a", "n4", 2)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for point, swapped in SWAP_KILLS[KILL_KINDS[kind]].items():
        with destination.open(uri) as s:  # the previous sync's table and state
            s.commit([raw(RAW, table([r("a", "1", 1), r("a", "2", 1)]), "replace")], {"src.t": {"cursor": "old"}})
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, uri], env={**env, "KILL_AT": point}, capture_output=True, timeout=120
        )
        assert child.returncode == -9, (point, child.stderr.decode()[-2000:])
        with destination.open(uri) as s:  # the next writer: what the killed run left is cleaned up
            got = (rows(s, RAW), s.get_state("src.t"), s.tables())
            assert got == ((new, {"cursor": "new"}, [RAW]) if swapped else (old, {"cursor": "old"}, [RAW])), point
            assert stage_exists(s, stage) != swapped, point
            if hasattr(s, "manifest"):
                listed = {f for entry in s.manifest["tables"].values() for f in entry["files"]}
                stored = {f for f in s.store.files() if not f.startswith("_kpihub/")}
                assert stored == listed, f"after a kill at {point}: files no commit lists: {stored - listed}"
            # ... and the next run stages again from scratch and swaps.
            s.commit([raw(stage, table([r("a", "z", 3)]), "replace")], {})
            s.commit([raw(RAW, table([]), "replace", staged_from=stage)], {"src.t": {"cursor": "rerun"}})
            assert rows(s, RAW) == [("a", "z", 3)] and not stage_exists(s, stage), point


def test_a_users_view_on_the_table_survives_a_staged_full_refresh(open_dest):
    if open_dest.kind not in ("duckdb", "postgres", "sqlite", "adbc+sqlite", "adbc+postgresql"):
        pytest.skip("file destinations have no views")
    stage = staging_name("t", "src.t")
    with open_dest() as s:
        s.commit([TableWrite("t", table([r("a", "1", 1)]), "append")], {})
        prefix = f'"{s.schema}".' if getattr(s, "schema", None) and s.dialect != "sqlite" else ""
        _run(s, f'CREATE VIEW {prefix}"mine" AS SELECT id FROM {prefix}"t"')
        s.commit([TableWrite(stage, table([r("a", "2", 2)]), "replace")], {})
        s.commit([TableWrite("t", table([r("a", "3", 3)]), "replace", staged_from=stage)], {})
        assert sorted(_run(s, f'SELECT id FROM {prefix}"mine"')) == [("2",), ("3",)]


def _run(session, sql: str) -> list[tuple]:
    if hasattr(session, "cur"):
        session.cur.execute(sql)
        out = session.cur.fetchall() if sql.startswith("SELECT") else []
        session.con.commit()
        return out
    result = session.con.execute(sql)
    return result.fetchall() if sql.startswith("SELECT") else []
