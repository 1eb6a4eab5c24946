"""What commands share: the loaded project, the plugin registry and the event sink."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from kpihub.cli.events import EventSink
from kpihub.cli.main import sink_of, warn_plugin_errors
from kpihub.config import Project, load_project
from kpihub.plugins import Registry, get_registry

if TYPE_CHECKING:
    from kpihub.kpis.engine import KPIEngine


def project(ctx: click.Context, *, required: bool = False) -> Project:
    if "project_obj" not in ctx.obj:
        ctx.obj["project_obj"] = load_project(ctx.obj.get("project"), required=required)
    return ctx.obj["project_obj"]


def registry(ctx: click.Context, *, warn: bool = True) -> Registry:
    reg = get_registry()
    if warn and not ctx.obj.get("warned"):
        warn_plugin_errors(reg, events(ctx))
        ctx.obj["warned"] = True
    return reg


def events(ctx: click.Context) -> EventSink:
    """Where the command reports progress, warnings and errors (:mod:`kpihub.cli.events`)."""
    return sink_of(ctx)


@contextmanager
def open_engine(
    proj: Project, reg: Registry, destination: str | None = None, engine: str = "duckdb"
) -> Iterator[KPIEngine]:
    """A KPI engine over the project's destination, opened read-only, with the whole KPI catalogue.

    ``engine``: ``duckdb`` (embedded; reads any destination), ``postgres`` (runs the SQL in the
    PostgreSQL destination itself) or ``spark`` (local Spark over a Parquet destination).
    """
    from kpihub.kpis.engine import KPIEngine

    uri = destination or proj.settings.destination
    with reg.destination_for(uri).open(uri, root=proj.root, read_only=True) as session:
        yield KPIEngine.for_destination(
            session,
            timezone=proj.settings.timezone,
            currency=proj.settings.currency,
            catalog=reg.kpis,
            engine=engine,
        )
