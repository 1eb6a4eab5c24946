"""KPIs defined in kpihub.toml: compiled like built-ins; wrong ones are one-line errors naming them."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from kpihub.cli import cli
from kpihub.config import load_project
from kpihub.default_plugins.crm_kpis import CRM_KPIS
from kpihub.errors import ConfigError
from kpihub.kpis.project import project_kpis, register_project_kpis
from kpihub.plugins import reset_registry
from tests.test_kpis import FEB, JAN, MAR, engine

GOOD = """
[kpis.big_deals_won]
title = "Big deals won"
unit = "count"
direction = "higher"
kind = "simple"
stage = "Act"
measure = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_won AND amount >= 1000" }

[kpis.won_share_of_closed_value]
title = "Won share of closed value"
unit = "percent"
direction = "higher"
kind = "ratio"

[kpis.won_share_of_closed_value.numerator]
table = "crm_deals"
agg = "sum"
time = "closed_at"
expr = "amount"
filter = "is_won"
currency = "currency"

[kpis.won_share_of_closed_value.denominator]
table = "crm_deals"
agg = "sum"
time = "closed_at"
expr = "amount"
filter = "is_closed"
currency = "currency"
"""


def project(tmp_path, text: str):
    (tmp_path / "kpihub.toml").write_text(text)
    return load_project(tmp_path / "kpihub.toml")


def test_project_kpis_compute_like_built_ins(tmp_path):
    kpis = {k.id: k for k in project_kpis(project(tmp_path, GOOD))}
    e = engine()
    big = e.series(kpis["big_deals_won"], grain="month", start=JAN, end=dt.date(2024, 4, 1)).values()
    assert big == {JAN: 1.0, FEB: 1.0, MAR: 0.0}  # d1 (1000) in Jan, d3 (3000) in Feb
    share = e.series(kpis["won_share_of_closed_value"], grain="month", start=JAN, end=MAR).values()
    assert share[JAN] == 1.0 and share[FEB] == pytest.approx(3000 / 3500)  # d2 lost 500; d5 has no amount


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace('filter = "is_won AND amount >= 1000"', 'filter = "is_won AND amout >= 1000"'),
            "[kpis.big_deals_won]: KPI 'big_deals_won': value filter uses unknown column 'amout' of table 'crm_deals'",
        ),
        (
            GOOD.replace('table = "crm_deals", agg = "count"', 'table = "crm_dealz", agg = "count"'),
            "[kpis.big_deals_won]: unknown table 'crm_dealz'",
        ),
        (
            GOOD.replace('title = "Big deals won"', 'titel = "Big deals won"'),
            "[kpis.big_deals_won] 'title' is required",
        ),
        (GOOD.replace('kind = "simple"', 'kind = "average"'), "[kpis.big_deals_won] 'kind' Input should be"),
        (
            GOOD.replace('kind = "simple"', 'kind = "cumulative"\nwindow = "3 fortnights"'),
            "[kpis.big_deals_won]: '3 fortnights' is not a window",
        ),
        (
            GOOD.replace('filter = "is_won AND amount >= 1000"', 'filter = "is_won AND (amount >= "'),
            "[kpis.big_deals_won]: KPI 'big_deals_won': value filter 'is_won AND (amount >= ' is not valid SQL",
        ),
    ],
)
def test_wrong_definitions_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        project_kpis(project(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_id_a_plugin_already_uses_is_refused(tmp_path):
    text = GOOD.replace("[kpis.big_deals_won]", "[kpis.win_rate]")
    with pytest.raises(ConfigError, match="a plugin already defines KPI 'win_rate'"):
        register_project_kpis({k.id: k for k in CRM_KPIS}, project(tmp_path, text))


def test_cli_lists_and_compiles_project_kpis(tmp_path, monkeypatch):
    reset_registry(None)
    project(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(cli, ["kpis", "--list"])
    assert listed.exit_code == 0 and "big_deals_won" in listed.output
    sql = CliRunner().invoke(
        cli,
        ["kpis", "--show-sql", "--dialect", "snowflake", "--kpi", "won_share_of_closed_value", "--period", "2024-Q1"],
    )
    assert sql.exit_code == 0 and "CONVERT_TIMEZONE" in sql.output
    (tmp_path / "kpihub.toml").write_text(
        GOOD.replace('time = "closed_at", filter = "is_won AND', 'time = "closd", filter = "is_won AND')
    )
    bad = CliRunner().invoke(cli, ["kpis", "--list"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert bad.output.strip().startswith(
        "Error: kpihub.toml: [kpis.big_deals_won]: KPI 'big_deals_won': value time column"
    )


DERIVED = """
[kpis.big_deal_share]
title = "Share of won deals that are big"
unit = "percent"
direction = "higher"
kind = "derived"
expr = "big_deals_won / won"
inputs = { won = { kpi = "won_deals" } }

