"""``kpihub check``: test each source's connection and credentials."""

from __future__ import annotations

import click

from kpihub.cli._context import project, registry
from kpihub.secrets import redact
from kpihub.sync import Pipeline


@click.command("check")
@click.argument("sources", nargs=-1)
@click.pass_context
def command(ctx: click.Context, sources: tuple[str, ...]) -> None:
    """Check that SOURCES (default: all configured) can connect."""
    pipeline = Pipeline(project(ctx, required=True), registry=registry(ctx))
    failed = 0
    for source_id in sources or pipeline.source_ids():
        source, settings = pipeline.resolve_source(source_id)
        with pipeline.requester(source_id, source, settings) as http:
            verdict = source.check(settings, http)
        mark = "[green]ok[/green]" if verdict.ok else "[red]failed[/red]"
        ctx.obj["console"].print(f"{source_id}: {mark} {redact(verdict.message)}", soft_wrap=True)
        failed += not verdict.ok
    if failed:
        ctx.exit(1)
