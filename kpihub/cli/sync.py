"""``kpihub sync``: read sources into the destination."""

from __future__ import annotations

import click

from kpihub.cli._context import project, registry
from kpihub.cli.progress import RichProgress, summary_table
from kpihub.secrets import redact
from kpihub.sync import Pipeline


@click.command("sync")
@click.argument("sources", nargs=-1)
@click.option("--streams", help="Comma-separated streams to sync (name or source.name).")
@click.option("--full-refresh", is_flag=True, help="Ignore saved cursors and re-read everything.")
@click.option("--destination", "-d", help="Destination URI (overrides [project] destination).")
@click.pass_context
def command(
    ctx: click.Context, sources: tuple[str, ...], streams: str | None, full_refresh: bool, destination: str | None
) -> None:
    """Sync SOURCES (default: every configured source)."""
    pipeline = Pipeline(project(ctx), destination=destination, registry=registry(ctx))
    wanted = [s.strip() for s in streams.split(",") if s.strip()] if streams else None
    console = ctx.obj["console"]
    with RichProgress(console) as progress:
        result = pipeline.sync(list(sources) or None, streams=wanted, full_refresh=full_refresh, progress=progress)
    console.print(summary_table(result.streams))
    for r in result.streams:
        if r.drift:
            ctx.obj["err"].print(f"[yellow]Note:[/yellow] {r.key}: {redact(r.drift)}", soft_wrap=True)
    failed = [r for r in result.streams if r.status != "ok"]
    for r in failed:
        click.echo(f"Error: {r.key}: {redact(r.error)}", err=True)
    if failed:
        ctx.exit(1)
