"""Targets, status rules and scorecard output."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow.parquet as pq
import pytest

from kpihub.default_plugins.crm_kpis import CRM_KPIS
from kpihub.errors import ConfigError
from kpihub.kpis.periods import Period
from kpihub.kpis.scorecard import build_scorecard, judge
from kpihub.kpis.targets import Target, load_targets
from kpihub.report.scorecard import format_value, write_scorecard
from tests.test_kpis import engine

KPIS = {k.id: k for k in CRM_KPIS}
Q1 = Period.parse("2024-Q1")


def target(**kw) -> Target:
    return Target(**{"kpi": "leads", "period": Q1, "baseline": 100.0, "target": 150.0, "direction": "higher", **kw})


@pytest.mark.parametrize(
    ("actual", "status", "progress"),
    [
        (150, "on track", 1.0),
        (160, "on track", 1.2),
        (130, "at risk", 0.6),
        (120, "off track", 0.4),
        (90, "off track", -0.2),
        (None, "no data", None),
    ],
)
def test_status_from_progress_between_baseline_and_target(actual, status, progress):
    got = judge(actual, target(), additive=False, period=Q1, today=dt.date(2024, 6, 1))
    assert got[0] == status
    assert got[1] == (None if progress is None else pytest.approx(progress))


def test_lower_is_better():
    t = target(kpi="sales_cycle_days", baseline=40.0, target=30.0, direction="lower")
    assert judge(28, t, additive=False, period=Q1, today=dt.date(2024, 6, 1))[0] == "on track"
    assert judge(34, t, additive=False, period=Q1, today=dt.date(2024, 6, 1))[0] == "at risk"  # 0.6
    status, _, attainment = judge(50, t, additive=False, period=Q1, today=dt.date(2024, 6, 1))
    assert status == "off track" and attainment == pytest.approx(0.6)


def test_additive_kpi_in_a_running_period_is_projected_at_run_rate():
    # 91 days in Q1 2024; on Feb 15 45 days have passed: 80 leads project to 80 / (45/91) = 161.8.
    status, progress, _ = judge(80, target(), additive=True, period=Q1, today=dt.date(2024, 2, 15))
    assert status == "on track" and progress == pytest.approx((80 / (45 / 91) - 100) / 50)


def test_without_baseline_status_uses_attainment():
    t = target(baseline=None)
    assert judge(140, t, additive=False, period=Q1, today=dt.date(2024, 6, 1))[0] == "at risk"  # 93 %
    assert judge(120, t, additive=False, period=Q1, today=dt.date(2024, 6, 1))[0] == "off track"
    assert t.issues == ["no baseline"]


def test_targets_file_toml_and_csv(tmp_path):
    toml = tmp_path / "t.toml"
    toml.write_text(
        '[[target]]\nkpi = "win_rate"\nperiod = "2024-Q1"\nbaseline = 40\ntarget = 50\n'
        '[[target]]\nkpi = "leads"\ntarget = 10\n'
    )
    win, leads = load_targets(toml, KPIS)
    assert (win.baseline, win.target, win.direction) == (0.4, 0.5, "higher")  # percent written as 40
    assert leads.issues == ["no period (not time-bound)", "no baseline"]
    csv = tmp_path / "t.csv"
    csv.write_text("kpi,period,baseline,target\nsales_cycle_days,2024-02,40,30\n")
    (cycle,) = load_targets(csv, KPIS)
    assert cycle.period == Period(dt.date(2024, 2, 1), "month") and cycle.direction == "lower"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[target]]\nkpi = "not_a_kpi"\ntarget = 1\n', "t.toml: target #1: unknown KPI 'not_a_kpi'"),
        ('[[target]]\nkpi = "leads"\n', "t.toml: target #1 (leads): 'target' is required"),
        ('[[target]]\nkpi = "leads"\ntarget = "lots"\n', "t.toml: target #1 (leads): target 'lots' is not a number"),
        ('[[target]]\nkpi = "leads"\ntarget = 1\nperiod = "Q5"\n', "t.toml: target #1 (leads): 'Q5' is not a period"),
        ('[[target]]\nkpi = "leads"\ntarget = 1\ngoal = 2\n', "t.toml: target #1 (leads): unknown field 'goal'"),
        ("[[target]\n", "t.toml: not valid TOML"),
    ],
)
def test_bad_targets_are_one_line_errors(tmp_path, text, message):
    f = tmp_path / "t.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_targets(f, KPIS)
    assert str(info.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(info.value)


def test_scorecard_rows_values_and_formats(tmp_path):
    targets = [
        Target("win_rate", Period.parse("2024-02"), 0.5, 0.7, "higher"),
        Target("won_revenue", Period.parse("2024-02"), 2000.0, 2500.0, "higher"),
    ]
    rows = build_scorecard(engine(), KPIS, targets=targets, today=dt.date(2024, 6, 1))
    by = {r.kpi: r for r in rows}
    assert by["win_rate"].actual == pytest.approx(2 / 3) and by["win_rate"].previous == 1.0
    assert by["win_rate"].change == pytest.approx(-1 / 3)
    assert by["win_rate"].status == "at risk"  # (0.667 - 0.5) / 0.2 = 0.83
    assert by["won_revenue"].actual == 3000.0 and by["won_revenue"].status == "on track"
    assert by["won_revenue"].currency == "EUR"
    out = io.StringIO()
    write_scorecard(rows, "json", None, out)
    assert json.loads(out.getvalue())[0]["kpi"] == "win_rate"
    out = io.StringIO()
    write_scorecard(rows, "csv", None, out)
    assert out.getvalue().splitlines()[0].startswith('"kpi","title","unit"')
    write_scorecard(rows, "parquet", tmp_path / "s.parquet", out)
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 2


def test_scorecard_without_targets_scores_every_kpi_for_the_chosen_period():
    rows = build_scorecard(engine(), KPIS, period=Period.parse("2024-03"), today=dt.date(2024, 6, 1))
    assert len(rows) == len(KPIS)
    assert {r.kpi: r.actual for r in rows}["new_customers"] == 1.0
    assert all(r.status == "" for r in rows)


def test_format_value():
    assert format_value(0.2345, "percent") == "23.4 %"
    assert format_value(12345.5, "currency", "EUR") == "12,345.50 EUR"
    assert format_value(31.25, "days") == "31.2 d"
    assert format_value(1204.0, "count") == "1,204"
    assert format_value(None, "count") == "—"


@pytest.mark.parametrize(
    ("text", "label", "grain"),
    [
        ("2024", "2024", "year"),
        ("2024-q2", "2024-Q2", "quarter"),
        ("2024-06", "2024-06", "month"),
        ("2024-W23", "2024-W23", "week"),
        ("2024-06-14", "2024-06-14", "day"),
    ],
)
def test_period_parsing_round_trips(text, label, grain):
    p = Period.parse(text)
    assert (p.label, p.grain) == (label, grain)
    assert p.previous().next() == p


def test_scorecard_refuses_money_in_two_currencies_until_fx_exists():
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS
    from kpihub.errors import MixedCurrencyError
    from tests.test_kpis import ORDERS, orders_engine

    rows = ORDERS + [("ch9", "charge", "2024-02-15", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    kpis = {k.id: k for k in REVENUE_KPIS}
    targets = [Target("sales", Period.parse("2024-02"), 100.0, 200.0, "higher")]
    with pytest.raises(MixedCurrencyError, match=r"\(EUR, JPY\) .* configure FX rates"):
        build_scorecard(orders_engine(rows), kpis, targets=targets, today=dt.date(2024, 6, 1))
    # One currency: the same scorecard works.
    (row,) = build_scorecard(orders_engine(), kpis, targets=targets, today=dt.date(2024, 6, 1))
    assert row.actual == 150.0 and row.status == "at risk"
