"""The conformance suite every destination plugin runs: round trips, atomic state, evolution, crash points.

Subclass :class:`DestinationConformance` in the plugin's tests (the class name must start with
``Test``), name the destination and say where a fresh one lives::

    from kpihub.testing.conformance import DestinationConformance

    class TestLinesConformance(DestinationConformance):
        destination = LinesDestination()

        def uri(self, path):
            return f"lines:///{path}"      # path: a new directory under pytest's tmp_path

pytest then runs every ``test_*`` below against it. A commit is the unit everything is checked
by: ``append`` adds rows, ``merge`` replaces the rows with the same (composite) primary key and
adds the rest — of rows sharing a key in one batch the last one wins —, ``replace`` swaps the
whole table or the rows of a scope (``{"source_id": "b"}``) for the new ones; values of every type
the canonical model uses read back equal and of the same Arrow type; state entries are committed
with the data, survive a reopen and are read by a read-only session; a commit that fails changes
neither tables nor state; a new nullable column is added (old rows read null), a widened type
(int32 → int64 → decimal) keeps the old values, an incompatible one fails naming table, column and
types; a staged full refresh (``staged_from``) swaps its hidden staging table in with the state
and drops it; the tables are queryable by name in DuckDB after :meth:`~kpihub.DestinationSession.attach`
(the KPI engine reads them so); a second writer is refused while one is open
(``exclusive_writer = False`` to opt out, for stores that cannot lock).

The crash test (:meth:`DestinationConformance.test_a_commit_killed_at_any_step_leaves_the_old_or_the_new`)
runs one commit (a merge, a replace, a new table and a staged full refresh swapped in, with state)
in a child process and SIGKILLs it at each step it passes, as :mod:`kpihub.testing.crash` does for
syncs: the destination's own failpoints (``kpihub.failpoints``) and, for a destination that marks
none, every file-system step (``os.replace``, ``os.fsync``, ``open`` for writing, ...). After every
kill, the next session sees the tables and state as they were before the commit, or as an
uninterrupted commit leaves them — never a mix — and can commit again. The destination object is
pickled into the child, so its class must be importable (defined in the plugin's package, not in
the test file).

A destination whose URI needs a server overrides :meth:`DestinationConformance.uri` to make a
database or schema of its own per call (or skip when the server is not configured) and
:meth:`DestinationConformance.cleanup` to drop it.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from kpihub.destinations.base import Destination, DestinationSession, TableWrite, staging_name
from kpihub.errors import DestinationError
from kpihub.testing.crash import ForkLauncher, KillPoint, run_sync, trace_run

__all__ = ["DestinationConformance", "ROWS", "rows_table"]

#: The schema of the suite's test rows: a composite primary key ``(source_id, id)``, a value, money.
ROWS = pa.schema([("source_id", pa.string()), ("id", pa.string()), ("v", pa.int64()), ("amount", pa.decimal128(38, 9))])
PK = ("source_id", "id")
#: One column of each type the canonical model uses, and a row of nulls.
TYPES = pa.schema(
    [
        ("source_id", pa.string()),
        ("id", pa.string()),
        ("i", pa.int64()),
        ("f", pa.float64()),
        ("b", pa.bool_()),
        ("d", pa.decimal128(38, 9)),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("s", pa.string()),
    ]
)


def rows_table(*rows: tuple[str, str, int]) -> pa.Table:
    """A table of :data:`ROWS` from ``(source_id, id, v)`` tuples (amount: v / 4, exact in decimal)."""
    data = [{"source_id": s, "id": i, "v": v, "amount": Decimal(v) / 4} for s, i, v in rows]
    return pa.Table.from_pylist(data, schema=ROWS)


def _rows(session: DestinationSession, table: str) -> list[tuple[Any, ...]]:
    got = session.read_table(table)
    return sorted((r["source_id"], r["id"], r["v"]) for r in got.to_pylist())


def _snapshot(session: DestinationSession) -> dict[str, Any]:
    """Every table's rows (sorted, all columns) and every state entry: what a commit may change."""
    tables = {}
    for name in session.tables():
        rows = session.read_table(name).to_pylist()
        tables[name] = sorted((tuple(sorted(r.items())) for r in rows), key=repr)
    return {"tables": tables, "state": session.all_state()}


