"""`kpihub demo` with every first-party plugin installed: their fakes, one business, one scorecard."""

from __future__ import annotations

import datetime as dt
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
    "kpihub_zendesk",
    "kpihub_typeform",
    "kpihub_meta_pages",
    "kpihub_linkedin_pages",
    "kpihub_crux",
    "kpihub_matomo",
    "kpihub_files",
]


@pytest.fixture(scope="session")  # session: built once per worker, whatever order xdist runs tests in
def demo(tmp_path_factory):
    """``kpihub demo`` run once in a fresh directory: (directory, its output)."""
    for name in PLUGINS:
        pytest.importorskip(name)
    where = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    return where, result


def test_demo_with_all_six_sources(demo, monkeypatch):
    tmp_path, result = demo
    monkeypatch.chdir(tmp_path)
    for stream in (
        "hubspot.contacts",
        "stripe.charges",
        "google_ads.campaign_performance",
        "meta_ads.campaign_insights",
        "linkedin_ads.campaign_analytics",
        "ga4.traffic_daily",
        "zendesk.tickets",
        "typeform.answers",
        "meta_pages.facebook_daily",
        "linkedin_pages.page_statistics",
        "matomo.",
        "crux.",
        "files.costs",
    ):
        assert stream in result.output
    rows = json.loads(CliRunner().invoke(cli, ["-p", "kpihub-demo/kpihub.toml", "kpis", "--format", "json"]).output)
    by = {r["kpi"]: r for r in rows}
    # Marketing, web, sales and revenue KPIs side by side, all in the business's one currency.
    kpis = ("ctr", "roas", "sessions", "traffic_to_lead", "leads", "win_rate", "sales", "arpu", "nps", "cac")
    for kpi in (*kpis, "first_contact_resolution", "social_engagement_rate", "avg_page_load_seconds"):
        assert by[kpi]["period"] == "2026-Q2" and by[kpi]["actual"] is not None, kpi
    assert {by[k]["currency"] for k in ("cpc", "sales", "won_revenue")} == {"EUR"}
    # The guides' satisfaction, support, social and page-speed KPIs come from the platforms' APIs:
    # the only file the demo writes is the costs, which have no API.
    for kpi in ("csat", "nki", "first_response_hours", "social_followers", "lcp_p75", "core_web_vitals_pass_rate"):
        assert by[kpi]["actual"] is not None, kpi
    assert sorted(p.name for p in (tmp_path / "kpihub-demo" / "data").iterdir()) == ["costs.csv"]
    assert {r["status"] for r in rows} == {"on track", "at risk", "off track", "not targeted"}


def test_every_demo_target_starts_from_the_quarter_before(demo, monkeypatch):
    """A target's baseline is its KPI's 2026-Q1 value in the demo's data (to 1 % or the baseline's last digit),
    and its target lies on the better side: the sample targets read as a business would set them."""
    import tomllib

    from kpihub.plugins import get_registry

    tmp_path, _ = demo
    monkeypatch.chdir(tmp_path)
    scored = CliRunner().invoke(
        cli, ["-p", "kpihub-demo/kpihub.toml", "kpis", "--period", "2026-Q1", "--format", "json"]
    )
    q1 = {r["kpi"]: r for r in json.loads(scored.stdout)}
    targets = tomllib.loads((tmp_path / "kpihub-demo" / "targets.toml").read_text())["target"]
    assert len({t["kpi"] for t in targets}) == len(targets)  # one target per KPI: no plugin repeats another's
    for t in targets:
        row = q1[t["kpi"]]
        actual = row["actual"] * (100 if row["unit"] == "percent" else 1)
        digits = len(str(t["baseline"]).partition(".")[2]) if isinstance(t["baseline"], float) else 0
        assert abs(t["baseline"] - actual) <= max(0.01 * abs(actual), 0.5 * 10**-digits), (t, actual)
        assert (t["target"] > t["baseline"]) == (get_registry().kpi(t["kpi"]).direction == "higher"), t


def test_demo_tables_are_written_by_the_api_sources(demo):
    import duckdb

    tables = ("survey_responses", "support_tickets", "social_daily", "page_performance_daily", "page_experience")
    # Closed at once: an open connection would refuse the other tests' differently configured ones.
    with duckdb.connect(str(demo[0] / "kpihub-demo" / "kpihub.duckdb"), read_only=True) as con:
        writers = {t: {r[0] for r in con.execute(f"SELECT DISTINCT source_id FROM {t}").fetchall()} for t in tables}
    assert writers == {
        "survey_responses": {"typeform"},
        "support_tickets": {"zendesk"},
        "social_daily": {"meta_pages", "linkedin_pages"},
        "page_performance_daily": {"matomo"},
        "page_experience": {"crux"},
    }


