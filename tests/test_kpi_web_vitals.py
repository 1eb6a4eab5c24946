"""Core Web Vitals KPIs over page_experience: each target's latest 28-day window, never a sum over windows.

The fixture is worked out by hand. Targets: A = origin https://shop.example on PHONE, B = the same
origin on DESKTOP, C = the URL https://shop.example/checkout on PHONE. Thresholds (web.dev/articles/vitals):
LCP ≤ 2500 ms, INP ≤ 200 ms (or no INP data), CLS ≤ 0.1.

January: A's latest window is 01-27 (LCP 2400, INP 210: fails; its 01-13 window with LCP 2600 is not the
latest), B 01-27 (CLS 0.12: fails), C 01-20 (LCP 2500, no INP, CLS 0.10: passes, the edges are good).
  pass rate 1/3; slowest LCP 2500 (C), INP 210 (A), CLS 0.12 (B).
February: A 02-24 passes, B 02-24 passes, C 02-24 has no data (a "NaN" week): not assessed.
  pass rate 2/2; LCP 2300, INP 150, CLS 0.09.
March: A 03-30 passes (its 03-02 window had LCP 4100), B 03-30 LCP 2700 fails, C 03-30 INP 250 fails.
  pass rate 1/3; LCP 2700, INP 250, CLS 0.05.
April: no window: every KPI is null (unknown), not 0.
Q1 is March's values (each target's latest window), not the sum or the mean of the months.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from kpihub.default_plugins import web_vitals_kpis
from kpihub.errors import KPIError
from kpihub.kpis.compiler import compile_kpi
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.spec import KPI, Measure
from kpihub.testing.conformance import KPIConformance
from kpihub.testing.kpi_conformance import canonical_rows

A = {"target_type": "origin", "target": "https://shop.example", "form_factor": "PHONE"}
B = {"target_type": "origin", "target": "https://shop.example", "form_factor": "DESKTOP"}
C = {"target_type": "url", "target": "https://shop.example/checkout", "form_factor": "PHONE"}


def window(target: dict[str, str], end: str, lcp: int | None, inp: int | None, cls: float | None) -> dict:
    last = dt.date.fromisoformat(end)
    first = (last - dt.timedelta(days=27)).isoformat()
    return {**target, "period_start": first, "period_end": end, "p75_lcp_ms": lcp, "p75_inp_ms": inp, "p75_cls": cls}


ROWS = [
    window(A, "2024-01-13", 2600, 180, 0.05),
    window(A, "2024-01-27", 2400, 210, 0.05),
    window(B, "2024-01-27", 1800, 90, 0.12),
    window(C, "2024-01-20", 2500, None, 0.10),
    window(A, "2024-02-24", 2300, 150, 0.08),
    window(B, "2024-02-24", 1700, 80, 0.09),
    window(C, "2024-02-24", None, None, None),
    window(A, "2024-03-02", 4100, 150, 0.03),
    window(A, "2024-03-30", 2200, 120, 0.03),
    window(B, "2024-03-30", 2700, 100, 0.05),
    window(C, "2024-03-30", 2100, 250, 0.02),
]


class TestWebVitalsKPIs(KPIConformance):
    plugin = web_vitals_kpis
    grain = "month"
    tables = {"page_experience": ROWS}
    expected = {
        "core_web_vitals_pass_rate": {"2024-01": 1 / 3, "2024-02": 1.0, "2024-03": 1 / 3, "2024-04": None},
        "lcp_p75": {"2024-01": 2500, "2024-02": 2300, "2024-03": 2700, "2024-04": None},
        "inp_p75": {"2024-01": 210, "2024-02": 150, "2024-03": 250, "2024-04": None},
        "cls_p75": {"2024-01": 0.12, "2024-02": 0.09, "2024-03": 0.05, "2024-04": None},
    }


@pytest.fixture(scope="module")
def engine():
    con = duckdb.connect()
    con.register("rows", canonical_rows("page_experience", ROWS))
    con.execute("CREATE TABLE page_experience AS SELECT * FROM rows")
    yield KPIEngine(con)
    con.close()


def kpi(kpi_id: str) -> KPI:
    return next(k for k in web_vitals_kpis.WEB_VITALS_KPIS if k.id == kpi_id)


def test_the_quarter_is_each_targets_latest_window_not_a_sum_or_mean_of_windows(engine):
    q1 = engine.series(
        kpi("core_web_vitals_pass_rate"), grain="quarter", start=dt.date(2024, 1, 1), end=dt.date(2024, 4, 1)
    )
    row = q1.table.to_pylist()[0]
    assert (row["numerator"], row["denominator"]) == (1, 3)  # A passes; B and C fail in March
    lcp = engine.series(kpi("lcp_p75"), grain="quarter", start=dt.date(2024, 1, 1), end=dt.date(2024, 4, 1))
    assert lcp.values() == {dt.date(2024, 1, 1): 2700}  # not 4100 (A's early-March window), not a mean


def test_a_breakdown_by_form_factor_is_each_device_on_its_own(engine):
    sql = compile_kpi(
        kpi("core_web_vitals_pass_rate"),
        grain="month",
        start=dt.date(2024, 1, 1),
        end=dt.date(2024, 2, 1),
        by="form_factor",
    )
    rows = engine.con.execute(sql).fetchall()
    got = {r[1]: (r[2], r[3]) for r in rows}
    assert got == {"DESKTOP": (0, 1), "PHONE": (1, 2)}  # B fails; of A and C on phones, C passes


def test_weekly_windows_are_not_summed_within_a_day_grain_either(engine):
    # One window per target and day: at day grain each day is that day's windows, across targets.
    got = engine.series(kpi("lcp_p75"), grain="day", start=dt.date(2024, 1, 27), end=dt.date(2024, 1, 28)).values()
    assert got == {dt.date(2024, 1, 27): 2400}  # A 2400 and B 1800 on that day: the slower, not 4200


def test_per_entity_snapshots_need_a_first_or_last_and_a_known_column():
    with pytest.raises(ValueError, match="entity is for over_time 'first' or 'last'"):
        Measure("page_experience", "max", "period_end", expr="p75_lcp_ms", entity=("target",))
    with pytest.raises(ValueError, match="max needs an expr"):
        Measure("page_experience", "max", "period_end", over_time="last")
    bad = KPI(
        "x",
        "X",
        "x",
        "milliseconds",
        "lower",
        "simple",
        measure=Measure("page_experience", "max", "period_end", expr="p75_lcp_ms", over_time="last", entity=("page",)),
    )
    with pytest.raises(KPIError, match="entity column uses unknown column 'page' of table 'page_experience'"):
        compile_kpi(bad, grain="month", start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 1))


def test_the_catalogue_says_how_the_kpis_add_up():
    assert kpi("lcp_p75").additivity == "snapshot"
    assert kpi("lcp_p75").unit == "milliseconds" and not kpi("lcp_p75").additive
    assert "latest snapshot" in kpi("core_web_vitals_pass_rate").additivity
