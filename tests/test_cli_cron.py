"""``kpihub sync`` under cron and Airflow (issue 16 item 5): real subprocesses, stdout and stderr to files.

Not a terminal (or ``CI``, or ``TERM=dumb``): no ANSI escapes, no progress bars, no box-drawing
characters; ``--log-format json``: every line on stdout and stderr is a JSON object; ``-v`` logs each
stream; a source with a missing secret fails alone; two SIGINTs still print the summary.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kpihub.cli.events import Event
from kpihub.cli.render import JsonRenderer, Throttle
from tests.plugins.toy import FakeToy
from tests.test_crash_safety import _read
from tests.test_graceful_stop import _wait_for_commit

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "toy-secret-token-123"
#: Box drawing and block elements: table borders and rich's progress bars (━).
BOX = re.compile("[\u2500-\u259f]")
COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3\d|9[0-7])m")


def _project(tmp_path: Path, server: FakeToy, *, second: bool = True) -> Path:
    text = (
        f'[project]\ndestination = "duckdb:///{tmp_path}/data.duckdb"\nchunk_rows = 40\n'
        f'[sources.toy]\nbase_url = "{server.url}"\npage_size = 20\n'
    )
    if second:  # a second account of the same platform, with its own token variable
        text += f'[sources.toy2]\ntype = "toy"\nbase_url = "{server.url}"\npage_size = 50\n'
    path = tmp_path / "kpihub.toml"
    path.write_text(text)
    return path


def _env(**extra: str | None) -> dict[str, str]:
    """The child's environment: both tokens set, no CI marker, unless ``extra`` says so (None unsets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIHUB_") and k not in ("CI", "NO_COLOR")}
    env.update(PYTHONPATH=str(ROOT), KPIHUB_TOY_TOKEN=TOKEN, KPIHUB_TOY2_TOKEN=TOKEN, TERM="xterm-256color")
    env.update({k: v for k, v in extra.items() if v is not None})
    return {k: v for k, v in env.items() if extra.get(k, "") is not None}


def _command(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.plugins.toy_cli", "-p", str(project), *args]


def _run(tmp_path: Path, project: Path, *args: str, **env: str | None) -> tuple[int, str, str]:
    """Run with stdout and stderr redirected to files, as cron's ``>> log 2>&1`` would."""
    out_path, err_path = tmp_path / "out.log", tmp_path / "err.log"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        code = subprocess.run(_command(project, *args), env=_env(**env), stdout=out, stderr=err, timeout=120).returncode
    return code, out_path.read_text(encoding="utf-8"), err_path.read_text(encoding="utf-8")


def test_not_a_terminal_gives_plain_lines_and_a_plain_table(tmp_path):
    with FakeToy(seed=3, items=250) as server:
        project = _project(tmp_path, server)
        code, out, err = _run(tmp_path, project, "sync", CI="true")
        assert code == 0, err
        assert err == ""  # a clean sync says nothing on stderr without -v
        assert "\x1b" not in out and not BOX.search(out), out
        lines = out.splitlines()
        assert lines[0] == "Sync summary"
        assert lines[1].split() == ["Stream", "Status", "Records", "API", "total", "Records/s", "Seconds", "Cursor"]
        assert set(lines[2]) <= {"-", " "}  # the header is underlined with ASCII dashes
        rows = {line.split()[0]: line.split() for line in lines[3:]}
        assert rows["toy.items"][1:3] == ["ok", "250"] and rows["toy2.items"][1:3] == ["ok", "250"]


def test_verbose_logs_each_stream_and_debug_adds_http_lines_redacted(tmp_path):
    with FakeToy(seed=3, items=250) as server:
        project = _project(tmp_path, server, second=False)
        server.fail(kind="status", status=503, headers={"Retry-After": "0"}, after=2, times=1)
        code, out, err = _run(tmp_path, project, "-v", "sync", "--full-refresh", CI="true")
        assert code == 0, err
        assert "\x1b" not in out + err and not BOX.search(out + err)
        lines = err.splitlines()
        assert "toy.items: started" in lines
        assert any(re.fullmatch(r"toy\.items: ok, 250 records in [\d.]+s \([\d,]+/s\), cursor .+", x) for x in lines)
        assert any(x.startswith("INFO kpihub.http: toy/items: GET ") and "HTTP 503" in x for x in lines), err
        assert not any(x.startswith("DEBUG httpx") for x in lines)

        code, out, err = _run(tmp_path, project, "--debug", "sync", "--full-refresh", CI="true")
        assert code == 0, err
        http = [x for x in err.splitlines() if x.startswith("DEBUG httpx: HTTP Request: GET ")]
        assert len(http) == 13 and all("200 OK" in x for x in http)  # 250 items in pages of 20
        assert TOKEN not in out + err


@pytest.mark.parametrize("env", [{"CI": "true"}, {"TERM": "dumb"}, {"NO_COLOR": "1"}, {}], ids=str)
def test_on_a_terminal_only_a_real_one_gets_escapes(tmp_path, env):
    with FakeToy(seed=3, items=250) as server:
        project = _project(tmp_path, server, second=False)
        master, replica = pty.openpty()
        proc = subprocess.Popen(_command(project, "sync"), env=_env(**env), stdout=replica, stderr=replica)
        os.close(replica)
        chunks: list[bytes] = []

        def drain() -> None:  # a full pty would block the child
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain)
        reader.start()
        assert proc.wait(timeout=120) == 0
        reader.join(timeout=10)
        os.close(master)
        text = b"".join(chunks).decode("utf-8", "replace")
        assert "toy.items" in text
        if env.get("CI") or env.get("TERM") == "dumb":
            assert "\x1b" not in text and not BOX.search(text), text
        elif env.get("NO_COLOR"):
            assert not COLOUR.search(text) and BOX.search(text)  # still a terminal: drawn, in no colour
        else:
            assert COLOUR.search(text) and BOX.search(text)  # the control: a terminal gets the live display


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]  # raises on any line that is not JSON


