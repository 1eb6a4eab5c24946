"""`kpihub plan`: the next sync's windows, requests, quota and budget time, from the project and the state alone.

The demo project (every first-party plugin, against its fake) is planned before any sync and after one,
and the fakes' request logs show the plan sent nothing. The budget arithmetic is checked against the
rate budget itself on a simulated clock.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import kpihub
from kpihub.cli import cli
from kpihub.config import Project, ProjectSettings
from kpihub.http.quota import Limit, QuotaWait, RequestBudget, SimulatedClock
from kpihub.plan import make_plan, spend
from kpihub.plugins import Registry, reset_registry
from kpihub.source import PlanContext, Requests
from kpihub.sync import Pipeline
from tests.plugins.toy import ITEMS_SCHEMA, ItemsStream, ToySource

DEMO_PLUGINS = ("kpihub_hubspot", "kpihub_stripe", "kpihub_google_ads", "kpihub_meta_ads")
DEMO_PLUGINS += ("kpihub_linkedin_ads", "kpihub_ga4", "kpihub_files")
UTC = dt.timezone.utc

# -- the budget arithmetic, against the budget ------------------------------------------------------


def test_the_planned_wait_is_what_the_rate_budget_makes_requests_wait():
    """600 requests through HubSpot's 100 per 10 s: the plan says 50 s, the budget (simulated clock) waits 50 s."""
    limit = Limit("burst", 100, 10.0)
    clock = SimulatedClock()
    budget = RequestBudget([limit], clock=clock, sleep=clock.sleep)
    start = clock()
    for _ in range(600):
        budget.release(budget.acquire("GET", "https://api.example/crm/v3/objects/contacts"), None)
    (planned,) = spend([Requests(600, "/crm/v3/objects/contacts")], [limit], max_wait=300)
    assert planned.units == 600 and planned.runs == 1
    assert planned.wait == pytest.approx(clock() - start) == pytest.approx(50.0)


def test_a_window_longer_than_the_run_waits_is_a_run_per_window():
    """A daily cap of 10: the budget refuses the 11th request of a run, so 25 requests take 3 runs."""
    limit = Limit("daily", 10, 86_400.0)
    clock = SimulatedClock()
    budget = RequestBudget([limit], clock=clock, sleep=clock.sleep, max_wait=300)
    sent = 0
    with pytest.raises(QuotaWait):
        while True:
            budget.release(budget.acquire("GET", "https://api.example/v1/items"), None)
            sent += 1
    assert sent == 10
    (planned,) = spend([Requests(25, "/v1/items")], [limit], max_wait=300)
    assert planned.runs == 3 and planned.wait == 2 * 86_400.0


def test_a_limit_learnt_at_run_time_is_unknown_and_limits_match_as_the_budget_does():
    limits = [Limit("search", 5, 1.0, path=r"/search$"), Limit("day", None, 86_400.0)]
    out = {s.limit: s for s in spend([Requests(50, "/crm/v3/objects/deals/search", "POST")], limits, max_wait=300)}
    assert out["search"].wait == pytest.approx(9.0) and out["day"].wait is None and out["day"].units == 50
    per_property = Limit("tokens", 100, 3600.0, path=r"/properties/(\d+):runReport")
    requests = [Requests(3, "/v1beta/properties/1:runReport", cost=10), Requests(2, "/v1beta/properties/2:runReport")]
    assert {(s.key, s.units) for s in spend(requests, [per_property], max_wait=300)} == {("1", 30.0), ("2", 2.0)}


# -- the default estimate, from a real sync's state ---------------------------------------------------


def test_the_default_estimate_reads_the_cursor_and_the_last_runs_rate(tmp_path, toy_server, toy_registry):
    project = _toy_project(tmp_path, toy_server)
    assert Pipeline(project, registry=toy_registry).sync().ok
    toy_server.touch(list(range(1, 21)), minutes_later=60)  # 20 records change after the cursor
    assert Pipeline(project, registry=toy_registry).sync().ok
    with Pipeline(project, registry=toy_registry).open_destination(read_only=True) as session:
        state = session.all_state()
    entry = state["toy.items"]
    assert entry["since"] == "2024-01-01T04:10:00+00:00"  # where the second run read from
    now = dt.datetime.fromisoformat(entry["synced_at"]) + dt.timedelta(days=1)
    (stream,) = make_plan(project, toy_registry, state, now=now).sources[0].streams
    e = stream.estimate
    assert e.mode == "incremental" and e.since == dt.datetime.fromisoformat(entry["cursor"])
    span = (dt.datetime.fromisoformat(entry["synced_at"]) - dt.datetime.fromisoformat(entry["since"])).total_seconds()
    ahead = (now - dt.datetime.fromisoformat(entry["cursor"])).total_seconds()
    assert e.records == math.ceil(entry["records"] / span * ahead)
    assert e.at_least and e.request_count == 1 and "no page_size declared" in e.basis  # the toy declares none
    first = make_plan(project, toy_registry, {}, now=now).sources[0].streams[0].estimate
    assert (first.mode, first.since, first.records, first.at_least) == ("full", None, None, True)
    # --full-refresh: the whole table again, and the last run read only what changed (not the table's size).
    again = make_plan(project, toy_registry, state, full_refresh=True, now=now).sources[0].streams[0].estimate
    assert (again.mode, again.since, again.records) == ("full", None, None)


