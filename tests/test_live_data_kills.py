"""Data changing under the pages, and SIGKILL at random points on top (issue 13).

For every first-party API connector: its fake changes records between page requests (the
conformance suite's ``live_changes``: modify, add, delete; reports restated) while real
``kpihub sync`` processes are killed at random failpoints; then the changes stop and the sync
runs to the end (twice: the second brings what changed during the first). Every row a fresh full
sync of the final data finds must then be in the tables with the same values — nothing lost.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kpihub.testing.crash import ForkLauncher, choose_points, run_sync, trace_points

LAUNCHER = ForkLauncher("kpihub")
KILLS = 4
#: plugin test module, its conformance class
CONNECTORS = {
    "hubspot": ("kpihub-hubspot", "test_hubspot", "TestHubSpotConformance"),
    "stripe": ("kpihub-stripe", "test_stripe", "TestStripeConformance"),
    "ga4": ("kpihub-ga4", "test_ga4", "TestGA4Conformance"),
    "meta_ads": ("kpihub-meta-ads", "test_meta_ads", "TestMetaAdsConformance"),
    "linkedin_ads": ("kpihub-linkedin-ads", "test_linkedin_ads", "TestLinkedInAdsConformance"),
}
ROOT = Path(__file__).resolve().parents[1]


def conformance(name: str) -> Any:
    plugin, module, cls = CONNECTORS[name]
    path = ROOT / "plugins" / plugin / "tests" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"live_kill_{module}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls)()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def write_project(where: Path, source: str, settings: dict[str, Any]) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    lines = [
        "[project]",
        f'destination = "duckdb:///{where}/conformance.duckdb"',
        "chunk_rows = 100",
        f"[sources.{source}]",
    ]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items() if v is not None]
    (where / "kpihub.toml").write_text("\n".join(lines) + "\n")
    return where / "kpihub.toml"


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_live_changes_and_kills_lose_nothing(name, tmp_path):
    pytest.importorskip(f"kpihub_{name}")
    suite = conformance(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIHUB_")}
    with suite.make_server() as server:
        settings = {**suite.settings(server), "max_attempts": 3}
        project = write_project(tmp_path / "live", suite.source.name, settings)
        args = ["-p", str(project), "sync"]
        probe = write_project(tmp_path / "probe", suite.source.name, settings)
        counts = trace_points(LAUNCHER, ["-p", str(probe), "sync"], env)
        server.between_pages(suite.live_changes(server))
        killed = 0
        for point in choose_points(counts, KILLS, seed=13):
            outcome = run_sync(LAUNCHER, args, env, point)
            killed += outcome.killed
            assert outcome.killed or outcome.returncode in (0, 1), outcome.stderr[-2000:]
        assert killed, "no run reached its kill point"
        assert run_sync(LAUNCHER, args, env).returncode in (0, 1)  # may say mismatch: data moved mid-read
        server.clear_page_hooks()
        final = run_sync(LAUNCHER, args, env)
        assert final.returncode == 0, final.stderr[-2000:]
        live = suite.pipeline(tmp_path / "live", settings)  # the same DuckDB file, read in this process
        suite.assert_nothing_lost(live, suite.sync_fresh(tmp_path / "fresh", server), server, f"after {killed} kills")
