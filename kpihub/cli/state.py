"""``kpihub state``: the committed incremental state of each stream; ``state reset`` forgets a cursor.

A reset commits, in one destination commit for every stream it names, an entry with no cursor
(``{"reset_at": ...}``): the sync engine reads a stream whose entry has no cursor as on its first
sync, from the beginning (``start_date``), and swaps the re-read rows in for the table's. The
tables are not touched until that sync.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from kpihub.cli._context import project, registry
from kpihub.cli.streams import list_sources
from kpihub.config import Project
from kpihub.destinations.base import DestinationSession
from kpihub.errors import KpihubError, UnknownNameError
from kpihub.plugins import Registry
from kpihub.state import state_key

_destination = click.option(
    "--destination", "-d", help="Destination whose state to use (overrides [project] destination)."
)


@click.group("state", invoke_without_command=True)
@_destination
@click.pass_context
def command(ctx: click.Context, destination: str | None) -> None:
    """Print each stream's committed state as JSON (the same as `kpihub state show`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show, destination=destination)


@command.command("show")
@click.argument("name", required=False, metavar="[SOURCE[.STREAM]]")
@_destination
@click.pass_context
def show(ctx: click.Context, name: str | None = None, destination: str | None = None) -> None:
    """Print each stream's committed state (or SOURCE's, or one stream's) as JSON."""
    proj, reg = project(ctx), registry(ctx)
    with _open(proj, reg, destination, read_only=True) as session:
        state = session.all_state()
    if name is not None:
        state = {k: state[k] for k in resolve(name, proj, reg, state) if k in state}
    click.echo(json.dumps(state, indent=2, sort_keys=True))


@command.command("reset")
@click.argument("name", metavar="SOURCE[.STREAM]")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal).")
@_destination
@click.pass_context
def reset(ctx: click.Context, name: str, yes: bool, destination: str | None) -> None:
    """Forget the committed cursor of SOURCE's streams (or of one stream): the next sync re-reads them
    from the beginning and replaces their rows."""
    proj, reg = project(ctx), registry(ctx)
    with _open(proj, reg, destination, read_only=False) as session:
        state = session.all_state()
        keys = [k for k in resolve(name, proj, reg, state) if k in state]
        if not keys:
            click.echo(f"{name}: no committed state to reset (its next sync reads from the beginning already)")
            return
        listed = ", ".join(keys)
        if not yes:
            if not interactive():
                raise KpihubError(f"not resetting {listed} without confirmation: run with --yes (not a terminal)")
            click.confirm(
                f"Reset {listed}? The next sync re-reads {'it' if len(keys) == 1 else 'them'} in full", abort=True
            )
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        # One commit for every key: a reset of a whole source is all or nothing.
        session.commit([], {key: {"reset_at": now} for key in keys})
    click.echo(f"reset {listed}: the next kpihub sync re-reads {'it' if len(keys) == 1 else 'them'} from the beginning")


def interactive() -> bool:
    """Whether a confirmation can be asked (stdin is a terminal)."""
    return sys.stdin.isatty()


def resolve(name: str, proj: Project, reg: Registry, state: dict[str, Any]) -> list[str]:
    """The state keys ``SOURCE`` or ``SOURCE.STREAM`` names: a source's listed streams and whatever the
    state holds under it.

    :raises UnknownNameError: no such source (naming the known ones), or no such stream of it.
    """
    streams: dict[str, list[str]] = {}
    for s in list_sources(proj, reg):
        streams.setdefault(s.source, []).extend(state_key(s.source, i.name) for i in s.streams)
    for key in state:
        streams.setdefault(key.partition(".")[0], []).append(key)
    if name in state:
        return [name]
    source, _, stream = name.partition(".")
    if source not in streams:
        known = ", ".join(sorted(streams)) or "none"
        raise UnknownNameError(f"unknown source {source!r} (known: {known})")
    keys = list(dict.fromkeys(streams[source]))
    if not stream:
        return keys
    if name not in keys:
        names = ", ".join(sorted({k.partition(".")[2] for k in streams[source]})) or "none"
        raise UnknownNameError(f"source {source!r} has no stream {stream!r} (streams: {names})")
    return [name]


def _open(proj: Project, reg: Registry, destination: str | None, *, read_only: bool) -> DestinationSession:
    uri = destination or proj.settings.destination
    return reg.destination_for(uri).open(uri, root=proj.root, read_only=read_only)
