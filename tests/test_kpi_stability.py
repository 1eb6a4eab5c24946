"""No KPI changes value between an uninterrupted sync, a sync stopped at any point and resumed,
and a re-sync of the lookback window (issue 13), over the demo business's six fake APIs and files.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpihub.cli.demo import _settings
from kpihub.cli.kpis import compute_scorecard
from kpihub.config import Project, ProjectSettings
from kpihub.plugins import Registry
from kpihub.sync import Pipeline
from tests.conftest import StopAfterPages

TODAY = dt.date(2026, 7, 1)  # the demo business's data ends in June 2026


class Demo:
    """The demo's sources (fakes started) and a way to make a project over them in a new directory."""

    def __init__(self, where: Path) -> None:
        self.registry = Registry()
        self.specs = {}
        for name, source in sorted(self.registry.sources.items()):
            spec = source.demo(seed=7, scale=1)
            if spec is not None:
                self.specs[name] = spec
        if "hubspot" not in self.specs:
            pytest.skip("the first-party plugins are not installed")
        self.data_dir = where / "data"
        self.data_dir.mkdir(parents=True)
        for spec in self.specs.values():
            for name, text in spec.files.items():
                (self.data_dir / name).write_text(text, encoding="utf-8")
            if spec.server is not None:
                spec.server.start()
        targets = where / "targets.toml"
        targets.write_text("", encoding="utf-8")
        self.targets = targets

    def project(self, where: Path) -> Project:
        where.mkdir(parents=True, exist_ok=True)
        sources = {name: _settings(spec, self.data_dir) for name, spec in self.specs.items()}
        settings = ProjectSettings(destination="duckdb:///kpihub.duckdb", timezone="Europe/Oslo", chunk_rows=5_000)
        return Project(path=where / "kpihub.toml", settings=settings, sources=sources)

    def kpis(self, project: Project) -> dict[str, Any]:
        rows = compute_scorecard(project, self.registry, today=TODAY, targets_file=self.targets)
        return {r.kpi: (r.actual, r.status) for r in rows}

    def stop(self) -> None:
        for spec in self.specs.values():
            if spec.server is not None:
                spec.server.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, dict[str, Any], Path]]:
    where = tmp_path_factory.mktemp("stability")
    demo = Demo(where)
    try:
        project = demo.project(where / "uninterrupted")
        result = Pipeline(project, registry=demo.registry).sync()
        assert result.ok, {r.key: r.error for r in result.streams if not r.status == "ok"}
        yield demo, demo.kpis(project), where
    finally:
        demo.stop()


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """The same KPIs: equal statuses, values equal up to float summation order (rows stored in another order)."""
    assert got.keys() == want.keys()
    for kpi in want:
        (a, status_a), (b, status_b) = got[kpi], want[kpi]
        assert status_a == status_b, kpi
        assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-12)), (kpi, a, b)
    return True


def test_the_demo_scores_kpis(demo):
    _, kpis, _ = demo
    assert len(kpis) > 20 and sum(actual is not None for actual, _ in kpis.values()) > 20


def test_a_resync_of_the_lookback_window_changes_no_kpi(demo):
    d, kpis, where = demo
    project = d.project(where / "uninterrupted")
    assert Pipeline(project, registry=d.registry).sync().ok
    assert same(d.kpis(project), kpis)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pages=st.integers(min_value=1, max_value=400))
def test_a_sync_stopped_anywhere_and_resumed_changes_no_kpi(demo, pages):
    d, kpis, where = demo
    project = d.project(where / f"stopped-{pages}-{threading.get_ident()}")
    stop = threading.Event()
    first = Pipeline(project, registry=d.registry).sync(progress=StopAfterPages(stop, pages), stop=stop)
    assert all(r.status in ("ok", "stopped") for r in first.streams), {r.key: r.error for r in first.streams}
    resumed = Pipeline(project, registry=d.registry).sync()
    assert resumed.ok, {r.key: r.error for r in resumed.streams if r.status != "ok"}
    assert same(d.kpis(project), kpis), f"stopped after {pages} pages"
