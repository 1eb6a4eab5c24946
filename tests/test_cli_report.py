"""``kpihub report``: HTML and the static formats from a synced project, and its one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from kpihub.cli import cli
from tests.test_demo import demo  # noqa: F401  (the session fixture: kpihub demo run once)

P = ["-p", "kpihub-demo/kpihub.toml"]


def run(*args: str):
    return CliRunner().invoke(cli, [*P, *args])


def test_static_formats_hold_the_scorecard_and_the_charts(demo, monkeypatch):  # noqa: F811
    monkeypatch.chdir(demo[0])
    few = ("--kpi", "aov", "--kpi", "orders", "--kpi", "nps")  # three KPIs: each format is drawn in seconds
    svg = run("report", *few, "--format", "svg", "--out", "r.svg", "--period", "2026-Q1")
    assert svg.exit_code == 0, svg.output
    assert svg.output.startswith("Wrote r.svg (") and "2026-Q1" in svg.output
    text = (demo[0] / "r.svg").read_text()
    assert text.startswith("<svg") and "Scorecard" in text and "Average order value" in text
    assert "Period 2026-Q1" in text and "Net Promoter Score" in text and "Leads" not in text
    assert run("report", *few, "--format", "png", "-o", "r.png").exit_code == 0
    assert (demo[0] / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("report", *few, "--format", "pdf", "-o", "r.pdf").exit_code == 0
    assert (demo[0] / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(demo[0].glob("*.partial"))


def test_html_by_default_and_errors_are_one_line(demo, monkeypatch):  # noqa: F811
    monkeypatch.chdir(demo[0])
    html = run("report", "--kpi", "aov", "--kpi", "orders")
    assert html.exit_code == 0, html.output
    page = (demo[0] / "report.html").read_text()
    assert page.startswith("<!doctype html>") and 'id="kpi-aov-' in page and 'id="kpi-leads-' not in page
    for args, message in [
        (("--format", "pdf", "-o", "r.png"), "Error: --out r.png: the file name says .png, the format is pdf"),
        (("-o", "nowhere/r.html"), "Error: --out nowhere/r.html: directory nowhere does not exist"),
        (("--period", "2026-13"), "Error: "),
        (("--kpi", "no_such_kpi"), "Error: unknown KPI 'no_such_kpi'"),
    ]:
        result = run("report", *args)
        assert result.exit_code == 1 and result.output.startswith(message), (args, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_the_report_scores_with_the_projects_parameters_and_its_own_kpis(demo, monkeypatch):  # noqa: F811
    import json

    monkeypatch.chdir(demo[0])
    project = (demo[0] / "kpihub-demo" / "kpihub.toml").read_text()
    assert "gross_margin = 0.5" in project  # the demo business's margin, in its project
    mine = demo[0] / "kpihub-demo" / "mine.toml"
    mine.write_text(
        project
        + '\n[kpis.big_deals_won]\ntitle = "Big deals won"\nunit = "count"\ndirection = "higher"\nkind = "simple"\n'
        'stage = "Act"\nmeasure = { table = "crm_deals", agg = "count", time = "closed_at", '
        'filter = "is_won AND amount >= 5000" }\n'
    )
    p = ["-p", str(mine)]
    html = CliRunner().invoke(cli, [*p, "report", "-o", "mine.html"])  # first: nothing registered before it
    assert html.exit_code == 0, html.output
    scored = CliRunner().invoke(cli, [*p, "kpis", "--kpi", "cac_payback_months", "--format", "json"])
    assert scored.exit_code == 0, scored.output
    payback = json.loads(scored.stdout)[0]["actual"]
    page = (demo[0] / "mine.html").read_text()
    assert 'id="kpi-big_deals_won-' in page  # the project's KPI has its card
    # CAC payback divided by the project's gross margin, as `kpihub kpis` scores it, not the revenue payback.
    assert f"{payback:.1f} mo" in page and "gross margin not set" not in page
    # The process-wide registry is untouched: the next command, on the demo's own project, knows no such KPI.
    other = CliRunner().invoke(cli, [*P, "kpis", "--kpi", "big_deals_won"])
    assert other.exit_code == 1 and "KPI 'big_deals_won' is not registered" in other.output
