"""Targets, status rules and scorecard output."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kpihub.default_plugins.crm_kpis import CRM_KPIS
from kpihub.errors import ConfigError
from kpihub.kpis.periods import Period
from kpihub.kpis.scorecard import build_scorecard, judge
from kpihub.kpis.targets import Target, load_targets
from kpihub.report.scorecard import format_value, write_scorecard
from tests.test_kpis import DEALS, crm_tables, engine

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
    assert pq.read_table(tmp_path / "s.parquet").num_rows == len(rows)
    # The targeted rows first; then the KPIs with no target that have a value, "not targeted".
    assert [r.kpi for r in rows[:2]] == ["win_rate", "won_revenue"]
    rest = rows[2:]
    assert rest and all(r.status == "not targeted" and r.actual is not None for r in rest)


def test_scorecard_without_targets_scores_every_kpi_for_the_chosen_period():
    rows = build_scorecard(engine(), KPIS, period=Period.parse("2024-03"), today=dt.date(2024, 6, 1))
    assert len(rows) == len(KPIS)
    assert {r.kpi: r.actual for r in rows}["new_customers"] == 1.0
    assert all(r.status == "" for r in rows)


def test_format_value():
    assert format_value(0.2345, "percent") == "23.4 %"
    assert format_value(23.6, "score") == "+23.6" and format_value(-4.0, "score") == "-4.0"  # NPS, never "%"
    assert format_value(12345.5, "currency", "EUR") == "12,345.50 EUR"
    assert format_value(31.25, "days") == "31.2 d"
    assert format_value(1204.0, "count") == "1,204"
    assert format_value(2576.6, "milliseconds") == "2,577 ms"  # p75 LCP
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


def test_a_refused_kpi_is_a_row_and_the_others_are_still_scored():
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS
    from tests.test_kpis import ORDERS, orders_engine

    rows = ORDERS + [("ch9", "charge", "2024-02-15", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    kpis = {k.id: k for k in REVENUE_KPIS}
    targets = [
        Target("sales", Period.parse("2024-02"), 100.0, 200.0, "higher"),
        Target("orders", Period.parse("2024-02"), 1.0, 2.0, "higher"),
    ]
    card = build_scorecard(orders_engine(rows), kpis, targets=targets, today=dt.date(2024, 6, 1))
    by = {r.kpi: r for r in card}
    assert by["sales"].status == "refused" and by["sales"].actual is None
    (reason,) = by["sales"].notes
    assert "KPI 'sales' would add amounts in 2 currencies (EUR, JPY)" in reason and "configure FX rates" in reason
    assert by["orders"].actual == 2.0 and by["orders"].status == "on track"  # ch4 and ch9, whatever the currency
    # Every KPI adding money in both currencies is refused: the targeted one and the others.
    assert "sales" in [r.kpi for r in card.refused] and by["sales"].refused and not by["orders"].refused
    assert all(any("2 currencies" in n for n in r.notes) for r in card.refused)
    from kpihub.kpis import Scorecard

    assert isinstance(card, Scorecard) and card.data_quality == []  # an engine without a destination: no state
    # One currency: the same scorecard is judged, nothing refused.
    card = build_scorecard(orders_engine(), kpis, targets=targets[:1], today=dt.date(2024, 6, 1))
    row, *rest = card
    assert {r.kpi: r.status for r in rest if r.status != "not targeted"} == {"clv": "refused"}  # 1 repeat buyer
    assert row.actual == 150.0 and row.status == "at risk" and [r.kpi for r in card.refused] == ["clv"]


def test_with_targets_a_refused_kpi_without_a_target_is_still_a_refused_row():
    from kpihub.default_plugins.revenue_kpis import REVENUE_KPIS
    from tests.test_kpis import ORDERS, orders_engine

    rows = ORDERS + [("ch9", "charge", "2024-02-15", "succeeded", "5000", "0", "5000", "JPY", "cus_c")]
    kpis = {k.id: k for k in REVENUE_KPIS}
    targets = [Target("orders", Period.parse("2024-02"), 1.0, 2.0, "higher")]
    card = build_scorecard(orders_engine(rows), kpis, targets=targets, today=dt.date(2024, 6, 1))
    by = {r.kpi: r for r in card}
    # "sales" has no target; it must not vanish from the scorecard because it was refused.
    assert by["sales"].status == "refused" and "2 currencies" in by["sales"].notes[0]
    assert "sales" in [r.kpi for r in card.refused]


def test_a_bug_while_computing_a_kpi_is_not_a_refusal(monkeypatch):
    from kpihub.kpis.engine import DuckDBBackend

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a property of the data")

    # Under every query, batched or one KPI alone.
    monkeypatch.setattr(DuckDBBackend, "query", broken)
    with pytest.raises(ZeroDivisionError):
        build_scorecard(engine(), KPIS, period=Period.parse("2024-02"), today=dt.date(2024, 6, 1))


# -- through the CLI, over a DuckDB destination ---------------------------------------------------

MIXED_DEALS = [*DEALS, ("d6", "2024-02-01", "2024-02-12", True, "800", "USD")]


def crm_project(tmp_path, monkeypatch, deals=DEALS, state=None, sources=""):
    """A project whose DuckDB destination holds crm_contacts and ``deals``, committed with ``state``."""
    from kpihub.destinations.base import TableWrite
    from kpihub.destinations.duckdb import DuckDBDestination
    from kpihub.plugins import reset_registry

    reset_registry(None)
    monkeypatch.chdir(tmp_path)
    uri = "duckdb:///data.duckdb"
    (tmp_path / "kpihub.toml").write_text(f'[project]\ndestination = "{uri}"\n{sources}')
    contacts, deal_rows = crm_tables(deals)
    with DuckDBDestination().open(uri, root=tmp_path) as session:
        writes = [TableWrite("crm_contacts", contacts, "replace"), TableWrite("crm_deals", deal_rows, "replace")]
        session.commit(writes, state or {})


def kpis_cli(*args: str):
    from click.testing import CliRunner

    from kpihub.cli import cli

    return CliRunner().invoke(cli, ["kpis", "--period", "2024-02", "--as-of", "2024-06-01", *args])


def test_cli_scorecard_shows_every_kpi_when_one_is_refused(tmp_path, monkeypatch):
    # February's won deals are in EUR and USD and there is no FX table: money KPIs over crm_deals refuse.
    crm_project(tmp_path, monkeypatch, MIXED_DEALS)
    result = kpis_cli("--format", "json")
    assert result.stdout.startswith("["), result.stderr
    rows = json.loads(result.stdout)
    by = {r["kpi"]: r for r in rows}
    refused = {r["kpi"]: r["notes"] for r in rows if r["status"] == "refused"}
    assert set(refused) == {"avg_deal_size", "won_revenue"}
    for kpi, reason in refused.items():
        assert reason.startswith(f"KPI '{kpi}' would add amounts in 2 currencies (EUR, USD) between 2024-01-01")
        assert by[kpi]["actual"] is None
    # Every other KPI is still scored: Feb closed d2 d3 d5 d6, won d3 d5 d6; cycle (10 + 36 + 11) / 3 days.
    assert by["win_rate"]["actual"] == 0.75 and by["win_rate"]["previous"] == 1.0
    assert by["sales_cycle_days"]["actual"] == 19.0
    assert (by["leads"]["actual"], by["mqls"]["actual"], by["new_customers"]["actual"]) == (2, 2, 1)
    assert by["sales"]["status"] == "no data"  # no orders table: not a refusal
    assert len(rows) > 40  # the whole catalogue
    from kpihub.cli.main import EXIT_REFUSED

    assert result.exit_code == EXIT_REFUSED != 1
    assert "2 KPIs refused: avg_deal_size, won_revenue" in result.stderr
    # The terminal table: the refused row with its status and its one-line reason, the others with values.
    table = kpis_cli("--kpi", "avg_deal_size", "--kpi", "win_rate", "--kpi", "won_revenue")
    assert table.exit_code == EXIT_REFUSED
    assert "refused" in next(line for line in table.stdout.splitlines() if "Average deal size" in line)
    assert "75.0 %" in next(line for line in table.stdout.splitlines() if "Win rate" in line)
    assert "• Average deal size: KPI 'avg_deal_size' would add amounts in 2 currencies (EUR, USD)" in table.stdout
    # CSV and Parquet carry the refused rows as well.
    assert kpis_cli("--format", "csv", "-o", "s.csv").exit_code == EXIT_REFUSED
    csv_rows = {r["kpi"]: r for r in pacsv.read_csv(tmp_path / "s.csv").to_pylist()}
    assert csv_rows["won_revenue"]["status"] == "refused" and csv_rows["win_rate"]["actual"] == 0.75
    assert kpis_cli("--format", "parquet", "-o", "s.parquet").exit_code == EXIT_REFUSED
    pq_rows = {r["kpi"]: r for r in pq.read_table(tmp_path / "s.parquet").to_pylist()}
    assert pq_rows["avg_deal_size"]["status"] == "refused" and "2 currencies" in pq_rows["avg_deal_size"]["notes"]
    # A breakdown shows the other KPIs too and names the refused one.
    by_pipeline = kpis_cli("--by", "pipeline", "--kpi", "won_revenue", "--kpi", "win_rate", "--format", "json")
    assert by_pipeline.exit_code == EXIT_REFUSED
    assert {r["kpi"] for r in json.loads(by_pipeline.stdout)} == {"win_rate"}
    assert "1 KPI(s) refused: won_revenue: KPI 'won_revenue' would add amounts in 2 currencies" in by_pipeline.stderr
    # Markdown too (values formatted by unit, as the terminal table shows them).
    md = kpis_cli("--by", "pipeline", "--kpi", "win_rate", "--format", "markdown")
    assert md.exit_code == 0, md.output
    lines = md.stdout.splitlines()
    assert lines[0].startswith("## KPIs by pipeline, ") and lines[2] == "| kpi | period | pipeline | value |"
    assert lines[3] == "| --- | --- | --- | --- |" and lines[4].startswith("| win_rate |") and lines[4].endswith(" % |")
    # Deals in one currency: nothing refused, exit 0.
    (tmp_path / "one").mkdir()
    crm_project(tmp_path / "one", monkeypatch)
    assert kpis_cli("--kpi", "won_revenue").exit_code == 0


# -- the data-quality line: what the last sync of each stream said about its data -----------------

QUALITY_STATE = {
    "hubspot.deals": {
        "cursor": "2024-03-01T00:00:00+00:00",
        "status": "incomplete",
        "notes": ["read 118 distinct records of the 120 the API declared"],
        "canonical_table": "crm_deals",
    },
    "hubspot.contacts": {"status": "ok", "notes": ["fine"], "canonical_table": "crm_contacts"},
    "ga4.traffic_daily": {
        "status": "mismatch",
        "notes": ["sessions loaded 1,180 vs 1,199 in the report's totals"],
        "reconciliation": {"sessions": {"loaded": 1180, "platform": 1199}},
        "canonical_table": "web_traffic_daily",
    },
    "files.costs": {"cursor": "2024-03-01"},  # written before syncs recorded a status: nothing to say
    "odd.stream": {"status": 7, "notes": "one string, not a list", "canonical_table": 12},
}


def test_data_quality_lists_streams_that_were_not_ok_and_marks_the_kpis_they_feed(tmp_path, monkeypatch):
    crm_project(tmp_path, monkeypatch, state=QUALITY_STATE)
    only = ("--kpi", "win_rate", "--kpi", "leads", "--kpi", "sessions")
    table = kpis_cli(*only)
    assert table.exit_code == 0, table.output  # data quality is shown, it does not refuse anything
    out = table.stdout
    section = out[out.index("Data quality") :].splitlines()
    assert section[1:] == [
        "• ga4.traffic_daily: mismatch — sessions loaded 1,180 vs 1,199 in the report's totals; "
        "reconciliation: sessions.loaded=1180, sessions.platform=1199 "
        "(feeds web_traffic_daily: Sessions (web traffic))",
        "• hubspot.deals: incomplete — read 118 distinct records of the 120 the API declared "
        "(feeds crm_deals: Win rate)",
        "• odd.stream: 7 — one string, not a list (feeds an unknown table)",
    ]
    assert "• Win rate: data quality: last sync of hubspot.deals: incomplete" in out
    assert "Leads: data quality" not in out
    rows = {r["kpi"]: r for r in json.loads(kpis_cli(*only, "--format", "json").stdout)}
    (deals,) = rows["win_rate"]["data_quality"]
    assert deals == {
        "stream": "hubspot.deals",
        "status": "incomplete",
        "notes": ["read 118 distinct records of the 120 the API declared"],
        "tables": ["crm_deals"],
        "reconciliation": None,
    }
    assert rows["leads"]["data_quality"] == [] and rows["leads"]["actual"] == 2
    assert [q["stream"] for q in rows["sessions"]["data_quality"]] == ["ga4.traffic_daily"]
    assert kpis_cli(*only, "--format", "csv", "-o", "s.csv").exit_code == 0
    csv_rows = {r["kpi"]: r for r in pacsv.read_csv(tmp_path / "s.csv").to_pylist()}
    assert csv_rows["win_rate"]["data_quality"] == "hubspot.deals: incomplete"


def test_data_quality_finds_a_streams_table_from_its_connector_when_state_does_not_say(tmp_path, monkeypatch):
    state = {
        "hubspot.deals": {"status": "stopped", "notes": ["stopped on request after 2 chunks"]},
        "gone.stream": {"status": "incomplete"},  # a source no longer configured
    }
    monkeypatch.setenv("KPIHUB_HUBSPOT_TOKEN", "pat-test-token")
    crm_project(tmp_path, monkeypatch, state=state, sources="[sources.hubspot]\n")
    result = kpis_cli("--kpi", "win_rate", "--format", "json")
    (row,) = json.loads(result.stdout)
    assert [(q["stream"], q["tables"]) for q in row["data_quality"]] == [("hubspot.deals", ["crm_deals"])]
    out = kpis_cli("--kpi", "win_rate").stdout
    assert "• gone.stream: incomplete (feeds an unknown table)" in out
    assert "• hubspot.deals: stopped — stopped on request after 2 chunks (feeds crm_deals: Win rate)" in out
    assert "pat-test-token" not in out


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"status": "ok", "notes": ["x"]}, None),
        ({"cursor": "2024-01-01"}, None),
        ("not an object", None),
        ({"status": "incomplete", "notes": None}, ("incomplete", (), ())),
        (
            {"status": "mismatch", "notes": ["a", 3], "canonical_table": ["t1", 5, "t2"]},
            ("mismatch", ("a", "3"), ("t1", "t2")),
        ),
        ({"status": None, "notes": ["no status said"]}, ("unknown", ("no status said",), ())),
    ],
)
def test_state_entries_are_read_defensively(entry, expected):
    from kpihub.kpis.scorecard import stream_quality

    got = stream_quality({"s.x": entry})
    if expected is None:
        assert got == []
    else:
        (q,) = got
        assert (q.status, q.notes, q.tables) == expected


def test_a_kpi_not_defined_at_the_grain_is_not_applicable_not_refused():
    from kpihub.kpis.spec import KPI, Measure

    daily = KPI(
        "daily_closes",
        "Deals closed (per day)",
        "",
        "count",
        "higher",
        "simple",
        measure=Measure("crm_deals", "count", "closed_at", max_grain="day"),
    )
    kpis = {**KPIS, daily.id: daily}
    card = build_scorecard(engine(), kpis, period=Period.parse("2024-02"), today=dt.date(2024, 6, 1))
    by = {r.kpi: r for r in card}
    assert by["daily_closes"].status == "n/a" and by["daily_closes"].notes[0].endswith("not 'month'")
    assert card.refused == []  # asking a day-only KPI for a month is the question, not the data
    (day,) = build_scorecard(engine(), kpis, period=Period.parse("2024-02-11"), only=["daily_closes"])
    assert day.actual == 1.0 and day.status == ""  # d3 closed on 11 February


# -- what people read: KPIs without data folded into one line, notes said once, markdown ---------------


def _folded(rows: list[dict]) -> set[str]:
    """From the JSON rows: the KPIs with no value anywhere and no target (what the table folds)."""
    blank: dict[str, bool] = {}
    for r in rows:
        empty = r["actual"] is None and r["previous"] is None and r["last_year"] is None and r["target"] is None
        blank[r["kpi"]] = blank.get(r["kpi"], True) and empty and r["status"] in ("", "no data")
    return {k for k, b in blank.items() if b}


def test_table_folds_kpis_without_data_into_one_line_and_json_keeps_every_row(tmp_path, monkeypatch):
    crm_project(tmp_path, monkeypatch)  # crm_contacts and crm_deals only: most of the catalogue has no table
    rows = json.loads(kpis_cli("--format", "json").stdout)
    folded = _folded(rows)
    titles = {r["kpi"]: r["title"] for r in rows}
    assert {"sales", "ctr", "nps"} <= folded and "win_rate" not in folded and len(rows) > 40
    noted = [r for r in rows if r["kpi"] in folded and r["notes"]]
    missing = sorted({r["notes"].removeprefix("table ").removesuffix(" not synced") for r in noted})
    silent = len(folded) - len({r["kpi"] for r in noted})
    assert "orders" in missing and "crm_deals" not in missing and silent > 0
    table = kpis_cli()
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    summary = [line for line in lines if "have no data" in line]
    assert summary == [
        f"• {len(folded)} KPIs have no data: tables {', '.join(missing)} not synced; "
        f"{silent} with no rows in the period — kpihub kpis --all-rows lists them, --kpi ID shows one"
    ]
    assert not any("not synced" in line for line in lines if line not in summary)  # no note per KPI
    shown = [line for line in lines if "2024-02" in line]
    assert not any(f" {titles[k]} " in line for k in folded for line in shown)
    assert any(" Win rate " in line for line in shown)
    every = kpis_cli("--all-rows").stdout
    assert "Sales (net revenue)" in every and "• Sales (net revenue): table orders not synced" not in every
    assert "• table orders not synced: " in every  # said once for all the KPIs over orders
    assert "no data" in next(line for line in kpis_cli("--kpi", "sales").stdout.splitlines() if "Sales (net" in line)


def test_markdown_scorecard_grouped_by_stage_with_status_as_text_and_notes_after(tmp_path, monkeypatch):
    crm_project(tmp_path, monkeypatch)
    (tmp_path / "targets.toml").write_text(
        '[[target]]\nkpi = "win_rate"\nperiod = "2024-02"\nbaseline = 50\ntarget = 60\n'
        '[[target]]\nkpi = "leads"\nperiod = "2024-02"\nbaseline = 10\ntarget = 20\n'
        '[[target]]\nkpi = "sales"\nperiod = "2024-02"\ntarget = 5000\n'  # no orders table: kept, "no data"
    )
    rows = {r["kpi"]: r for r in json.loads(kpis_cli("--targets", "targets.toml", "--format", "json").stdout)}
    result = kpis_cli("--targets", "targets.toml", "--format", "markdown")
    assert result.exit_code == 0, result.output
    md = result.stdout
    header = "| KPI | Period | Actual | Prev. | Δ prev. | Δ last yr | Baseline | Target | Attain. | Status |"
    assert md.startswith("## KPI scorecard\n\n### Act\n\n" + header + "\n| --- | --- | ---: |")
    win = next(line for line in md.splitlines() if line.startswith("| Win rate |"))
    assert win.startswith("| Win rate | 2024-02 | 66.7 % |") and win.endswith(f"| {rows['win_rate']['status']} |")
    assert rows["win_rate"]["status"] in ("on track", "at risk", "off track")
    assert (rows["sales"]["status"], rows["sales"]["target"]) == ("no data", 5000)  # its target, no data yet
    assert "| Leads | 2024-02 |" in md and "\n### Act — not targeted\n" in md
    assert md.index("### Act\n") < md.index("### Act — not targeted") < md.index("**Notes**")
    notes = md[md.index("**Notes**") :].splitlines()
    assert notes[2] == "- Sales (net revenue): table orders not synced" and md.endswith("\n")
    assert "| Sales (net revenue) | 2024-02 | — |" in md and "| 5,000.00 | — | no data |" in md
    # Every line of a table has the header's 11 pipes: no cell breaks its row.
    assert all(line.count("|") - line.count("\\|") == 11 for line in md.splitlines() if line.startswith("|"))
    written = kpis_cli("--targets", "targets.toml", "--format", "markdown", "-o", "card.md")
    assert written.exit_code == 0 and (tmp_path / "card.md").read_text().startswith("## KPI scorecard\n")


def test_markdown_series_has_a_row_per_period(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kpihub.cli import cli

    crm_project(tmp_path, monkeypatch)
    args = ["kpis", "--from", "2024-01", "--to", "2024-02", "--as-of", "2024-06-01", "--kpi", "win_rate"]
    result = CliRunner().invoke(cli, [*args, "--format", "markdown"])
    assert result.exit_code == 0, result.output
    periods = [line.split(" | ")[1] for line in result.stdout.splitlines() if line.startswith("| Win rate |")]
    assert periods == ["2024-01", "2024-02"]
    whole = CliRunner().invoke(cli, ["kpis", "--all", "--as-of", "2024-06-01", "--format", "markdown"])
    assert whole.exit_code == 0, whole.output
    assert "| Win rate | 2024-01 |" in whole.stdout and "KPIs have no data: tables " in whole.stdout


def test_notes_shared_by_rows_are_said_once_and_cells_cannot_break_a_markdown_row():
    from kpihub.kpis.scorecard import ScorecardRow
    from kpihub.report.scorecard import no_data_line, note_lines, scorecard_markdown, without_data

    def row(kpi: str, actual: float | None, *notes: str, period: str = "2024-02") -> ScorecardRow:
        return ScorecardRow(kpi, kpi.upper(), "count", "Act", period, actual, notes=list(notes))

    rows = [
        row("a", 1, "period in progress (50% elapsed)"),
        row("b", 2, "period in progress (50% elapsed)", "b | odd *note*"),
        row("c", None, "table x not synced"),
        row("d", None, "table y not synced"),
        row("e", None, "table x not synced"),
        row("f", None),  # a series: no value in one period, one in the other: kept
        row("f", 3, period="2024-03"),
    ]
    assert [r.kpi for r in without_data(rows)] == ["c", "d", "e"]
    assert note_lines(rows[:2]) == ["period in progress (50% elapsed): A, B (2 KPIs)", "B: b | odd *note*"]
    assert no_data_line(without_data(rows)) == (
        "3 KPIs have no data: tables x, y not synced — kpihub kpis --all-rows lists them, --kpi ID shows one"
    )
    assert no_data_line([row("c", None, "table x not synced")]).startswith("1 KPI has no data: table x not synced")
    md = scorecard_markdown(rows)
    assert "- B: b \\| odd \\*note\\*" in md and "| C |" not in md and "| F | 2024-02 | — |" in md
    assert "| C | 2024-02 | — |" in scorecard_markdown(rows, all_rows=True)


def test_a_score_changes_by_points_not_by_a_percentage():
    import duckdb

    from kpihub.default_plugins.survey_kpis import SURVEY_KPIS
    from kpihub.kpis.engine import KPIEngine
    from kpihub.report.scorecard import format_change
    from tests.kpi_data import load, ts

    answers = [("2024-01-05", 10), ("2024-01-06", 9), ("2024-01-07", 7), ("2024-01-08", 3), ("2024-02-05", 10)]
    answers += [("2024-02-06", 2), ("2023-02-06", 2)]  # Feb 2023: one detractor, NPS -100
    con = duckdb.connect()
    rows = [
        {"response_id": f"r{i}", "item": "nps", "responded_at": ts(d), "score": s, "scale_min": 0, "scale_max": 10}
        for i, (d, s) in enumerate(answers)
    ]
    load(con, "survey_responses", rows)
    kpis = {k.id: k for k in SURVEY_KPIS}
    feb = Period.parse("2024-02")
    card = build_scorecard(KPIEngine(con), kpis, period=feb, only=["nps"], today=dt.date(2024, 6, 1))
    (row,) = card
    # NPS +25 in January, 0 in February: down 25 points (not "-100 %"); a year before -100: up 100 points.
    assert (row.actual, row.previous, row.change) == (0.0, 25.0, -25.0)
    assert row.change_yoy == 100.0
    assert format_change(row.change, row.unit) == "-25.0 pts" and format_change(0.136, "currency") == "+13.6 %"
