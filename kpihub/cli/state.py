"""``kpihub state``: the committed incremental state of each stream."""

from __future__ import annotations

import json

import click

from kpihub.cli._context import project, registry


@click.command("state")
@click.pass_context
def command(ctx: click.Context) -> None:
    """Print each stream's committed cursor as JSON."""
    proj = project(ctx)
    reg = registry(ctx)
    uri = proj.settings.destination
    session = reg.destination_for(uri).open(uri, root=proj.root, read_only=True)
    with session:
        click.echo(json.dumps(session.all_state(), indent=2, sort_keys=True))
