"""`kpihub demo` with every first-party plugin installed: six fakes, one business, one scorecard."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kpihub.cli import cli

PLUGINS = [
    "kpihub_hubspot",
    "kpihub_stripe",
    "kpihub_google_ads",
    "kpihub_meta_ads",
    "kpihub_linkedin_ads",
    "kpihub_ga4",
]


def test_demo_with_all_six_sources(tmp_path, monkeypatch):
    for name in PLUGINS:
        pytest.importorskip(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    for stream in (
        "hubspot.contacts",
        "stripe.charges",
        "google_ads.campaign_performance",
        "meta_ads.campaign_insights",
        "linkedin_ads.campaign_analytics",
        "ga4.traffic_daily",
    ):
        assert stream in result.output
    rows = json.loads(CliRunner().invoke(cli, ["-p", "kpihub-demo/kpihub.toml", "kpis", "--format", "json"]).output)
    by = {r["kpi"]: r for r in rows}
    # Marketing, web, sales and revenue KPIs side by side, all in the business's one currency.
    for kpi in ("ctr", "roas", "sessions", "traffic_to_lead", "leads", "win_rate", "sales", "arpu"):
        assert by[kpi]["period"] == "2026-Q2" and by[kpi]["actual"] is not None, kpi
    assert {by[k]["currency"] for k in ("cpc", "sales", "won_revenue")} == {"EUR"}
    assert {r["status"] for r in rows} == {"on track", "at risk", "off track"}