def test_a_full_refresh_after_a_full_read_expects_as_many_records(tmp_path, toy_server, toy_registry):
    project = _toy_project(tmp_path, toy_server)
    assert Pipeline(project, registry=toy_registry).sync().ok  # a first sync reads all 250 items
    with Pipeline(project, registry=toy_registry).open_destination(read_only=True) as session:
        state = session.all_state()
    assert state["toy.items"]["since"] is None and state["toy.items"]["records"] == 250
    (stream,) = make_plan(project, toy_registry, state, full_refresh=True).sources[0].streams
    assert (stream.estimate.mode, stream.estimate.records) == ("full", 250)
    assert "last full read (250)" in stream.estimate.basis


class CappedToy(ToySource):
    """The toy's items read whole on every sync, 10 a page, under a daily cap of 10 requests."""

    name = "capped"

    def streams(self, settings):
        return [ItemsStream("items", ITEMS_SCHEMA, primary_key=("id",), page_size=settings.page_size)]

    def plan_limits(self, settings):
        return [Limit("daily", 10, 86_400.0)]


class CappedPlugin:
    @staticmethod
    @kpihub.hookimpl
    def kpihub_register_sources(register):
        register(CappedToy())


def test_a_stream_over_the_daily_cap_says_how_many_runs(tmp_path, toy_server, monkeypatch):
    registry = Registry(load_entrypoints=False)
    registry.register_plugin(CappedPlugin, "capped")
    reset_registry(registry)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kpihub.toml").write_text(
        '[project]\ndestination = "duckdb:///data.duckdb"\n'
        f'[sources.capped]\nbase_url = "{toy_server.url}"\ntoken = "{toy_server.token}"\npage_size = 10\n'
    )
    assert CliRunner().invoke(cli, ["sync"]).exit_code == 0  # 250 items: 25 pages read whole next time too
    served = len(toy_server.requests)
    result = CliRunner().invoke(cli, ["plan"])
    assert result.exit_code == 0, result.output
    assert "~3 runs: exceeds daily 10/day" in result.stdout and "~250" in result.stdout
    rows = json.loads(CliRunner().invoke(cli, ["plan", "--format", "json"]).stdout)
    assert [(r["stream"], r["requests"], r["runs"]) for r in rows] == [("items", 25, 3), (None, 25, 3)]
    assert len(toy_server.requests) == served


