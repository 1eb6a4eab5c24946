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

**The connector API** is what this module exports, with two toolkits beside it:
:mod:`kpihub.http` (requests, auth, paginators, rate budgets) and :mod:`kpihub.testing`
(fake API servers and the conformance suites). Plugins import from these three only;
every other module of kpihub is internal and may change without notice.
"""

from __future__ import annotations

__version__ = "0.1.0"

from kpihub.concurrency import interleave
from kpihub.config import Project, SourceSettings, load_project
from kpihub.destinations.base import (
    Between,
    Destination,
    DestinationSession,
    TableWrite,
    check_write,
    dedup_last,
    evolve_schema,
    is_staging,
    uri_path,
)
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
from kpihub.model import LIFECYCLE_STAGES, MONEY, CanonicalTable, ad_performance_batch, canonical_table
from kpihub.normalize import DriftReport, coerce_array
from kpihub.secrets import register_secret
from kpihub.source import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    Page,
    PlanContext,
    Requests,
    SettingsT,
    Source,
    Stream,
    StreamContext,
    WriteMode,
)
from kpihub.state import decode_cursor
from kpihub.declarative import DeclarativeSource  # noqa: E402  (after kpihub.source: it builds on it)
from kpihub.sync import Pipeline, StreamResult, SyncResult, sync

__all__ = [
    "KPI",
    "LIFECYCLE_STAGES",
    "MONEY",
    "Between",
    "CanonicalTable",
    "CheckResult",
    "ConfigError",
    "DeclarativeSource",
    "DemoSpec",
    "Destination",
    "DestinationError",
    "DestinationSession",
    "Diagnosis",
    "DriftReport",
    "Estimate",
    "HTTPError",
    "KPIError",
    "KpihubError",
    "MalformedResponseError",
    "Measure",
    "MixedCurrencyError",
    "NormalizationError",
    "Page",
    "PaginationError",
    "PlanContext",
    "Pipeline",
    "PluginError",
    "Project",
    "Requests",
    "SettingsT",
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
    "WriteMode",
    "__version__",
    "ad_performance_batch",
    "canonical_table",
    "check_write",
    "coerce_array",
    "decode_cursor",
    "dedup_last",
    "evolve_schema",
    "hookimpl",
    "hookspec",
    "interleave",
    "is_staging",
    "load_project",
    "register_secret",
    "sync",
    "uri_path",
]
