"""Testing kit for plugin authors: fake API servers, the conformance suites and test helpers.

Test a connector the way kpihub tests its own: a fake server on 127.0.0.1
speaking the platform's real wire format, seeded data, programmable faults,
data that changes between page requests (:meth:`FakeAPIServer.between_pages`),
and :class:`kpihub.testing.conformance.SourceConformance` (a separate module: it needs pytest).
A KPI pack is tested by :class:`kpihub.testing.conformance.KPIConformance` on a hand-checked
fixture, a destination by :class:`kpihub.testing.conformance.DestinationConformance` (docs/conformance.md).

The helpers below are what a plugin's own tests reach for beyond that: settings built the way
a project builds them, a stream's pages normalized as a sync would, a registry of chosen
plugins, the KPI engine over a destination, canonical rows for fixtures, the demo business
every first-party fake draws from, and the CLI with its exit codes for ``click.testing.CliRunner``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpihub.config import ProjectSettings, build_source_settings
from kpihub.normalize import Normalizer
from kpihub.plugins import Registry, reset_registry
from kpihub.testing.business import DEMO_BUSINESS, Campaign, DemoBusiness
from kpihub.testing.server import (
    FAULT_KINDS,
    FakeAPIServer,
    FakeRequest,
    FakeResponse,
    Fault,
    PageHook,
    Paging,
    route,
)

if TYPE_CHECKING:
    import click

    from kpihub.kpis.engine import KPIEngine
    from kpihub.testing.kpi_conformance import canonical_rows

__all__ = [
    "DEMO_BUSINESS",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_QUOTA",
    "EXIT_REFUSED",
    "EXIT_STOPPED",
    "FAULT_KINDS",
    "Campaign",
    "DemoBusiness",
    "FakeAPIServer",
    "FakeRequest",
    "FakeResponse",
    "Fault",
    "KPIEngine",
    "Normalizer",
    "PageHook",
    "Paging",
    "ProjectSettings",
    "Registry",
    "build_source_settings",
    "canonical_rows",
    "cli",
    "reset_registry",
    "route",
]

_CLI_NAMES = ("EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_QUOTA", "EXIT_REFUSED", "EXIT_STOPPED")
cli: click.Group


def __getattr__(name: str) -> Any:
    # The CLI (click, rich) loads only when a test asks for it: fakes import this module at run time.
    if name == "KPIEngine":  # DuckDB and the compiler load with it
        from kpihub.kpis.engine import KPIEngine

        return KPIEngine
    if name == "canonical_rows":  # rows as a canonical table, for fixtures written straight to a destination
        from kpihub.testing.kpi_conformance import canonical_rows

        return canonical_rows
    if name == "cli" or name in _CLI_NAMES:
        import importlib

        return getattr(importlib.import_module("kpihub.cli.main"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
