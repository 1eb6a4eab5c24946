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
    # Every targeted KPI of the demo's scorecard, by hand too (the bench fails on a KPI it has no SQL for).
    assert rows["card-kpihub"] == rows["card-sql"] and int(rows["card-sql"]) >= 30


def _ads_engine(rows: int = 3_000):
    import duckdb
    import pyarrow as pa

    from kpihub.kpis.engine import KPIEngine
    from kpihub.plugins import Registry

    sys.path.insert(0, str(BENCH.parent))
    try:
        import kpis as bench
    finally:
        sys.path.remove(str(BENCH.parent))
    con = duckdb.connect()
    con.register("_ads", pa.concat_tables(bench.generate(rows, chunk=1_000)))
    con.execute("CREATE TABLE ad_performance_daily AS SELECT * FROM _ads")
    reg = Registry()
    return KPIEngine(con, timezone="Europe/Oslo", catalog=reg.kpis), reg


def test_series_many_equals_series_kpi_by_kpi():
    import datetime as dt

    from kpihub.default_plugins.ads_kpis import ADS_KPIS

    engine, _ = _ads_engine()
    # The ad-performance KPIs (roas_net and agency_fees also read costs and orders, not built here).
    kpis = [k for k in ADS_KPIS if not engine.missing_tables(k)]
    assert len(kpis) >= 10
    start, end = dt.date(2024, 1, 1), dt.date(2024, 7, 1)
    for by in (None, "campaign", "platform"):
        many = engine.series_many(kpis, grain="month", start=start, end=end, by=by)
        for kpi in kpis:
            alone = engine.series(kpi, grain="month", start=start, end=end, by=by)
            assert many[kpi.id].table.equals(alone.table), (kpi.id, by)  # values, types, order
            assert many[kpi.id].currency == alone.currency


def test_series_many_refuses_what_series_refuses_and_scores_the_rest():
    import datetime as dt

    from kpihub.default_plugins.ads_kpis import ADS_KPIS

    engine, _ = _ads_engine()
    engine.con.execute("UPDATE ad_performance_daily SET currency = 'USD' WHERE date = DATE '2024-02-03'")
    start, end = dt.date(2024, 1, 1), dt.date(2024, 4, 1)
    many = engine.series_many(ADS_KPIS, grain="month", start=start, end=end, by="campaign")
    for kpi in ADS_KPIS:
        try:
            alone = engine.series(kpi, grain="month", start=start, end=end, by="campaign")
        except Exception as exc:  # noqa: BLE001 - compared with what series_many returned
            assert type(many[kpi.id]) is type(exc) and str(many[kpi.id]) == str(exc), kpi.id
        else:
            assert many[kpi.id].table.equals(alone.table), kpi.id
    assert isinstance(many["cpc"], Exception) and not isinstance(many["ctr"], Exception)
