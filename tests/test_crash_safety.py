"""SIGKILL a sync at random commit steps, over and over, then let it finish: every destination ends with
exactly the tables of one uninterrupted sync, and after every kill its state points at nothing that is not
durably written.

The child processes run the real ``kpihub sync`` command (the toy source registered as a plugin would be)
against a fake API that keeps changing between runs: new items arrive and old ones change, so every run has
work to do and merges replace rows that earlier, killed runs wrote.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from kpihub.config import load_project
from kpihub.destinations import staging_name
from kpihub.destinations.parquet import ParquetDestination
from kpihub.errors import DestinationError
from kpihub.plugins import Registry
from kpihub.state import decode_cursor, state_key
from kpihub.testing.crash import (
    ForkLauncher,
    KillPoint,
    choose_points,
    commit_steps,
    run_sync,
    trace_points,
    trace_run,
)
from tests.plugins.toy import BASE, FakeToy

ROOT = Path(__file__).resolve().parents[1]
#: Each run is a process of its own, forked from a server that imported kpihub once (a real SIGKILL, a
#: fresh interpreter state, no second of imports per kill point).
LAUNCHER = ForkLauncher("tests.plugins.toy_cli")
#: Kill points per destination that the child actually reached: each failpoint the traced run passed once
#: (at a random occurrence), then random ones up to this many. The suite runs 10; ``python -m bench.crash``
#: runs the long sweep (KPIHUB_TEST_CRASH_KILLS=40). Read at import: the autouse fixture hides KPIHUB_*.
KILLS = int(os.environ.get("KPIHUB_TEST_CRASH_KILLS", "10"))
URIS = {
    "duckdb": "duckdb:///{dir}/data.duckdb",
    "parquet": "parquet:///{dir}/lake",
    "jsonl": "jsonl:///{dir}/lake",
    "csv": "csv:///{dir}/lake",
    "arrow": "arrow:///{dir}/lake",
    "s3": "{s3}",
    "sqlite": "sqlite:///{dir}/data.sqlite",
    "postgres": "{postgres}",
}


def _grow(server: FakeToy, run: int, rng_seed: int) -> None:
    """New items arrive and some old ones change, all later than anything before (so every run has at least
    the work of the traced run the kill points were chosen from)."""
    rng = random.Random(rng_seed * 1000 + run)
    start = max(server.items) + 1
    stamp = BASE + dt.timedelta(days=200 * (run + 1))
    for i in range(start, start + 120):
        server.items[i] = {
            "id": f"it_{i:05d}",
            "name": f"Item {i}",
            "amount": f"{rng.randint(1, 99999) / 100:.2f}",
            "updated": (stamp + dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        }
    for i in rng.sample(sorted(server.items)[: start - 1], 30):
        server.items[i]["name"] = f"Item {i} v{run}"
        server.items[i]["amount"] = f"{rng.randint(1, 99999) / 100:.2f}"
        server.items[i]["updated"] = (stamp + dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z")


def _project(where: Path, uri: str, server: FakeToy) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "kpihub.toml"
    path.write_text(
        f'[project]\ndestination = "{uri}"\nchunk_rows = 40\n[sources.toy]\nbase_url = "{server.url}"\npage_size = 20\n'
    )
    return path


def _beside(uri: str, name: str) -> str:
    """Another database schema, or another prefix in the same bucket, for a second sync."""
    if uri.startswith("s3://"):
        return uri.replace("/lake?", f"/{name}?", 1)
    return f"{uri}_{name}"


def _read(project_file: Path) -> tuple[pa.Table | None, object]:
    project = load_project(project_file)
    uri = project.settings.destination
    try:
        session = Registry(load_entrypoints=False).destination_for(uri).open(uri, root=project.root, read_only=True)
    except DestinationError as exc:
        if "no kpihub data" in str(exc):
            return None, None  # killed before its first commit: nothing to read yet
        raise
    with session as s:
        table = s.read_table("toy_items") if "toy_items" in s.tables() else None
        state = s.get_state(state_key("toy", "items"))
    cursor = decode_cursor(state) if state and "cursor" in state else None
    return table, cursor


def _rows(table: pa.Table | None) -> dict[str, tuple]:
    if table is None:
        return {}
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "duplicate primary keys"
    names, amounts, updated = (table[c].to_pylist() for c in ("name", "amount", "updated"))
    return {i: (n, Decimal(a), u) for i, n, a, u in zip(ids, names, amounts, updated, strict=True)}


def _expected(server: FakeToy) -> dict[str, tuple]:
    out = {}
    for item in server.items.values():
        updated = dt.datetime.fromisoformat(item["updated"].replace("Z", "+00:00"))
        out[item["id"]] = (item["name"], Decimal(item["amount"]), updated)
    return out


def _check_durable(project_file: Path, server: FakeToy, point: KillPoint) -> None:
    """Whatever the state's cursor covers is in the table, at its current version; no duplicates."""
    table, cursor = _read(project_file)
    got = _rows(table)
    if cursor is None:
        return
    for key, (name, amount, updated) in _expected(server).items():
        if updated <= cursor:
            assert key in got, f"after a kill at {point}: state cursor {cursor} is past {key}, which is not stored"
            assert got[key][:2] == (name, amount), (str(point), key, got[key])


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "jsonl", "sqlite", "postgres"])
def test_sigkill_at_random_commit_steps_then_rerun_gives_the_tables_of_an_uninterrupted_sync(kind, tmp_path, request):
    kill_and_rerun(kind, tmp_path, request)


