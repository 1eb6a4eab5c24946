"""Ctrl-C and SIGTERM stop a sync gracefully: the page in hand is finished, what was read is committed with
the state that covers it, the command says so in one line and exits 3; a second signal aborts (130).
A second sync of a pipeline that is syncing exits at once with "already running" and writes nothing.

In-process tests drive ``Pipeline.sync(stop=...)``; the signal tests run the real ``kpihub sync`` command
(the toy source registered as an installed plugin would be) and signal it once it has committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kpihub.config import Project, ProjectSettings
from kpihub.hookspecs import hookimpl
from kpihub.plugins import Registry
from kpihub.sync import Pipeline
from tests.conftest import StopAfterPages
from tests.plugins import toy
from tests.plugins.toy import ITEMS_SCHEMA, FakeToy, ItemsStream, ToySource
from tests.test_crash_safety import _check_durable, _expected, _project, _read, _rows

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "toy-secret-token-123"


class _SnapshotSource(ToySource):
    """The toy items as a full-table stream (no cursor: every sync replaces the table)."""

    name = "toysnap"

    def streams(self, settings):  # type: ignore[no-untyped-def]
        return [ItemsStream("items", ITEMS_SCHEMA, primary_key=("id",))]


class _SnapshotPlugin:
    @staticmethod
    @hookimpl
    def kpihub_register_sources(register):  # type: ignore[no-untyped-def]
        register(_SnapshotSource())


def _pipeline(tmp_path: Path, server: FakeToy, *, source: str = "toy", chunk_rows: int = 40) -> Pipeline:
    registry = Registry(load_entrypoints=False)
    registry.register_plugin(toy, "toy")
    registry.register_plugin(_SnapshotPlugin, "toysnap")
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/data.duckdb", chunk_rows=chunk_rows),
        sources={source: {"base_url": server.url, "token": TOKEN, "page_size": 20}},
    )
    return Pipeline(project, registry=registry)


def test_stop_commits_what_was_read_and_a_rerun_finishes(tmp_path):
    with FakeToy(seed=3, items=200) as server:
        p = _pipeline(tmp_path, server)
        stop = threading.Event()
        result = p.sync(stop=stop, progress=StopAfterPages(stop, pages=3))
        (stream,) = result.streams
        assert result.stopped and not result.ok
        assert stream.status == "stopped" and stream.records == 60  # the page in hand was finished
        assert "stopped on request after 60 records (state saved at cursor" in (stream.error or "")
        with p.open_destination(read_only=True) as session:
            table = session.read_table("toy_items")
            cursor = session.get_state("toy.items")["cursor"]
        assert table.num_rows == 60 and cursor == max(table["updated"].to_pylist()).isoformat()
        again = p.sync()
        assert again.ok and again.streams[0].records == 140 + 1  # the rest, and the boundary record again
        with p.open_destination(read_only=True) as session:
            rows = session.read_table("toy_items")
        assert sorted(rows["id"].to_pylist()) == sorted(i["id"] for i in server.items.values())


def test_streams_not_started_when_stop_comes_do_not_start(tmp_path):
    with FakeToy(seed=3, items=50) as server:
        p = _pipeline(tmp_path, server)
        stop = threading.Event()
        stop.set()
        result = p.sync(stop=stop)
        assert [(r.status, r.records) for r in result.streams] == [("stopped", 0)]
        assert server.requests == []


def test_a_full_table_stream_stopped_midway_keeps_its_previous_table(tmp_path):
    with FakeToy(seed=3, items=200) as server:
        p = _pipeline(tmp_path, server, source="toysnap", chunk_rows=10_000)
        assert p.sync().ok
        server.touch(list(range(1, 201)))  # every item changes
        stop = threading.Event()
        result = p.sync(stop=stop, progress=StopAfterPages(stop, pages=2))
        assert result.streams[0].status == "stopped"
        assert "the table keeps its previous contents" in (result.streams[0].error or "")
        with p.open_destination(read_only=True) as session:
            table = session.read_table("toysnap_items")
        assert table.num_rows == 200 and not any(n.startswith("Changed") for n in table["name"].to_pylist())


def _start(project: Path, trace: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIHUB_")}
    env.update(PYTHONPATH=str(ROOT), KPIHUB_TOY_TOKEN=TOKEN, KPIHUB_FAILPOINT_TRACE=str(trace))
    command = [sys.executable, "-m", "tests.plugins.toy_cli", "-p", str(project), "sync"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_commit(proc: subprocess.Popen[str], trace: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.exists() and "sync.committed" in trace.read_text():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the sync never committed")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_cli_after_the_current_page_with_exit_3(tmp_path, signum):
    with FakeToy(seed=5, items=400) as server:
        server.fail(kind="delay", delay=0.15, times=10**6)  # a slow API: the sync is mid-way when signalled
        project = _project(tmp_path / "p", f"duckdb:///{tmp_path}/p/data.duckdb", server)
        proc = _start(project, tmp_path / "trace")
        _wait_for_commit(proc, tmp_path / "trace")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        name = signal.Signals(signum).name
        assert f"{name}: stopping after the current page and saving state" in err
        assert "Stopped: " in err and "run `kpihub sync` again to continue" in err
        assert "Traceback" not in err and "stopped" in out
        table, cursor = _read(project)
        assert table is not None and 0 < table.num_rows < 400 and cursor is not None
        _check_durable(project, server, f"{name} after a commit")  # type: ignore[arg-type]

        server.clear_faults()
        proc = _start(project, tmp_path / "trace2")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert _rows(_read(project)[0]) == _expected(server)


def test_a_second_signal_aborts_at_once_with_exit_130(tmp_path):
    with FakeToy(seed=5, items=400) as server:
        server.fail(kind="delay", delay=2.0, times=10**6)  # the page in hand takes long to come
        project = _project(tmp_path / "p", f"duckdb:///{tmp_path}/p/data.duckdb", server)
        proc = _start(project, tmp_path / "trace")
        _wait_for_commit(proc, tmp_path / "trace", timeout=120)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        # Not a bare "Interrupted.": what the streams committed before the command ended (issue 16).
        assert "Interrupted: " in err and "records committed with their state" in err and "Traceback" not in err
        assert "Sync summary" in out and "toy.items" in out
        _check_durable(project, server, "two SIGINTs")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "postgres"])
def test_a_second_sync_of_the_same_pipeline_exits_already_running_and_writes_nothing(tmp_path, kind, request):
    uri = {
        "duckdb": f"duckdb:///{tmp_path}/p/data.duckdb",
        "parquet": f"parquet:///{tmp_path}/p/lake",
        "postgres": request.getfixturevalue("postgres_uri") if kind == "postgres" else "",
    }[kind]
    with FakeToy(seed=9, items=300) as server:
        # Quick to the first commit, then slow: the second sync surely starts while the first runs.
        server.fail(kind="delay", delay=1.0, after=3, times=10**6)
        project = _project(tmp_path / "p", uri, server)
        first = _start(project, tmp_path / "trace")
        _wait_for_commit(first, tmp_path / "trace")
        second = _start(project, tmp_path / "trace2")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: another sync is already running on"), err
        assert "Traceback" not in err
        assert not (tmp_path / "trace2").exists() or "sync.committed" not in (tmp_path / "trace2").read_text()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert _rows(_read(project)[0]) == _expected(server)


def test_a_full_table_stream_stopped_after_its_first_chunk_writes_no_partial_table(tmp_path):
    # Issue 13 finding 3: its chunks go to a staging table that only the final commit swaps in.
    with FakeToy(seed=3, items=200) as server:
        p = _pipeline(tmp_path, server, source="toysnap", chunk_rows=40)
        stop = threading.Event()
        result = p.sync(stop=stop, progress=StopAfterPages(stop, pages=4))
        (stream,) = result.streams
        assert stream.status == "stopped" and stream.records == 80
        assert "no table written" in (stream.error or "")
        with p.open_destination(read_only=True) as session:
            assert "toysnap_items" not in session.tables()
        assert p.sync().ok  # the next sync writes it whole
        with p.open_destination(read_only=True) as session:
            assert session.read_table("toysnap_items").num_rows == 200
