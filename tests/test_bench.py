"""The benchmark suite (``python -m bench``) runs end to end on a tiny size and every contender's
output holds every record: no timing is asserted here (numbers live in docs/performance.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server import ServerError, ensure_nginx
from bench.suite import CONTENDERS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def nginx() -> str:
    try:
        return ensure_nginx()
    except ServerError as exc:
        pytest.skip(f"the benchmark needs nginx: {exc}")


def test_quick_suite_counts_every_row(nginx: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--quick", "--sizes", "300", "--ga4-page", "100", "--rounds", "1", "--latency", "0", "100"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    accounts = {c.name: c.accounts for c in CONTENDERS}
    assert len(report["cases"]) == 4  # two shapes, without and with latency
    for case in report["cases"]:
        assert case["records"] == 300
        expected = [c.name for c in CONTENDERS if c.available() and (case["latency_ms"] or not c.latency_only)]
        ran = [run["contender"] for run in case["runs"]]
        assert sorted(ran) == sorted(expected)
        for run in case["runs"]:
            assert run["ok"], run
            assert run["rows"] == 300 * accounts[run["contender"]], run  # every account's records
        assert case["latency_ms"] == 0 or "proxy_overhead_ms_per_request" in case
    if importlib.util.find_spec("dlt") is None:
        assert any("dlt" in s for s in report["skipped"])
    assert "| floor" in done.stdout  # the markdown table is printed
