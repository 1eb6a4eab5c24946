"""Time the CLV model path on the CDNOW sample: transactions → RFM (SQL) → BG/NBD + Gamma-Gamma → CLV.

    .venv/bin/python bench/clv_fit.py [--repeat 5]

Needs the test extra (``lifetimes`` ships the CDNOW data). Reports the best
and median wall time of each stage over ``--repeat`` runs, and, as the
baseline measured in the same run, one DuckDB scan of the orders table.
The issue's budget for the whole fit is 5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kpihub.kpis.compiler import rfm_sql  # noqa: E402
from kpihub.models import fit_clv  # noqa: E402
from kpihub.models.clv import fit_bgnbd, fit_gamma_gamma  # noqa: E402
from kpihub.plugins import Registry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from tests.test_clv import CALIBRATION_END, CATALOG, cdnow

    engine = cdnow.__wrapped__()  # the fixture's body: CDNOW transactions in a DuckDB orders table
    kpi = dict(Registry(load_entrypoints=False).kpis)["clv"]
    assert CATALOG["clv"] == kpi
    timings: dict[str, list[float]] = {"baseline: scan orders": [], "rfm sql": [], "bgnbd": [], "gamma-gamma": []}
    timings["fit_clv (all)"] = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        engine.con.execute("SELECT COUNT(*), SUM(net_amount) FROM orders").fetchall()
        timings["baseline: scan orders"].append(time.perf_counter() - t)
        t = time.perf_counter()
        rfm = engine.query(kpi, rfm_sql(kpi, as_of=CALIBRATION_END, unit_days=7))
        timings["rfm sql"].append(time.perf_counter() - t)
        x, tx, T = (rfm[c].to_numpy(zero_copy_only=False) for c in ("frequency", "recency", "T"))
        m = rfm["monetary"].fill_null(0).to_numpy(zero_copy_only=False)
        t = time.perf_counter()
        fit_bgnbd(x, tx, T)
        timings["bgnbd"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fit_gamma_gamma(x, m)
        timings["gamma-gamma"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fit_clv(engine, kpi, as_of=CALIBRATION_END)
        timings["fit_clv (all)"].append(time.perf_counter() - t)
    base = min(timings["baseline: scan orders"])
    print(f"CDNOW sample, 2,357 customers, 6,919 transactions; {args.repeat} runs ({dt.date.today()})")
    print(f"{'stage':24} {'best s':>8} {'median s':>9} {'vs scan':>9}")
    for name, values in timings.items():
        best = min(values)
        print(f"{name:24} {best:8.3f} {statistics.median(values):9.3f} {best / base:8.0f}x")
    total = min(timings["fit_clv (all)"])
    print(f"budget 5 s: fit_clv uses {total / 5:.1%} of it")


if __name__ == "__main__":
    main()
