"""``kpihub plugins``: what is installed, what each plugin registers, each source's streams and settings.

``kpihub plugins install|uninstall`` run pip in kpihub's own environment (kpihub.cli.pip).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpihub.cli._context import registry
from kpihub.cli.pip import install, uninstall
from kpihub.secrets import redact


@click.group("plugins", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include kpihub's built-in plugins.")
@click.option("--hook", "hook", help="Only plugins implementing this hook (e.g. kpihub_register_kpis).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_context
def command(ctx: click.Context, show_all: bool, hook: str | None, fmt: str, as_json: bool) -> None:
    """List installed plugins, what they register, and each source's streams and settings."""
    if ctx.invoked_subcommand is not None:
        return
    reg = registry(ctx, warn=False)
    infos = [p for p in reg.plugins.values() if (show_all or not p.builtin) and (not hook or hook in p.hooks)]
    from kpihub.describe import describe_source

    sources = {name: describe_source(reg.sources[name]) for p in infos for name in p.sources if name in reg.sources}
    if as_json or fmt == "json":
        rows = [
            {
                **p.as_dict(),
                "error": redact(p.error) if p.error else None,
                "source_details": [sources[s] for s in p.sources if s in sources],
            }
            for p in infos
        ]
        click.echo(json.dumps(rows, indent=2, default=str))
    elif infos:
        console: Console = ctx.obj["console"]
        console.print(_plugins_table(infos))
        for details in sources.values():
            console.print(_source_table(details))
    else:
        ctx.obj["console"].print("No plugins installed (kpihub plugins install kpihub-hubspot; --all shows built-ins).")
    if any(p.error for p in infos):
        ctx.exit(1)


def _plugins_table(infos: list[Any]) -> Table:
    table = Table(header_style="bold")
    for col in ("Plugin", "Distribution", "Sources", "KPIs", "Destinations", "Status"):
        table.add_column(col)
    for p in infos:
        status = f"[red]{redact(p.error)}[/red]" if p.error else "[green]ok[/green]"
        table.add_row(p.name, p.dist_label, ", ".join(p.sources), ", ".join(p.kpis), ", ".join(p.destinations), status)
    return table


def _source_table(details: dict[str, Any]) -> Table:
    """A source's settings, titled with its streams (and the canonical table each feeds)."""
    streams = [
        f"{s['name']} → {s['canonical_table']}" if s["canonical_table"] else s["name"] for s in details["streams"]
    ]
    listed = ", ".join(streams) if streams else "(from its settings)"
    table = Table(header_style="bold", title=escape(f"{details['name']} ({details['title']}): streams {listed}"))
    table.title_justify = "left"
    for col in ("Setting", "Type", "Required / default", "Secret", "Environment variable"):
        table.add_column(col)
    for s in details["settings"]:
        default = "required" if s["required"] else json.dumps(s["default"], default=str)
        # escape: rich would read "list[str]" as a markup tag
        table.add_row(s["name"], escape(s["type"]), escape(default), "yes" if s["secret"] else "no", s["env"])
    return table


command.add_command(install)
command.add_command(uninstall)
