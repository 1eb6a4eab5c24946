"""bench/kpis.py runs on a tiny size: kpihub's KPIs equal the hand-written SQL's (no timings checked)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kpis.py"


def test_the_kpi_benchmark_runs_and_kpihub_equals_the_hand_written_sql(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "20000", "--rounds", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "results equal" in done.stdout and "MISMATCH" not in done.stdout
    rows = dict(re.findall(r"round 0 (\S+) .* rows (\d+)", done.stdout))
    # One row per month and campaign seen: 20,000 rows over 731 days reach the first 28 campaigns.
    for name in ("kpihub-duckdb", "sql-duckdb", "sql-duckdb-per-kpi", "kpihub-parquet", "sql-parquet"):
        assert rows[name] == str(24 * math.ceil(20_000 / 731)), (name, done.stdout)
    assert int(rows["card-kpihub"]) > 20 and rows["card-kpihub-sub"] == rows["card-sql"] == "14"
