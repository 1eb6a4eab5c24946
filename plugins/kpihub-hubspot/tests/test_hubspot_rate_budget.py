"""HubSpot's limits, enforced by the fake on a simulated clock: the budget spends them fully, a daily cap stops cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from kpihub_hubspot.fake import FakeHubSpot, HubSpotLimits

from kpihub import Pipeline, Project
from kpihub.http import SimulatedClock as VirtualClock
from kpihub.testing import EXIT_QUOTA, ProjectSettings, Registry, cli, reset_registry


@pytest.fixture
def registry() -> Registry:
    import kpihub_hubspot

    reg = Registry(load_entrypoints=False)
    reg.register_plugin(kpihub_hubspot, "hubspot", distribution="kpihub-hubspot")
    return reg


def pipeline(tmp_path: Path, server: FakeHubSpot, registry: Registry, clock: VirtualClock, **settings) -> Pipeline:
    source = {"base_url": server.url, "token": server.token, "search_lag_seconds": 0, "page_size": 100, **settings}
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/hs.duckdb", chunk_rows=1_000),
        sources={"hubspot": source},
    )
    return Pipeline(project, registry=registry, sleep=clock.sleep, clock=clock)


def test_a_long_search_sync_spends_the_per_second_window_without_a_429(tmp_path, registry):
    clock = VirtualClock()
    limits = HubSpotLimits(clock=clock)
    with FakeHubSpot(contacts=15_000, limits=limits) as server:
        p = pipeline(tmp_path, server, registry, clock, max_parallel_streams=1)
        start = clock()
        result = p.sync(streams=["contacts"])
        elapsed = clock() - start
    assert result.ok and result.records == 15_000
    requests = limits.served
    # A rolling window of 5 per second admits at most 5 × (elapsed + 1) requests over the run.
    used = requests / (5 * (elapsed + 1))
    assert requests >= 150 and limits.refused == 0
    assert used >= 0.95, (requests, elapsed)


def test_the_ten_second_window_is_shared_and_never_retried_inside_itself(tmp_path, registry):
    """A 429 from the 10-second window (another app spent it) waits for the window, not 0.5 s of backoff."""
    clock = VirtualClock()
    limits = HubSpotLimits(clock=clock, burst=10)
    with FakeHubSpot(contacts=10, limits=limits) as server:
        p = pipeline(tmp_path, server, registry, clock)
        source, settings = p.resolve_source("hubspot")
        with p.requester("hubspot", source, settings) as http:
            for _ in range(40):  # 40 requests through a window of 10 per 10 s (learnt from the headers)
                http.json("GET", "/crm/v3/pipelines/deals")
            clock.sleep(10)
            for _ in range(10):  # someone else spends the window: the next request is refused
                assert limits.admit(search=False) is None
            before = limits.refused
            http.json("GET", "/crm/v3/pipelines/deals")
    assert limits.refused - before == 1  # one 429, then the budget waited for the window: no retry inside it
    assert min(s for s in clock.slept if s > 0) >= 1.0  # waits are window-sized, never a storm of short retries
    assert limits.served == 40 + 10 + 1


def test_a_daily_cap_stops_cleanly_with_state_and_the_next_day_resumes(tmp_path, registry):
    clock = VirtualClock()
    limits = HubSpotLimits(clock=clock, daily=12)
    with FakeHubSpot(contacts=3_000, limits=limits) as server:
        p = pipeline(tmp_path, server, registry, clock, max_parallel_streams=1)
        first = p.sync(streams=["contacts"])
        (stream,) = first.streams
        assert stream.status == "quota" and first.quota and not first.ok
        assert "daily" in stream.error and "midnight" in stream.error and "state saved at cursor" in stream.error
        assert 0 < stream.records < 3_000
        refused = limits.refused
        assert refused == 1  # the one request that found the cap; nothing retried it
        server.new_day()
        limits.daily = 10_000
        second = p.sync(streams=["contacts"])
        with p.open_destination(read_only=True) as s:
            ids = s.read_table("hubspot_contacts").column("id").to_pylist()
    assert second.ok
    assert len(ids) == len(set(ids)) == 3_000  # resumed: no gap, no duplicate


def test_cli_exits_with_the_quota_code_and_says_when_it_resets(tmp_path, registry, monkeypatch):
    reset_registry(registry)
    with FakeHubSpot(contacts=300, limits=HubSpotLimits(daily=1)) as server:
        (tmp_path / "kpihub.toml").write_text(
            f'[project]\ndestination = "duckdb:///hs.duckdb"\n[sources.hubspot]\nbase_url = "{server.url}"\n'
            "search_lag_seconds = 0\npage_size = 100\nmax_parallel_streams = 1\n"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KPIHUB_HUBSPOT_TOKEN", server.token)
        result = CliRunner().invoke(cli, ["sync", "--streams", "contacts"])
    assert result.exit_code == EXIT_QUOTA, result.output
    assert "midnight in the HubSpot account's time zone" in result.output
    assert "Error:" not in result.output
