"""What commands share: the loaded project and plugin registry."""

from __future__ import annotations

import click

from kpihub.cli.main import warn_plugin_errors
from kpihub.config import Project, load_project
from kpihub.plugins import Registry, get_registry


def project(ctx: click.Context, *, required: bool = False) -> Project:
    if "project_obj" not in ctx.obj:
        ctx.obj["project_obj"] = load_project(ctx.obj.get("project"), required=required)
    return ctx.obj["project_obj"]


def registry(ctx: click.Context, *, warn: bool = True) -> Registry:
    reg = get_registry()
    if warn and not ctx.obj.get("warned"):
        warn_plugin_errors(reg, ctx.obj["err"])
        ctx.obj["warned"] = True
    return reg
