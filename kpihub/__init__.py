"""kpihub: platform APIs -> Arrow -> DuckDB/Parquet -> KPI scorecards, through plugins.

A connector is a distribution in the ``kpihub`` entry-point group::

    [project.entry-points.kpihub]
    mysource = "kpihub_mysource"

whose module implements a hook from :mod:`kpihub.hookspecs`::

    import kpihub

    @kpihub.hookimpl
    def kpihub_register_sources(register):
        register(MySource())

Scripted syncs: ``kpihub.sync("kpihub.toml")`` or ``kpihub.Pipeline(...).sync()``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from kpihub.config import Project, SourceSettings, load_project
from kpihub.destinations.base import Destination, DestinationSession, TableWrite
from kpihub.errors import (
    ConfigError,
    DestinationError,
    HTTPError,
    KPIError,
    KpihubError,
    MalformedResponseError,
    MixedCurrencyError,
    NormalizationError,
    PaginationError,
    PluginError,
    SourceError,
    SyncError,
    UnknownNameError,
)
from kpihub.hookspecs import hookimpl, hookspec
from kpihub.kpis.spec import KPI, Measure
from kpihub.source import CheckResult, DemoSpec, Estimate, PlanContext, Requests, Source, Stream, StreamContext
from kpihub.sync import Pipeline, StreamResult, SyncResult, sync

__all__ = [
    "KPI",
    "CheckResult",
    "ConfigError",
    "DemoSpec",
    "Destination",
    "DestinationError",
    "DestinationSession",
    "Estimate",
    "HTTPError",
    "KPIError",
    "KpihubError",
    "MalformedResponseError",
    "Measure",
    "MixedCurrencyError",
    "NormalizationError",
    "PaginationError",
    "PlanContext",
    "Pipeline",
    "PluginError",
    "Project",
    "Requests",
    "Source",
    "SourceError",
    "SourceSettings",
    "Stream",
    "StreamContext",
    "StreamResult",
    "SyncError",
    "SyncResult",
    "TableWrite",
    "UnknownNameError",
    "__version__",
    "hookimpl",
    "hookspec",
    "load_project",
    "sync",
]
