"""kpihub.report.charts: a KPI's chart renders (vl-convert, no browser) with its line, baseline and target."""

from __future__ import annotations

import datetime as dt

import vl_convert as vlc

from kpihub.kpis.scorecard import ScorecardRow
from kpihub.kpis.spec import KPI, Measure
from kpihub.report.charts import BASELINE, TARGET, axis_format, kpi_chart, unit_title
from kpihub.report.data import KPIReport, Point


def _report(baseline: float | None, target: float | None) -> KPIReport:
    kpi = KPI("sales", "Sales", "", "currency", "higher", "simple", measure=Measure("orders", "sum", "t", expr="x"))
    row = ScorecardRow("sales", "Sales", "currency", "Act", "2026-06", 1300.0, baseline=baseline, target=target,
                       currency="EUR")  # fmt: skip
    history = [Point(dt.date(2026, m, 1), f"2026-{m:02d}", 1000.0 + 60 * m) for m in range(1, 7)]
    return KPIReport(row, kpi, history)


def test_kpi_chart_draws_the_series_and_dashed_baseline_and_target():
    svg = vlc.vegalite_to_svg(kpi_chart(_report(1100.0, 1500.0), width=400))
    assert svg.count(BASELINE) >= 1 and svg.count(TARGET) >= 1  # both rules (and their legend)
    assert "stroke-dasharray" in svg and "2026-06" in svg and "EUR" in svg
    bare = vlc.vegalite_to_svg(kpi_chart(_report(None, None), width=400))
    assert TARGET not in bare and BASELINE not in bare


def test_formats_follow_the_unit():
    assert axis_format("percent") == ".0%" and axis_format("days") == ".1f"
    assert unit_title("currency", "EUR") == "EUR" and unit_title("percent", None) == "%"