[kpis.won_deals]
title = "Won deals"
unit = "count"
direction = "higher"
kind = "simple"
measure = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_won" }

[kpis.won_deals_vs_last_month]
title = "Won deals vs the month before"
unit = "count"
direction = "higher"
kind = "derived"
expr = "won_deals - before"
inputs = { before = { kpi = "won_deals", offset = -1 } }

[kpis.won_deals_ytd]
title = "Won deals year to date"
unit = "count"
direction = "higher"
kind = "cumulative"
to_date = "year"
measure = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_won" }
"""


def test_derived_and_cumulative_project_kpis_end_to_end(tmp_path):
    kpis = {k.id: k for k in CRM_KPIS}
    register_project_kpis(kpis, project(tmp_path, GOOD + DERIVED))
    e = engine().with_catalog(kpis)

    def q1(kpi_id):
        return e.series(kpis[kpi_id], grain="month", start=JAN, end=dt.date(2024, 4, 1)).values()

    # Won: d1 (1000) 31 Jan; d3 (3000) and d5 (no amount) in February. Big (≥ 1000): d1, d3.
    assert q1("big_deal_share") == {JAN: 1.0, FEB: 0.5, MAR: None}  # March: 0 / 0
    assert q1("won_deals_vs_last_month") == {JAN: 1.0, FEB: 1.0, MAR: -2.0}
    assert q1("won_deals_ytd") == {JAN: 1.0, FEB: 3.0, MAR: 3.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            DERIVED.replace('expr = "big_deals_won / won"', 'expr = "big_deals_won / wonn"'),
            "kpihub.toml: [kpis.big_deal_share]: KPI 'big_deal_share': expression uses unknown KPI 'wonn'",
        ),
        (
            DERIVED.replace('kpi = "won_deals", offset = -1', 'kpi = "won_dealz", offset = -1'),
            "[kpis.won_deals_vs_last_month]: KPI 'won_deals_vs_last_month': input 'before' refers to unknown KPI "
            "'won_dealz'",
        ),
        (
            DERIVED.replace('kpi = "won_deals" }', 'kpi = "loop" }')
            + '[kpis.loop]\ntitle = "x"\nunit = "count"\ndirection = "higher"\nkind = "derived"\n'
            'expr = "big_deal_share * 2"\n',
            "derived KPIs refer to each other in a cycle (big_deal_share -> loop -> big_deal_share)",
        ),
        (
            DERIVED.replace(
                'inputs = { won = { kpi = "won_deals" } }', 'inputs = { won = { kpi = "won_deals", lag = 1 } }'
            ),
            "[kpis.big_deal_share] 'inputs.won.lag' is not a known field",
        ),
    ],
)
def test_wrong_derived_definitions_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        register_project_kpis({k.id: k for k in CRM_KPIS}, project(tmp_path, GOOD + text))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_reports_a_cycle_in_one_line(tmp_path, monkeypatch):
    reset_registry(None)
    cyclic = DERIVED.replace('kpi = "won_deals" }', 'kpi = "big_deal_share" }')
    project(tmp_path, GOOD + cyclic)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["kpis", "--list"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        "Error: kpihub.toml: [kpis.big_deal_share]: KPI 'big_deal_share': derived KPIs refer to each other in a "
        "cycle (big_deal_share -> big_deal_share)"
    )


def test_a_project_kpi_may_be_a_snapshot_per_entity_in_milliseconds(tmp_path):
    text = """
[kpis.lcp_worst]
title = "Worst p75 LCP"
unit = "milliseconds"
direction = "lower"
kind = "simple"
stage = "Engage"
measure = { table = "page_experience", agg = "max", time = "period_end", expr = "p75_lcp_ms", over_time = "last", entity = ["target", "form_factor"] }
"""  # noqa: E501
    (kpi,) = project_kpis(project(tmp_path, text))
    assert kpi.unit == "milliseconds"
    assert kpi.measure.agg == "max" and kpi.measure.entity == ("target", "form_factor")
