"""``kpihub doctor``: one line per finding (``ok``/``warn``/``error``), non-zero exit on any error."""

from __future__ import annotations

import json

import click

from kpihub.config import Project, find_project_file, load_project
from kpihub.errors import ConfigError
from kpihub.source import Diagnosis

COLOURS = {"ok": "green", "warn": "yellow", "error": "red"}


def _project(path: str | None) -> tuple[Project | None, list[Diagnosis]]:
    if path is None and find_project_file() is None:
        message = "no kpihub.toml here or in a parent directory (run `kpihub init`): only the plugins were checked"
        return None, [Diagnosis("warn", message, "project")]
    try:
        return load_project(path, required=True), []
    except ConfigError as exc:
        return None, [Diagnosis("error", str(exc), "project")]


@click.command("doctor")
@click.option("--offline", is_flag=True, help="No requests: skip the sources' network checks (scopes, versions).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def command(ctx: click.Context, offline: bool, fmt: str) -> None:
    """Check plugins, hooks, source settings and secrets, API versions, token scopes and the destination."""
    from kpihub.doctor import diagnose, exit_code, load_registry, one_line

    registry, found = load_registry()
    project, problems = _project(ctx.obj.get("project"))
    findings = diagnose(registry, project, network=not offline, refused=found, project_problems=problems)
    findings = [Diagnosis(f.level, one_line(f.message), f.subject) for f in findings]
    if fmt == "json":
        click.echo(
            json.dumps([{"level": f.level, "subject": f.subject, "message": f.message} for f in findings], indent=2)
        )
    else:
        for f in findings:  # the level padded so the subjects line up
            click.echo(click.style(f"{f.level:<5}", fg=COLOURS[f.level]) + f" {f.subject}: {f.message}")
    ctx.exit(exit_code(findings))