def test_json_log_is_one_object_per_line_on_stdout_and_stderr(tmp_path):
    with FakeToy(seed=3, items=250) as server:
        project = _project(tmp_path, server)
        server.fail(kind="status", status=503, headers={"Retry-After": "0"}, after=2, times=1)
        code, out, err = _run(tmp_path, project, "--log-format", "json", "sync", CI="true")
        assert code == 0, err
        (summary,) = _json_lines(out)  # the command's result, alone on stdout (Airflow's XCom reads the last line)
        events = _json_lines(err)
        assert TOKEN not in out + err
        assert summary["event"] == "summary" and summary["status"] == "ok" and summary["exit_code"] == 0
        assert summary["records"] == 500 and {s["stream"] for s in summary["streams"]} == {"toy.items", "toy2.items"}
        for key in ("toy.items", "toy2.items"):
            started = [e for e in events if e["event"] == "stream_start" and e["stream"] == key]
            ended = [e for e in events if e["event"] == "stream_end" and e["stream"] == key]
            assert len(started) == len(ended) == 1
            assert ended[0]["status"] == "ok" and ended[0]["records"] == 250 and ended[0]["seconds"] >= 0
        (retry,) = [e for e in events if e["event"] == "retry"]
        assert retry["attempt"] == 1 and retry["wait"] == 0 and retry["status_code"] == 503
        # Both sources read the same fake side by side: the third request is either's.
        assert retry["source"] in ("toy", "toy2") and retry["stream"] == "items" and retry["level"] == "info"
        assert "HTTP 503" in retry["message"] and retry["max_retries"] == 5
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in [*events, summary])

        # KPIHUB_LOG_FORMAT does the same; errors are JSON too (a bad option of a sub-command here).
        code, out, err = _run(tmp_path, project, "sync", "--no-such-option", KPIHUB_LOG_FORMAT="json")
        assert code == 2 and out == ""
        (error,) = _json_lines(err)
        assert error["event"] == "error" and "--no-such-option" in error["message"] and error["exit_code"] == 2


def test_a_source_with_a_missing_secret_fails_alone_and_is_named(tmp_path):
    with FakeToy(seed=3, items=250) as server:
        project = _project(tmp_path, server)
        env = {"CI": "true", "KPIHUB_TOY2_TOKEN": None}
        code, out, err = _run(tmp_path, project, "sync", **env)
        assert code == 1
        assert err.splitlines() == [
            "Error: source 'toy2': setting 'token' is required (set it in [sources.toy2] in kpihub.toml or "
            "KPIHUB_TOY2_TOKEN)"
        ]
        rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[3:]}
        assert rows == {"toy.items": ["ok", "250"], "toy2": ["failed", "0"]}
        table, _ = _read(project)
        assert table is not None and table.num_rows == 250  # the other source synced

        code, out, err = _run(tmp_path, project, "--log-format", "json", "sync", **env)
        assert code == 1
        (summary,) = _json_lines(out)
        assert summary["status"] == "failed" and summary["failed"] == ["toy2"] and summary["exit_code"] == 1
        (failed,) = [s for s in summary["streams"] if s["stream"] == "toy2"]
        assert failed["setting"] == "token" and failed["env"] == "KPIHUB_TOY2_TOKEN"
        (error,) = [e for e in _json_lines(err) if e["event"] == "error"]
        assert error["source"] == "toy2" and error["env"] == "KPIHUB_TOY2_TOKEN"