def test_demo_data_through_cohorts_clv_breakdowns_and_sql(demo, monkeypatch):
    import duckdb

    tmp_path, _ = demo
    monkeypatch.chdir(tmp_path)
    p = ["-p", "kpihub-demo/kpihub.toml"]
    runs = {
        "cohorts": [*p, "cohorts", "--start", "2025-07", "--end", "2026-06", "--ages", "3", "--format", "json"],
        "clv": [*p, "clv", "--as-of", "2026-06-30", "--format", "csv", "-o", "clv.csv"],
        "clv_json": [*p, "clv", "--format", "json", "-o", "clv.json"],
        "by": [*p, "kpis", "--by", "channel", "--kpi", "ctr", "--period", "2026-Q2", "--format", "json"],
        "sql": [*p, "kpis", "--show-sql", "--kpi", "clv", "--dialect", "postgres", "--period", "2026-Q2"],
    }
    out = {}
    for name, args in runs.items():
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (name, result.output)
        out[name] = result.output
    # Every CLI run has closed the database: check what they printed against it.
    con = duckdb.connect("kpihub-demo/kpihub.duckdb", read_only=True)
    paid = "kind = 'charge' AND status = 'succeeded' AND customer_id IS NOT NULL"

    cells = json.loads(out["cohorts"])
    assert len(cells) == 12 * 4
    last = con.execute(f"SELECT MAX(ordered_at) FROM orders WHERE {paid}").fetchone()[0].date()
    for cell in cells:
        if cell["customers"] and cell["age"] == 0:
            assert cell["retention"] == 1.0  # everyone is active in the month they start
        unobserved = not cell["customers"] or _age_start(cell) > last
        assert (cell["retention"] is None) == unobserved
    june = con.execute(
        f"SELECT COUNT(*) FROM (SELECT customer_id, MIN(ordered_at) AS f FROM orders WHERE {paid} GROUP BY 1) "
        "WHERE f >= '2026-06-01' AND f < '2026-07-01'"
    ).fetchone()[0]
    assert next(c for c in cells if c["cohort"] == "2026-06-01" and c["age"] == 0)["customers"] == june

    customers = (tmp_path / "clv.csv").read_text().splitlines()
    assert customers[0].startswith('"customer","first_purchase","frequency","recency","T","monetary","p_alive"')
    buyers = con.execute(f"SELECT COUNT(DISTINCT customer_id) FROM orders WHERE {paid} AND ordered_at < '2026-07-01'")
    assert len(customers) - 1 == buyers.fetchone()[0]

    # No --as-of: the fit is as of the last order's day, with both models' parameters in the JSON.
    fitted = json.loads((tmp_path / "clv.json").read_text())
    newest = con.execute("SELECT MAX(ordered_at) FROM orders").fetchone()[0].date()
    assert fitted["as_of"] == newest.isoformat()
    assert set(fitted["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood", "at_bound"}
    assert set(fitted["gamma_gamma"]) == {"p", "q", "v", "log_likelihood", "at_bound"}
    assert fitted["bgnbd"]["log_likelihood"] < 0 and len(fitted["customers"]) > 10

    by = {r["channel"]: r["value"] for r in json.loads(out["by"])}
    assert set(by) == {"google_ads", "meta_ads", "linkedin_ads"}
    clicks, impressions = con.execute(
        "SELECT SUM(clicks), SUM(impressions) FROM ad_performance_daily WHERE platform = 'meta_ads' "
        "AND date >= '2026-04-01' AND date < '2026-07-01'"
    ).fetchone()
    assert by["meta_ads"] == pytest.approx(clicks / impressions)

    assert "-- clv (postgres)" in out["sql"] and "frequency" in out["sql"]
    con.close()  # the next test's CLI opens the file with its own configuration


def _age_start(cell: dict) -> dt.date:
    start = dt.date.fromisoformat(cell["cohort"])
    index = start.year * 12 + start.month - 1 + cell["age"]
    return dt.date(index // 12, index % 12 + 1, 1)


def test_a_breakdown_without_a_period_is_of_the_datas_last_complete_month(demo, monkeypatch):
    """As the scorecard's default: the demo's data ends mid-2026, so not the month before today's."""
    monkeypatch.chdir(demo[0])
    result = CliRunner().invoke(
        cli, ["-p", "kpihub-demo/kpihub.toml", "kpis", "--by", "channel", "--kpi", "ctr", "--format", "json"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    rows = json.loads(result.stdout)
    assert {r["period"] for r in rows} == {"2026-06"} and len(rows) == 3
