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
        (GOOD.replace('kind = "simple"', 'kind = "cumulative"'), "[kpis.big_deals_won] 'kind' Input should be"),
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
