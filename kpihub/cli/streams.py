"""``kpihub streams [SOURCE]``: each source's streams, how a sync reads them and the committed cursor.

Configured sources (``[sources.<id>]``) are listed with their own settings (a files source's streams
come from them) and the state of ``<id>.<stream>``; installed sources the project does not configure
follow with their streams as their defaults give them (state under their own name, as the demo writes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpihub.cli._context import project, registry
from kpihub.cli.plan import cursor_text, read_state
from kpihub.config import Project
from kpihub.describe import StreamInfo, describe_source, stream_info
from kpihub.errors import KpihubError, UnknownNameError
from kpihub.plugins import Registry
from kpihub.secrets import redact
from kpihub.state import state_key


@dataclass(frozen=True)
class SourceStreams:
    """One configured (or installed) source and its streams."""

    source: str
    type: str
    configured: bool
    streams: tuple[StreamInfo, ...]
    #: Why the streams are the defaults' (settings that do not validate here), or why there are none.
    note: str | None = None


@click.command("streams")
@click.argument("source", required=False)
@click.option("--destination", "-d", help="Destination whose state to read (overrides [project] destination).")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@click.pass_context
def command(ctx: click.Context, source: str | None, destination: str | None, fmt: str) -> None:
    """List each source's streams (or SOURCE's: a configured id or an installed source): sync mode,
    primary key, cursor field, canonical table and the committed cursor."""
    proj, reg = project(ctx), registry(ctx)
    # SOURCE: a configured id, or an installed source's name (then every source of that type).
    found = [s for s in list_sources(proj, reg) if source is None or source in (s.source, s.type)]
    if source is not None and not found:
        configured = ", ".join(proj.sources) or "none"
        installed = ", ".join(sorted(reg.sources)) or "none"
        raise UnknownNameError(f"unknown source {source!r} (configured: {configured}; installed: {installed})")
    state: dict[str, Any] = {}
    if proj.path is not None or destination:
        state, why = read_state(proj, reg, destination)
        if why is not None:
            ctx.obj["err"].print(f"Note: no state read ({why})", markup=False, highlight=False, soft_wrap=True)
    rows = stream_rows(found, state)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    print_streams(found, rows, ctx.obj["console"])


def list_sources(proj: Project, reg: Registry) -> list[SourceStreams]:
    """The project's configured sources, then every installed source it does not configure."""
    out = []
    for source_id in proj.sources:
        try:
            src = reg.project_source(proj, source_id)
        except UnknownNameError as exc:  # its plugin is not installed: said, the others listed
            out.append(SourceStreams(source_id, proj.source_type(source_id), True, (), redact(exc)))
            continue
        try:
            streams = src.streams(proj.source_settings(source_id, src.settings_class))
            out.append(SourceStreams(source_id, src.name, True, tuple(stream_info(s) for s in streams)))
        except KpihubError as exc:  # a secret not in this environment: the streams its defaults give
            described = _described(src)
            note = f"streams from the defaults: settings do not validate here ({redact(exc)})"
            out.append(SourceStreams(source_id, src.name, True, described, note))
    used = {proj.source_type(source_id) for source_id in proj.sources}
    for name in sorted(set(reg.sources) - used):
        defaults = _described(reg.sources[name])
        why = None if defaults else "streams come from its settings (configure it in kpihub.toml)"
        out.append(SourceStreams(name, name, False, defaults, why))
    return out


def _described(src: Any) -> tuple[StreamInfo, ...]:
    return tuple(StreamInfo(**{**s, "primary_key": tuple(s["primary_key"])}) for s in describe_source(src)["streams"])


def stream_rows(sources: list[SourceStreams], state: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stream (what ``--format json`` prints), with its committed state entry's cursor."""
    rows = [_row(s, info, state.get(state_key(s.source, info.name)) or {}) for s in sources for info in s.streams]
    listed = {r["state_key"] for r in rows}
    by_source = {s.source: s for s in sources}
    for key in sorted(k for k in state if k not in listed and k.partition(".")[0] in by_source):
        # A stream the source no longer lists (or lists only with its settings): its state is still there.
        s = by_source[key.partition(".")[0]]
        entry = state[key] if isinstance(state[key], dict) else {}
        unknown = StreamInfo(key.partition(".")[2], (), None, entry.get("canonical_table"), "?", "?")
        rows.append(_row(SourceStreams(s.source, s.type, s.configured, (), "in the state only"), unknown, entry))
    return rows


def _row(s: SourceStreams, info: StreamInfo, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": s.source,
        "type": s.type,
        "configured": s.configured,
        **asdict(info),
        "state_key": state_key(s.source, info.name),
        "cursor": entry.get("cursor"),
        "synced_at": entry.get("synced_at"),
        "status": entry.get("status"),
        "reset_at": entry.get("reset_at"),
        "note": s.note,
    }


def print_streams(sources: list[SourceStreams], rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(header_style="bold", title="kpihub streams", title_justify="left")
    for col in ("Source", "Stream", "Mode", "Primary key", "Cursor field", "Canonical table", "Committed cursor"):
        table.add_column(col, no_wrap=col in ("Source", "Stream", "Mode"))
    previous = None
    for row in rows:
        if previous is not None and row["source"] != previous:
            table.add_section()
        mode = "?" if row["sync_mode"] == "?" else f"{row['sync_mode']} ({row['write_mode']})"
        cells = (
            "" if row["source"] == previous else row["source"],
            row["name"],
            mode,
            ", ".join(row["primary_key"]) or "—",
            row["cursor_field"] or "—",
            row["canonical_table"] or "—",
            _cursor(row),
        )
        previous = row["source"]
        table.add_row(*(escape(str(c)) for c in cells))
    console.print(table)
    for s in sources:
        if s.note and (s.configured or not s.streams):
            console.print(f"• {s.source}: {s.note}", markup=False, highlight=False, soft_wrap=True)
    if any(r["sync_mode"] == "?" for r in rows):
        console.print("• Mode '?': a stream in the state the source does not list here", markup=False, soft_wrap=True)
    others = [s.source for s in sources if not s.configured and s.streams]
    if others:
        console.print(
            f"• Not in kpihub.toml (their defaults' streams; state under their own name): {', '.join(others)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _cursor(row: dict[str, Any]) -> str:
    if row["cursor"] is not None:
        return cursor_text(str(row["cursor"]))
    if row["reset_at"]:
        return f"— (reset {cursor_text(row['reset_at'])})"
    if row["sync_mode"] == "full":
        return "— (read in full)"
    if row["status"] is None:
        return "— (none yet: the next sync reads all)"
    return f"— (last sync {row['status']})"
