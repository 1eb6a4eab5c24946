"""Shared fixtures: isolated registries, a toy source with its fake server, temp projects."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpihub.config import Project, ProjectSettings
from kpihub.plugins import Registry, reset_registry


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Tests never see a developer's KPIHUB_* variables or a stray kpihub.toml.
    for name in list(os.environ):
        if name.startswith("KPIHUB_"):
            monkeypatch.delenv(name)
    reset_registry(None)
    yield
    reset_registry(None)


@pytest.fixture
def registry() -> Registry:
    """A registry of kpihub's built-ins only (no installed entry points)."""
    return Registry(load_entrypoints=False)


@pytest.fixture
def toy_server() -> Iterator[object]:
    from tests.plugins.toy import FakeToy

    with FakeToy(seed=3, items=250) as server:
        yield server


@pytest.fixture
def toy_registry(registry: Registry) -> Registry:
    from tests.plugins import toy

    registry.register_plugin(toy, "toy")
    return registry


def make_project(
    tmp_path: Path, sources: dict[str, dict], destination: str | None = None, **settings: object
) -> Project:
    dest = destination or f"duckdb:///{tmp_path}/data.duckdb"
    return Project(
        path=tmp_path / "kpihub.toml", settings=ProjectSettings(destination=dest, **settings), sources=sources
    )