# -- the demo project, every first-party plugin -------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's sources against their fakes, as a kpihub.toml: (directory, fake servers)."""
    for name in DEMO_PLUGINS:
        pytest.importorskip(name)
    from kpihub.cli.demo import _settings

    root = tmp_path_factory.mktemp("plan-demo")
    registry = Registry()
    specs = {name: source.demo(seed=7) for name, source in sorted(registry.sources.items())}
    specs = {name: spec for name, spec in specs.items() if spec is not None}
    data = root / "data"
    data.mkdir()
    for spec in specs.values():
        for name, text in spec.files.items():
            (data / name).write_text(text, encoding="utf-8")
    servers = [spec.server for spec in specs.values() if spec.server is not None]
    for server in servers:
        server.start()
    lines = ['[project]\ndestination = "duckdb:///kpihub.duckdb"\n']
    for name, spec in specs.items():
        lines.append(f"[sources.{name}]")  # JSON strings and lists are TOML ones too
        lines += [f"{k} = {json.dumps(v)}" for k, v in _settings(spec, data).items() if v is not None]
    (root / "kpihub.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        yield root, servers
    finally:
        for server in servers:
            server.stop()


def _plan_json(root: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["-p", str(root / "kpihub.toml"), "plan", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _served(servers) -> int:
    return sum(len(server.requests) for server in servers)


def test_demo_plan_before_any_sync_reads_everything_from_start_date_and_sends_nothing(demo):
    root, servers = demo
    before = _served(servers)
    result = CliRunner().invoke(cli, ["-p", str(root / "kpihub.toml"), "plan"])
    assert result.exit_code == 0, result.output
    assert "no state read" in result.stderr and "every stream is planned as a first sync" in result.stderr
    rows = {(r["source"], r["stream"]): r for r in _plan_json(root)}
    assert _served(servers) == before  # not one request
    keys = {"source", "type", "stream", "mode", "since", "until", "records", "requests", "requests_at_least"}
    assert all(keys | {"quota", "budget_seconds", "runs", "basis"} == set(r) for r in rows.values())
    today = dt.datetime.now(UTC).date().isoformat()
    for source in ("ga4", "google_ads", "meta_ads", "linkedin_ads"):  # report streams: start_date -> today
        found = [r for (s, name), r in rows.items() if s == source and name is not None]  # ga4: two reports
        assert found, source
        for row in found:
            assert (row["mode"], row["since"], row["until"]) == ("window", "2025-01-01", today), source
    contacts = rows[("hubspot", "contacts")]
    assert (contacts["mode"], contacts["since"], contacts["records"]) == ("full", None, None)
    assert contacts["requests_at_least"] and {q["limit"] for q in contacts["quota"]} == {"search", "daily"}
    assert rows[("google_ads", "campaign_performance")]["requests"] == 2  # searchStream: rows and totals
    assert rows[("ga4", "traffic_daily")]["quota"][0] | {"units": None} == {
        "limit": "tokens_hour",
        "key": "312345678",
        "units": None,
        "limit_size": 40_000.0,
        "per_seconds": 3600.0,
        "wait_seconds": 0.0,
        "runs": 1,
    }
    assert rows[("files", "costs")]["requests"] == 0 and rows[("files", None)]["requests"] == 0
    total = rows[("hubspot", None)]
    assert total["requests"] == sum(r["requests"] for (s, n), r in rows.items() if s == "hubspot" and n)


def test_demo_plan_after_a_sync_reads_from_the_cursors_and_the_restatement_windows(demo):
    root, servers = demo
    p = ["-p", str(root / "kpihub.toml")]
    synced = CliRunner().invoke(cli, [*p, "sync", "-d", "duckdb:///synced.duckdb"])
    assert synced.exit_code == 0, synced.output
    project = Project(path=root / "kpihub.toml", settings=ProjectSettings(destination="duckdb:///synced.duckdb"))
    with Pipeline(project).open_destination(read_only=True) as session:
        state = session.all_state()
    before = _served(servers)
    rows = {(r["source"], r["stream"]): r for r in _plan_json(root, "-d", "duckdb:///synced.duckdb")}
    assert _served(servers) == before
    today = dt.datetime.now(UTC).date()
    lookback = {"ga4": 3, "google_ads": 14, "meta_ads": 28, "linkedin_ads": 7}
    for source, days in lookback.items():
        keys = [k for k in state if k.startswith(f"{source}.")]  # ga4: traffic and landing-page reports
        assert keys, source
        for key in keys:
            row = rows[tuple(key.split("."))]
            since = dt.date.fromisoformat(state[key]["cursor"]) - dt.timedelta(days=days)
            assert (row["mode"], row["since"], row["until"]) == ("window", since.isoformat(), today.isoformat()), key
            first, last = (dt.date.fromisoformat(d) for d in state[key]["window"])
            per_day = state[key]["records"] / ((last - first).days + 1)
            assert row["records"] == math.ceil(per_day * ((today - since).days + 1)), key
    contacts = rows[("hubspot", "contacts")]
    assert contacts["mode"] == "incremental" and contacts["since"] == state["hubspot.contacts"]["cursor"]
    assert rows[("hubspot", "deal_pipelines")]["records"] == state["hubspot.deal_pipelines"]["records"]
    assert rows[("hubspot", "deals")]["requests"] >= 3  # a search page, the account details, the pipelines
    files = rows[("files", "costs")]
    assert files["records"] == state["files.costs"]["records"] and files["requests"] == 0
    # Read again in full: the last full read's contacts, 200 a search, at HubSpot's 5 searches a second.
    again = _plan_json(root, "-d", "duckdb:///synced.duckdb", "--full-refresh", "hubspot", "--streams", "contacts")
    contacts = again[0]
    assert contacts["records"] == state["hubspot.contacts"]["records"] and contacts["mode"] == "full"
    pages = math.ceil(contacts["records"] / 200)
    assert contacts["requests"] == pages and not contacts["requests_at_least"]
    assert contacts["budget_seconds"] == pytest.approx((pages - 5) / 5)
    assert _served(servers) == before


def test_plan_errors_are_one_line(demo):
    root, _ = demo
    result = CliRunner().invoke(cli, ["-p", str(root / "kpihub.toml"), "plan", "nosuch"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().startswith("Error: source 'nosuch' is not configured in kpihub.toml")
    bad = root / "bad.toml"
    bad.write_text('[sources.hubspot]\ntoken = "pat-secret-canary-77"\npage_size = 999\n')
    result = CliRunner().invoke(cli, ["-p", str(bad), "plan"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "page_size" in result.output and "pat-secret-canary-77" not in result.output


def _toy_project(tmp_path: Path, server) -> Project:
    return Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/data.duckdb"),
        sources={"toy": {"base_url": server.url, "token": server.token}},
    )


def test_plan_context_report_window_is_the_syncs():
    from kpihub.state import report_window

    state = {"cursor": "2026-06-30", "cursor_type": "date", "records": 40, "window": ["2026-06-01", "2026-06-30"]}
    settings = ToySource.settings_class(base_url="http://x", token="t")
    now = dt.datetime(2026, 7, 10, 12, tzinfo=UTC)
    ctx = PlanContext(source_id="s", stream="r", settings=settings, state=state, now=now)
    assert ctx.report_window(lookback_days=5) == report_window(state, lookback_days=5, today=now.date())
    assert ctx.records_per_day() == pytest.approx(40 / 30)
    fresh = PlanContext(source_id="s", stream="r", settings=settings, state=state, full_refresh=True, now=now)
    assert fresh.cursor is None and fresh.last_records == 40  # a full refresh still knows the last run
