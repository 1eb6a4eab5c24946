"""``kpihub plugins``: what is installed and what each plugin registers."""

from __future__ import annotations

import json

import click
from rich.table import Table

from kpihub.cli._context import registry
from kpihub.secrets import redact


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include kpihub's built-in plugins.")
@click.option("--hook", "hook", help="Only plugins implementing this hook (e.g. kpihub_register_kpis).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def command(ctx: click.Context, show_all: bool, hook: str | None, as_json: bool) -> None:
    """List installed plugins, their versions and what they register."""
    reg = registry(ctx, warn=False)
    infos = [p for p in reg.plugins.values() if (show_all or not p.builtin) and (not hook or hook in p.hooks)]
    if as_json:
        click.echo(
            json.dumps([{**p.as_dict(), "error": redact(p.error) if p.error else None} for p in infos], indent=2)
        )
    else:
        table = Table(header_style="bold")
        for col in ("Plugin", "Distribution", "Sources", "KPIs", "Destinations", "Status"):
            table.add_column(col)
        for p in infos:
            status = f"[red]{redact(p.error)}[/red]" if p.error else "[green]ok[/green]"
            table.add_row(
                p.name, p.dist_label, ", ".join(p.sources), ", ".join(p.kpis), ", ".join(p.destinations), status
            )
        if infos:
            ctx.obj["console"].print(table)
        else:
            ctx.obj["console"].print("No plugins installed (pip install kpihub-hubspot; --all shows built-ins).")
    if any(p.error for p in infos):
        ctx.exit(1)