class DestinationConformance:
    """Base class of a destination plugin's conformance tests (see the module docstring)."""

    #: The destination under test.
    destination: ClassVar[Destination]
    #: Whether a second session opened for writing is refused while one is open (a lock).
    exclusive_writer: ClassVar[bool] = True
    #: At most this many kill points in the crash test (spread over the commit's steps; the first
    #: pass of every failpoint the destination marks itself is always among them).
    max_kill_points: ClassVar[int] = 12

    # -- what a plugin provides ------------------------------------------------------

    def uri(self, path: Path) -> str:
        """The URI of a new, empty destination; ``path`` is a fresh directory name under ``tmp_path``."""
        raise NotImplementedError

    def cleanup(self, uri: str) -> None:
        """Remove what :meth:`uri` made outside ``tmp_path`` (a database schema); default: nothing."""

    # -- fixtures and helpers --------------------------------------------------------

    @pytest.fixture
    def new_uri(self, tmp_path: Path) -> Iterator[Callable[[], str]]:
        """A function returning the URI of a new, empty destination at each call (cleaned up after)."""
        made: list[str] = []

        def make() -> str:
            uri = self.uri(tmp_path / f"dest{len(made)}")
            made.append(uri)
            return uri

        yield make
        for uri in made:
            self.cleanup(uri)

    def open(self, uri: str, *, read_only: bool = False) -> DestinationSession:
        """A session of the destination at ``uri``."""
        return self.destination.open(uri, read_only=read_only)

    # -- modes -----------------------------------------------------------------------

    def test_append_merge_replace_round_trip(self, new_uri: Callable[[], str]) -> None:
        """Append adds; merge on a composite key replaces and adds (last of a batch's duplicates wins);
        replace swaps the table or a scope; a read-only session after a reopen sees the same rows."""
        uri = new_uri()
        with self.open(uri) as s:
            first = rows_table(("a", "1", 1), ("a", "2", 1), ("b", "1", 1), ("b", "2", 1))
            s.commit([TableWrite("t", first, "append")], {})
            assert _rows(s, "t") == [("a", "1", 1), ("a", "2", 1), ("b", "1", 1), ("b", "2", 1)]
            # The key is both columns: ("a", "2") replaces its row and no other ("b", "2" stays), ("c", "2") is
            # new, and of ("a", "3") twice in the batch the last one wins.
            batch = rows_table(("a", "2", 2), ("a", "3", 2), ("c", "2", 2), ("a", "3", 3))
            s.commit([TableWrite("t", batch, "merge", PK)], {})
            merged = [("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("b", "1", 1), ("b", "2", 1), ("c", "2", 2)]
            assert _rows(s, "t") == merged
            s.commit([TableWrite("t", rows_table(("a", "9", 9)), "append")], {})
            assert _rows(s, "t") == sorted([*merged, ("a", "9", 9)])
            s.commit([TableWrite("t", rows_table(("b", "7", 7)), "replace", scope={"source_id": "b"})], {})
            assert _rows(s, "t") == sorted([r for r in merged if r[0] != "b"] + [("a", "9", 9), ("b", "7", 7)])
            s.commit([TableWrite("t", rows_table(("a", "5", 5)), "replace")], {})
            assert _rows(s, "t") == [("a", "5", 5)]
        with self.open(uri, read_only=True) as s:
            assert _rows(s, "t") == [("a", "5", 5)]

    def test_a_first_merge_creates_the_table_and_drops_duplicate_keys(self, new_uri: Callable[[], str]) -> None:
        """A merge into a table that does not exist yet creates it, its batch's duplicates merged too."""
        with self.open(new_uri()) as s:
            s.commit([TableWrite("m", rows_table(("a", "1", 1), ("b", "1", 1), ("a", "1", 2)), "merge", PK)], {})
            assert _rows(s, "m") == [("a", "1", 2), ("b", "1", 1)]
            assert s.tables() == ["m"]

    def test_a_staged_replace_swaps_the_stage_in_with_the_state(self, new_uri: Callable[[], str]) -> None:
        """A full refresh writes its chunks to a hidden staging table; one commit swaps stage and last chunk
        in with the state and drops the stage, so the next run stages from nothing."""
        stage = staging_name("t", "src.t")
        with self.open(new_uri()) as s:
            s.commit([TableWrite("t", rows_table(("a", "1", 1)), "append")], {"src.t": {"cursor": "old"}})
            s.commit([TableWrite(stage, rows_table(("a", "5", 5), ("a", "6", 6)), "replace", PK)], {})
            s.commit([TableWrite(stage, rows_table(("a", "6", 7)), "merge", PK)], {})
            assert s.tables() == ["t"] and _rows(s, "t") == [("a", "1", 1)]  # the stage is hidden, t unchanged
            swap = TableWrite("t", rows_table(("a", "7", 7)), "replace", PK, staged_from=stage)
            s.commit([swap], {"src.t": {"cursor": "new"}})
            assert _rows(s, "t") == [("a", "5", 5), ("a", "6", 7), ("a", "7", 7)]
            assert s.get_state("src.t") == {"cursor": "new"} and s.tables() == ["t"]
            s.commit([TableWrite(stage, rows_table(("a", "9", 9)), "append", PK)], {})
            s.commit([TableWrite("t", rows_table(), "replace", PK, staged_from=stage)], {"src.t": {"cursor": "2"}})
            assert _rows(s, "t") == [("a", "9", 9)]  # the stage of the swap before is gone; no rows in the last chunk
            assert s.get_state("src.t") == {"cursor": "2"}

    def test_every_type_reads_back_equal(self, new_uri: Callable[[], str]) -> None:
        """Strings (quotes, newlines, non-ASCII), integers, floats, booleans, decimals, UTC timestamps
        (to the microsecond), dates and nulls read back with their values and Arrow types."""
        ts = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone.utc)
        full = {"i": -5, "f": 0.1, "b": True, "d": Decimal("1234.567890123"), "ts": ts, "day": ts.date()}
        rows = [
            {"source_id": "a", "id": "1", **full, "s": "é ü 🙂 'q' \"dq\" \\ \n;,"},
            {"source_id": "a", "id": "2", "i": 2**62, "f": -1e300, "b": False, "s": ""},
            {"source_id": "a", "id": "3"},  # every value null
        ]
        data = pa.Table.from_pylist(rows, schema=TYPES)
        with self.open(new_uri()) as s:
            s.commit([TableWrite("typed", data, "append")], {})
            back = s.read_table("typed")
        assert [(f.name, f.type) for f in back.schema] == [(f.name, f.type) for f in TYPES]
        assert sorted(back.to_pylist(), key=lambda r: r["id"]) == data.to_pylist()

    def test_a_column_null_for_its_first_thousands_of_rows_reads_back(self, new_uri: Callable[[], str]) -> None:
        """A column null in its first 2,990 rows keeps its type (readers that infer a type from the
        first batch read such a column as the wrong type, then fail on its first value)."""
        n = 3000
        data = pa.table(
            {
                "source_id": ["a"] * n,
                "id": [str(i) for i in range(n)],
                "parent": [None] * (n - 10) + [f"p{i}" for i in range(10)],
            },
            schema=pa.schema([("source_id", pa.string()), ("id", pa.string()), ("parent", pa.string())]),
        )
        with self.open(new_uri()) as s:
            s.commit([TableWrite("t", data, "append")], {})
            back = s.read_table("t")
        assert back.schema.field("parent").type == pa.string()
        assert sorted(v for v in back.column("parent").to_pylist() if v) == [f"p{i}" for i in range(10)]

    # -- state -----------------------------------------------------------------------

    def test_state_commits_with_the_data_and_survives_a_reopen(self, new_uri: Callable[[], str]) -> None:
        """State entries are committed with the rows, replaced key by key, and read back after a reopen
        (by a read-only session too); a state-only commit writes no table."""
        uri = new_uri()
        with self.open(uri) as s:
            assert s.get_state("src.t") is None and s.all_state() == {}
            s.commit([TableWrite("t", rows_table(("a", "1", 1)), "append")], {"src.t": {"cursor": "c1", "n": 1}})
            s.commit([], {"src.u": {"windows": [["2024-01-01", "2024-01-31"]]}})
            s.commit([TableWrite("t", rows_table(("a", "2", 2)), "append")], {"src.t": {"cursor": "c2", "n": 2}})
        for read_only in (False, True):
            with self.open(uri, read_only=read_only) as s:
                assert s.get_state("src.t") == {"cursor": "c2", "n": 2}
                assert s.all_state() == {
                    "src.t": {"cursor": "c2", "n": 2},
                    "src.u": {"windows": [["2024-01-01", "2024-01-31"]]},
                }
                assert s.tables() == ["t"] and _rows(s, "t") == [("a", "1", 1), ("a", "2", 2)]

    def test_a_failed_commit_changes_neither_tables_nor_state(self, new_uri: Callable[[], str]) -> None:
        """A commit with one bad write (a merge without a key) writes none of its tables and no state."""
        with self.open(new_uri()) as s:
            s.commit([TableWrite("t", rows_table(("a", "1", 1)), "append")], {"k": {"cursor": 1}})
            before = _snapshot(s)
            good = TableWrite("u", rows_table(("a", "3", 3)), "append")
            bad = TableWrite("t", rows_table(("a", "2", 2)), "merge", ())
            with pytest.raises(DestinationError, match="merge needs a primary key"):
                s.commit([good, bad], {"k": {"cursor": 2}})
            assert _snapshot(s) == before

    # -- schema evolution --------------------------------------------------------------

    def test_a_new_nullable_column_is_added(self, new_uri: Callable[[], str]) -> None:
        """Rows with a column the table lacks add it; the old rows read null there."""
        with self.open(new_uri()) as s:
            s.commit([TableWrite("t", rows_table(("a", "1", 1)), "append")], {})
            wider = rows_table(("a", "2", 2)).append_column("extra", pa.array(["x"]))
            s.commit([TableWrite("t", wider, "merge", PK)], {})
            back = s.read_table("t")
        assert back.schema.field("extra").type == pa.string()
        assert {r["id"]: r["extra"] for r in back.to_pylist()} == {"1": None, "2": "x"}

    def test_a_widened_type_is_migrated_and_old_values_kept(self, new_uri: Callable[[], str]) -> None:
        """int32 → int64 → decimal: the column takes the wider type and every old value is kept."""
        with self.open(new_uri()) as s:
            s.commit([TableWrite("w", _typed([1, 2], pa.int32()), "append")], {})
            s.commit([TableWrite("w", _typed([3_000_000_000], pa.int64()), "append")], {})
            s.commit([TableWrite("w", _typed([Decimal("1.25")], pa.decimal128(38, 9)), "append")], {})
            back = s.read_table("w")
        assert pa.types.is_decimal(back.schema.field("n").type)
        assert sorted(back["n"].to_pylist()) == [1, Decimal("1.25"), 2, 3_000_000_000]

    def test_an_incompatible_type_change_fails_naming_table_column_and_types(self, new_uri: Callable[[], str]) -> None:
        """Strings into an integer column fail with a DestinationError naming them; nothing is written."""
        with self.open(new_uri()) as s:
            s.commit([TableWrite("w", _typed([1, 2], pa.int64()), "append")], {"k": {"v": 1}})
            with pytest.raises(DestinationError, match=r"table 'w', column 'n': type changed from int64 to string"):
                s.commit([TableWrite("w", _typed(["1,5"], pa.string()), "append")], {"k": {"v": 2}})
            assert s.get_state("k") == {"v": 1} and s.read_table("w").num_rows == 2

    # -- what the rest of kpihub relies on -------------------------------------------

    def test_attached_tables_are_queryable_in_duckdb(self, new_uri: Callable[[], str]) -> None:
        """:meth:`~kpihub.DestinationSession.attach` makes every table queryable by name (the KPI engine)."""
        import duckdb

        uri = new_uri()
        with self.open(uri) as s:
            s.commit([TableWrite("t", rows_table(("a", "1", 1), ("b", "2", 3)), "append")], {})
        with self.open(uri, read_only=True) as s:  # as `kpihub kpis` opens it
            con = duckdb.connect()
            try:
                s.attach(con)
                got = con.execute('SELECT sum(v), sum(amount) FROM "t"').fetchall()
            finally:
                con.close()
        assert got == [(4, Decimal("1.000000000"))]

    def test_a_second_writer_is_refused(self, new_uri: Callable[[], str]) -> None:
        """While one session may write, opening another for writing fails and says why."""
        if not self.exclusive_writer:
            pytest.skip("the destination cannot lock (exclusive_writer = False): one writer at a time by convention")
        uri = new_uri()
        with self.open(uri):
            with pytest.raises(DestinationError, match="another sync is already running on"):
                self.open(uri)

    # -- crash points ------------------------------------------------------------------

    def test_a_commit_killed_at_any_step_leaves_the_old_or_the_new(
        self, new_uri: Callable[[], str], tmp_path: Path
    ) -> None:
        """SIGKILL one commit (merge, replace, a new table, a staged swap, state) at each step: the next sees
        the tables and state from before it or those of the whole commit, never a mix, and writes on."""
        launcher = ForkLauncher("kpihub.testing._commit_child", preload=("kpihub.destinations",))
        writes, state = self._crash_commit()
        traced_uri = self._before_crash(new_uri())
        with self.open(traced_uri, read_only=True) as s:
            before = _snapshot(s)
        job = self._job(tmp_path, traced_uri, writes, state)
        steps = trace_run(launcher, [job], dict(os.environ), timeout=120)
        with self.open(traced_uri, read_only=True) as s:
            after = _snapshot(s)
        assert after != before and steps, "the commit changed nothing, or passed no step to kill at"
        outcomes = []
        for point in self._kill_points(steps):
            uri = self._before_crash(new_uri())
            outcome = run_sync(launcher, [self._job(tmp_path, uri, writes, state)], dict(os.environ), point)
            assert outcome.killed, f"{point}: the child was not killed there: {outcome.stderr[-2000:]}"
            outcomes.append((point, self._after_kill(uri, point, before, after)))
        left = [str(p) for p, new in outcomes if not new]
        assert left, f"no kill left the old tables: no step before the commit point was killed ({outcomes})"
        print(f"{self.destination.name}: {len(outcomes)} kills, the old tables left by {', '.join(left)}")

    def _crash_commit(self) -> tuple[list[TableWrite], dict[str, Any]]:
        writes = [
            TableWrite("t", rows_table(("a", "2", 20), ("a", "4", 40)), "merge", PK),
            TableWrite("u", rows_table(("b", "9", 90)), "replace"),
            TableWrite("w", rows_table(("c", "1", 1)), "append"),
            TableWrite("v", rows_table(("d", "3", 3)), "replace", PK, staged_from=staging_name("v", "src.v")),
        ]
        return writes, {"src.t": {"cursor": 2}, "src.w": {"cursor": "w1"}}

    def _before_crash(self, uri: str) -> str:
        with self.open(uri) as s:
            s.commit(
                [
                    TableWrite("t", rows_table(("a", "1", 1), ("a", "2", 2)), "append"),
                    TableWrite("u", rows_table(("b", "1", 1)), "append"),
                    TableWrite("v", rows_table(("d", "1", 1)), "append"),
                ],
                {"src.t": {"cursor": 1}},
            )
            stage = rows_table(("d", "2", 2))  # a full refresh of v, staged: the killed commit swaps it in
            s.commit([TableWrite(staging_name("v", "src.v"), stage, "replace", PK)], {})
        return uri

    def _job(self, where: Path, uri: str, writes: Sequence[TableWrite], state: Mapping[str, Any]) -> str:
        path = where / f"job-{uuid.uuid4().hex[:12]}.pickle"
        path.write_bytes(pickle.dumps((self.destination, uri, list(writes), dict(state))))
        return str(path)

    def _kill_points(self, steps: Sequence[str]) -> list[KillPoint]:
        """The first pass of each failpoint the destination marks, then its later passes and the file
        steps spread evenly over the commit, up to :attr:`max_kill_points` in all."""
        seen: dict[str, int] = {}
        points = []
        for name in steps:
            seen[name] = seen.get(name, 0) + 1
            points.append(KillPoint(name, seen[name]))
        first = [p for p in points if p.nth == 1 and not p.name.startswith(("os.", "open."))]
        rest = [p for p in points if p not in first]
        room = max(self.max_kill_points - len(first), 0)
        if len(rest) > room:
            rest = [rest[round(i * (len(rest) - 1) / max(room - 1, 1))] for i in range(room)]
        return sorted(set(first) | set(rest), key=points.index)

    def _after_kill(self, uri: str, point: KillPoint, before: dict[str, Any], after: dict[str, Any]) -> bool:
        """Check what a kill at ``point`` left; True when the commit had happened."""
        with self.open(uri) as s:  # the next writer: it may clean up what the killed one left
            got = _snapshot(s)
            assert got in (before, after), f"killed at {point}: a mix of the old and the new: {got}"
            s.commit([TableWrite("t", rows_table(("a", "8", 8)), "merge", PK)], {"src.t": {"cursor": 3}})
        with self.open(uri, read_only=True) as s:
            assert ("a", "8", 8) in _rows(s, "t") and s.get_state("src.t") == {"cursor": 3}, point
        return got == after


def _typed(values: list[Any], type_: pa.DataType) -> pa.Table:
    return pa.table(
        {
            "source_id": pa.array(["a"] * len(values)),
            "id": pa.array([str(i) for i in range(len(values))]),
            "n": pa.array(values, type_),
        }
    )
