"""The kpihub command: one-line errors, exit codes, no tracebacks unless --debug."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kpihub.cli import cli
from kpihub.plugins import reset_registry


@pytest.fixture
def project(tmp_path, toy_server, toy_registry, monkeypatch):
    reset_registry(toy_registry)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kpihub.toml").write_text(
        f'[project]\ndestination = "duckdb:///data.duckdb"\n[sources.toy]\nbase_url = "{toy_server.url}"\n'
        "max_attempts = 2\n"
    )
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", toy_server.token)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_sync_state_and_check(project, toy_server):
    result = run("sync")
    assert result.exit_code == 0, result.output
    assert "toy.items" in result.output and "250" in result.output
    state = json.loads(run("state").output)
    assert state["toy.items"]["cursor"] == "2024-01-01T04:10:00+00:00"
    assert state["toy.items"]["records"] == 250
    check = run("check")
    assert check.exit_code == 0 and "toy: ok" in check.output
    assert toy_server.token not in result.output + check.output


def test_bad_token_is_one_line_and_exit_1(project, toy_server, monkeypatch):
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", "wrong-canary-token-4242")
    result = run("sync")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "toy.items" in errors[0] and "HTTP 401: Invalid API key provided" in errors[0]
    assert "wrong-canary-token-4242" not in result.output and "Traceback" not in result.output
    check = run("check")
    assert check.exit_code == 1 and "wrong-canary-token-4242" not in check.output
    state = json.loads(run("state").output)
    assert "cursor" not in state["toy.items"] and state["toy.items"]["status"] == "failed"
    assert "wrong-canary-token-4242" not in json.dumps(state)


def test_unknown_source(project):
    result = run("sync", "hubspot")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: source 'hubspot' is not configured in kpihub.toml (configured: toy)"


def test_malformed_project_file_no_traceback_unless_debug(project):
    (project / "kpihub.toml").write_text("[project\n")
    result = run("sync")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "kpihub.toml: not valid TOML" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    debug = run("--debug", "sync")
    assert debug.exit_code == 1 and "Traceback" in debug.output


def test_init_writes_a_template_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    assert "[project]" in (tmp_path / "kpihub.toml").read_text()
    again = run("init")
    assert again.exit_code == 1 and "already exists" in again.output
    assert run("init", "--force").exit_code == 0


def test_init_project_reads_its_targets_file(tmp_path, monkeypatch):
    from kpihub.config import load_project
    from kpihub.destinations.base import TableWrite
    from kpihub.destinations.duckdb import DuckDBDestination
    from tests.test_kpis import crm_tables

    reset_registry(None)
    monkeypatch.chdir(tmp_path)
    assert run("init", "proj").exit_code == 0
    root = tmp_path / "proj"
    assert load_project(root / "kpihub.toml").settings.targets == "targets.toml"  # live, not commented out
    contacts, deals = crm_tables()
    with DuckDBDestination().open("duckdb:///kpihub.duckdb", root=root) as session:
        session.commit([TableWrite("crm_contacts", contacts, "replace"), TableWrite("crm_deals", deals, "replace")], {})
    args = ("-p", "proj/kpihub.toml", "kpis", "--period", "2024-02", "--as-of", "2024-06-01", "--format", "json")
    untouched = run(*args)  # the written file, every example commented out: no target, no error
    assert untouched.exit_code == 0, untouched.output
    assert {r["status"] for r in json.loads(untouched.output)} <= {"", "no data", "n/a", "refused"}
    # The user uncomments the example (from a directory other than the project's: the path is the project's).
    targets = root / "targets.toml"
    lines = targets.read_text().splitlines()
    start = lines.index("# [[target]]")
    edited = lines[:start] + [line.removeprefix("# ") for line in lines[start:]]
    targets.write_text("\n".join(edited).replace("2026-Q3", "2024-02") + "\n")
    rows = {r["kpi"]: r for r in json.loads(run(*args).output)}
    mqls = rows["mqls"]
    assert (mqls["actual"], mqls["baseline"], mqls["target"], mqls["status"]) == (2, 480, 550, "off track")
    assert rows["win_rate"]["status"] == "not targeted"
    table = run(*args[:-2])
    assert "off track" in next(line for line in table.output.splitlines() if "Marketing-qualified leads" in line)


def test_show_sql_in_another_dialect(project):
    result = run("kpis", "--show-sql", "--dialect", "postgres", "--kpi", "win_rate", "--period", "2024-Q1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("-- win_rate (postgres)") and "AT TIME ZONE 'UTC'" in result.output


def test_show_sql_of_all_kpis_comments_one_not_at_that_grain_and_refuses_it_by_name(project):
    listing = run("kpis", "--show-sql", "--grain", "day", "--period", "2024-01-15")
    assert listing.exit_code == 0, listing.output
    assert "-- monthly_arpu (duckdb): not at grain day: " in listing.output
    assert "-- win_rate (duckdb)\n" in listing.output
    alone = run("kpis", "--show-sql", "--kpi", "monthly_arpu", "--period", "2024-01-15")
    assert alone.exit_code == 1 and alone.output.startswith("Error: KPI 'monthly_arpu'")


def test_kpis_on_missing_data_says_so(project):
    run("sync")
    result = run("kpis", "--period", "2024-01", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["status"] for r in rows} == {"no data"}
    assert {r["notes"] for r in rows} >= {"table crm_contacts not synced", "table orders not synced"}


def test_unknown_kpi(project):
    result = run("kpis", "--kpi", "not_a_kpi")
    assert result.exit_code == 1 and "KPI 'not_a_kpi' is not registered" in result.output