@pytest.mark.parametrize("gap", ["back_to_back", "once_the_first_is_handled"])
def test_two_sigints_together_still_print_what_was_committed(tmp_path, gap):
    with FakeToy(seed=5, items=400) as server:
        server.fail(kind="delay", delay=2.0, times=10**6)  # each page takes long: signalled mid-page
        project = _project(tmp_path, server, second=False)
        env = _env(CI="true", KPIHUB_FAILPOINT_TRACE=str(tmp_path / "trace"))
        proc = subprocess.Popen(
            _command(project, "sync"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for_commit(proc, tmp_path / "trace", timeout=120)
        os.kill(proc.pid, signal.SIGINT)  # as `timeout -s INT` and the shell send them
        first = ""
        if gap == "once_the_first_is_handled":  # the second arrives while the streams finish their page
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert first.startswith("SIGINT: stopping after the current page"), first
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        err = first + err
        table, _ = _read(project)
        committed = table.num_rows if table is not None else 0
        assert committed > 0 and "Traceback" not in err
        assert "Interrupted." not in err.splitlines()
        assert "Sync summary" in out and "toy.items" in out
        # Signals sent back to back are merged by the kernel into one: a graceful stop (exit 3).
        expected = {130: "Interrupted: ", 3: "Stopped: "}
        assert proc.returncode in (expected if gap == "back_to_back" else {130}), (proc.returncode, err)
        assert f"{expected[proc.returncode]}{committed:,} records committed with their state" in err, err


def test_json_progress_lines_are_throttled_per_stream():
    now = [0.0]
    out, err = io.StringIO(), io.StringIO()
    renderer = JsonRenderer(out, err, level=20, clock=lambda: now[0])
    for t, name, stream in [
        (0, "stream_start", "a.x"),
        (1, "stream_progress", "a.x"),
        (11, "stream_progress", "a.x"),  # 10 s after the start: shown
        (12, "stream_progress", "a.x"),
        (12, "stream_start", "b.y"),
        (13, "stream_progress", "b.y"),
        (13, "stream_end", "a.x"),
    ]:
        now[0] = t
        renderer.render(Event(name, 20, "", {"stream": stream}))
    shown = [(e["event"], e["stream"]) for e in _json_lines(err.getvalue())]
    assert shown == [
        ("stream_start", "a.x"),
        ("stream_progress", "a.x"),
        ("stream_start", "b.y"),
        ("stream_end", "a.x"),
    ]
    assert Throttle(5.0, clock=lambda: 0.0).due(Event("retry"))  # only progress is throttled


def test_help_lists_the_exit_codes():
    result = subprocess.run(
        [sys.executable, "-m", "kpihub", "--help"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for code, meaning in [("0", "ok"), ("1", "error"), ("3", "stopped"), ("4", "refused"), ("5", "quota")]:
        assert re.search(rf"^\s+{code}\s+.*{meaning}", result.stdout, re.M), (code, result.stdout)
    assert re.search(r"^\s+130\s+interrupted", result.stdout, re.M) and "incomplete" in result.stdout


def test_the_engine_reports_a_source_that_cannot_start_and_syncs_the_others(tmp_path, toy_server, toy_registry):
    from kpihub.sync import Pipeline
    from tests.conftest import make_project

    project = make_project(
        tmp_path,
        {"toy": {"base_url": toy_server.url, "token": toy_server.token}, "toy2": {"type": "toy", "base_url": "x"}},
    )
    result = Pipeline(project, registry=toy_registry).sync()
    assert [(r.key, r.status, r.records) for r in result.streams] == [("toy.items", "ok", 250), ("toy2", "failed", 0)]
    assert "setting 'token' is required" in (result.streams[1].error or "") and not result.ok