def _setup(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict, dict[str, str]]:
    """The URI parts of ``kind``'s destinations (see :func:`_uri`) and the children's environment."""
    fmt = {"dir": tmp_path / "crashed"}
    if kind == "postgres":
        fmt["postgres"] = request.getfixturevalue("postgres_uri")
    if kind == "s3":  # a bucket per sync below: the fixture's, then ones beside it
        fmt["s3"] = request.getfixturevalue("s3_uri")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KPIHUB_TOY_TOKEN": "toy-secret-token-123"}
    env = {k: v for k, v in env.items() if not k.startswith("KPIHUB_") or k == "KPIHUB_TOY_TOKEN"}
    return fmt, env


def _uri(kind: str, fmt: dict, tmp_path: Path, name: str) -> str:
    """The destination of sync ``name`` (``crashed``, ``probe``, ``reference``): a directory of its own, or
    a database schema / bucket prefix beside the fixture's."""
    if name != "crashed" and kind in ("postgres", "s3"):
        return _beside(fmt[kind], name)
    return URIS[kind].format(**{**fmt, "dir": tmp_path / name})


def kill_and_rerun(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """SIGKILL ``kind``'s sync at ``KILLS`` random points, checking durability after each; then finish."""
    fmt, env = _setup(kind, tmp_path, request)
    seed = sum(map(ord, kind))
    with FakeToy(seed=seed, items=120) as server:
        project = _project(tmp_path / "crashed", URIS[kind].format(**fmt), server)
        command = ["-p", str(project), "sync"]
        # Where an uninterrupted run of this size commits and reads: the menu of kill points.
        probe = _project(tmp_path / "probe", _uri(kind, fmt, tmp_path, "probe"), server)
        counts = trace_points(LAUNCHER, ["-p", str(probe), "sync"], env)
        assert counts["sync.before_commit"] >= 3 and counts["sync.page"] >= 6, counts
        destination_points = {n for n in counts if not n.startswith("sync.")}
        assert destination_points, f"{kind}: the destination marks no commit steps"

        # Every failpoint first (so none is left to chance), then random points.
        names = sorted(counts)
        kills = max(KILLS, len(names))
        outcomes = []
        run = 0
        for point in choose_points(counts, 2 * kills, seed=seed, include=names):
            _grow(server, run, seed)
            run += 1
            outcome = run_sync(LAUNCHER, command, env, point)
            assert outcome.killed or outcome.returncode == 0, (str(point), outcome.stderr[-2000:])
            outcomes.append(outcome)
            _check_durable(project, server, point)
            if sum(o.killed for o in outcomes) == kills:
                break
        killed = [o for o in outcomes if o.killed]
        assert len(killed) == kills, f"only {len(killed)} of {len(outcomes)} runs reached their kill point"
        missed = set(names) - {o.point.name for o in killed}
        assert not missed, f"{kind}: no kill at {', '.join(sorted(missed))}"
        assert {o.point.name for o in killed} & destination_points, "no kill inside the destination's commit"

        final = run_sync(LAUNCHER, command, env)
        assert final.returncode == 0, final.stderr[-2000:]
        reference = _project(tmp_path / "reference", _uri(kind, fmt, tmp_path, "reference"), server)
        once = run_sync(LAUNCHER, ["-p", str(reference), "sync"], env)
        assert once.returncode == 0, once.stderr[-2000:]

        crashed_table, crashed_cursor = _read(project)
        reference_table, reference_cursor = _read(reference)
        assert _rows(crashed_table) == _rows(reference_table) == _expected(server)
        assert crashed_cursor == reference_cursor
    print(f"{kind}: {len(killed)} kills in {len(outcomes)} runs at", ", ".join(str(o.point) for o in killed))


# -- a staged full refresh ------------------------------------------------------------------------------

#: The step at which each destination swaps a staged table in (once per table, in the run's swap commit).
SWAP_STEP = {"duckdb": "duckdb.swap", "sqlite": "adbc.swap", "postgres": "adbc.swap", "parquet": "files.stage_adopted"}
STAGED_KILLS = 8  # kill points per destination that the child reached: up to 7 of them in the swap commit
STAGE = staging_name("toy_items", state_key("toy", "items"))


def _restate(server: FakeToy, seed: int) -> None:
    """What only a full refresh brings: items deleted at the source, renamed without a newer ``updated``
    (an incremental sync would not see either), and a few new ones."""
    rng = random.Random(seed)
    ids = sorted(server.items)
    for i in rng.sample(ids, 12):
        del server.items[i]
    for i in rng.sample(sorted(server.items), 25):
        server.items[i]["name"] = f"Item {i} restated"
    for i in range(max(ids) + 1, max(ids) + 9):
        stamp = BASE + dt.timedelta(days=300, minutes=i)
        server.items[i] = {"id": f"it_{i:05d}", "name": f"Item {i}", "amount": "1.00", "updated": stamp.isoformat()}


def _snapshot(project_file: Path) -> tuple[dict[str, tuple], dict | None, bool]:
    """The table's rows, the stream's whole state entry, and whether a staging table is still stored."""
    project = load_project(project_file)
    uri = project.settings.destination
    with Registry(load_entrypoints=False).destination_for(uri).open(uri, root=project.root, read_only=True) as s:
        rows = _rows(s.read_table("toy_items") if "toy_items" in s.tables() else None)
        return rows, s.get_state(state_key("toy", "items")), s.table_schema(STAGE) is not None


def _data_state(entry: dict | None) -> dict:
    """What a sync's data commit saves of a stream (its outcome and times are saved apart, or vary)."""
    return {k: (entry or {}).get(k) for k in ("cursor", "cursor_type", "records")}


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "sqlite", "postgres"])
def test_sigkill_a_staged_full_refresh_leaves_the_previous_table_and_state_or_the_new_ones(kind, tmp_path, request):
    """``kpihub sync --full-refresh`` over a table that exists stages its chunks and swaps them in at the end:
    killed anywhere — pages, stage commits, each step of the swap commit — the table and the state are exactly
    those before the run, or exactly those of the finished refresh; never a mix, never a partial table."""
    fmt, env = _setup(kind, tmp_path, request)
    seed = sum(map(ord, kind)) + 7
    with FakeToy(seed=seed, items=120) as server:
        project = _project(tmp_path / "crashed", URIS[kind].format(**fmt), server)
        refresh = ["-p", str(project), "sync", "--full-refresh"]
        assert run_sync(LAUNCHER, ["-p", str(project), "sync"], env).returncode == 0
        previous = _snapshot(project)
        _restate(server, seed)
        new_rows = _expected(server)
        assert previous[0] != new_rows and not previous[2]
        # The new state: that of one uninterrupted sync of the restated data.
        reference = _project(tmp_path / "reference", _uri(kind, fmt, tmp_path, "reference"), server)
        once = run_sync(LAUNCHER, ["-p", str(reference), "sync"], env)
        assert once.returncode == 0, once.stderr[-2000:]
        reference_rows, reference_state, _ = _snapshot(reference)
        assert reference_rows == new_rows
        # Where a staged refresh of this size reads and commits: a table that exists, then --full-refresh.
        probe = _project(tmp_path / "probe", _uri(kind, fmt, tmp_path, "probe"), server)
        assert run_sync(LAUNCHER, ["-p", str(probe), "sync"], env).returncode == 0
        sequence = trace_run(LAUNCHER, ["-p", str(probe), "sync", "--full-refresh"], env)
        assert sequence.count("sync.before_commit") >= 3, sequence  # chunks staged, then the swap commit
        rng = random.Random(seed)
        swap_commit = commit_steps(sequence, SWAP_STEP[kind])
        swap = next(p for p in swap_commit if p.name == SWAP_STEP[kind])
        # Each step of the swap commit once (its first time there), the swap's own first; then random points.
        steps = {p.name: p for p in reversed(swap_commit) if p.name != swap.name}
        around = rng.sample(sorted(steps.values(), key=swap_commit.index), min(STAGED_KILLS - 2, len(steps)))
        points = [swap, *around, *choose_points(Counter(sequence), 3 * STAGED_KILLS, seed=seed)]

        killed: list[KillPoint] = []
        swapped_at = None
        for point in points:
            outcome = run_sync(LAUNCHER, refresh, env, point)
            assert outcome.killed or outcome.returncode == 0, (str(point), outcome.stderr[-2000:])
            now = _snapshot(project)
            if now[:2] != previous[:2]:  # not untouched: then exactly the finished refresh's table and state
                assert now[0] == new_rows, f"after a kill at {point}: a table neither the previous nor the new one"
                assert _data_state(now[1]) == _data_state(reference_state), f"after a kill at {point}: {now[1]}"
                assert not now[2], f"after a kill at {point}: the table swapped in, but its stage is still stored"
                swapped_at = swapped_at or point
            previous = now
            if outcome.killed:
                killed.append(point)
                if len(killed) == STAGED_KILLS:
                    break
        assert len(killed) == STAGED_KILLS, f"only {len(killed)} of the runs reached their kill point"
        assert killed[0] == swap and set(around) <= set(killed), "a kill point of the swap commit was not reached"
        assert swapped_at is not None, f"no run got past its swap: {', '.join(map(str, killed))}"

        final = run_sync(LAUNCHER, refresh, env)
        assert final.returncode == 0, final.stderr[-2000:]
        rows, state, staged = _snapshot(project)
        assert rows == reference_rows == new_rows and not staged
        assert _data_state(state) == _data_state(reference_state) and state["status"] == "ok"
        if kind == "parquet":  # every file the killed runs wrote is listed by the final commit, or gone
            with ParquetDestination().open(URIS[kind].format(**fmt), read_only=True) as s:
                listed = {f for entry in s.manifest["tables"].values() for f in entry["files"]}
                stored = {f for f in s.store.files() if not f.startswith("_kpihub/")}
                assert stored == listed and not s.store.files("_kpihub/runs"), stored - listed
    print(f"{kind}: staged refresh killed at", ", ".join(map(str, killed)), f"(first swapped in: {swapped_at})")


def test_commit_steps_lists_every_step_of_the_commit_around_one_and_choose_points_includes_steps():
    run = ["sync.page", "sync.before_commit", "d.written", "sync.committed"] * 2
    run[6:6] = ["d.swap"]  # in the second commit
    steps = commit_steps([*run, "d.written"], "d.swap")
    assert [str(p) for p in steps] == ["sync.before_commit:2", "d.swap:1", "d.written:2", "sync.committed:2"]
    with pytest.raises(ValueError, match="never reached 'd.gone'"):
        commit_steps(run, "d.gone")
    points = choose_points(Counter(run), 4, seed=3, include=["d.swap"])
    assert points[0] == KillPoint("d.swap", 1) and len(points) == 4
    with pytest.raises(ValueError, match="never reached d.gone"):
        choose_points(Counter(run), 4, seed=3, include=["d.gone"])
