"""``kpihub plan``: per source and stream, what the next sync reads, the requests and quota it
spends and how long the budget makes it take, worked out from the project and the state alone."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import click
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from kpihub.cli._context import project, registry
from kpihub.cli.output import write_table
from kpihub.config import Project
from kpihub.errors import DestinationError
from kpihub.plan import Plan, make_plan
from kpihub.plugins import Registry
from kpihub.secrets import redact


@click.command("plan")
@click.argument("sources", nargs=-1)
@click.option("--streams", help="Comma-separated streams to plan (name or source.name), as for sync.")
@click.option("--full-refresh", is_flag=True, help="Plan a sync that ignores the saved cursors.")
@click.option("--destination", "-d", help="Destination whose state to read (overrides [project] destination).")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.pass_context
def command(
    ctx: click.Context,
    sources: tuple[str, ...],
    streams: str | None,
    full_refresh: bool,
    destination: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Show what `kpihub sync SOURCES` would read and spend, without sending a request."""
    proj, reg = project(ctx), registry(ctx)
    state, why = read_state(proj, reg, destination)
    wanted = [s.strip() for s in streams.split(",") if s.strip()] if streams else None
    plan = make_plan(proj, reg, state, sources=list(sources) or None, streams=wanted, full_refresh=full_refresh)
    if why is not None:
        ctx.obj["err"].print(
            f"[yellow]Note:[/yellow] no state read ({why}): every stream is planned as a first sync",
            soft_wrap=True,
        )
    if fmt == "json":
        write_table(pa.Table.from_pylist(plan.rows()), "json", output, ctx.obj["console"])
        return
    console = ctx.obj["console"]
    if output is None:
        print_plan(plan, console)
        return
    with open(output, "w", encoding="utf-8") as out:
        print_plan(plan, Console(file=out, width=160, highlight=False))


def print_plan(plan: Plan, console: Console) -> None:
    """The plan as a table, one section per source, then how each stream's numbers were worked out."""
    table = Table(
        header_style="bold", title="kpihub plan: the next sync, from the state (no request sent)", title_justify="left"
    )
    rows = display_rows(plan)
    for name in rows[0] if rows else ():
        table.add_column(name, no_wrap=name != "quota", justify="right" if name in ("records", "requests") else "left")
    for row in rows:
        table.add_row(*row.values(), end_section=row["stream"] == "(all streams)")
    console.print(table)
    for row in plan.rows():
        if row["stream"] is not None and row["basis"]:
            console.print(f"  {row['source']}.{row['stream']}: {row['basis']}", soft_wrap=True, markup=False)


def read_state(proj: Project, reg: Registry, destination: str | None) -> tuple[dict[str, Any], str | None]:
    """Every stream's committed state, read-only; ``({}, why)`` when there is none to read yet."""
    uri = destination or proj.settings.destination
    dest = reg.destination_for(uri)  # an unknown scheme is a project error, not "no state"
    try:
        with dest.open(uri, root=proj.root, read_only=True) as session:
            return session.all_state(), None
    except DestinationError as exc:  # no sync yet (no file), or one holds it: said on stderr
        return {}, redact(str(exc))


def display_rows(plan: Plan) -> list[dict[str, str]]:
    """The plan's rows as the terminal table shows them."""
    out = []
    for row in plan.rows():
        total = row["stream"] is None
        out.append(
            {
                "source": row["source"],
                "stream": "(all streams)" if total else row["stream"],
                "mode": row["mode"] or "",
                "reads": "" if total else _window(row),
                "records": "?" if row["records"] is None else f"~{row['records']:,}",
                "requests": f"≥{row['requests']:,}" if row["requests_at_least"] else f"{row['requests']:,}",
                "quota": _quota(row["quota"]),
                "budget time": _time(row),
            }
        )
    return out


def _window(row: Mapping[str, Any]) -> str:
    if row["since"] is None:
        return "all" if row["mode"] == "full" else "—"
    return f"{cursor_text(row['since'])} → {row['until'] or 'now'}"


def cursor_text(value: str) -> str:
    """A timestamp cursor to the second (enough to read); anything else as it is."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) <= 10:  # a date
        return value
    return f"{when.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if when.tzinfo else f"{when:%Y-%m-%d %H:%M:%S}"


def _quota(spent: Sequence[Mapping[str, Any]]) -> str:
    """``search 150 of 5/s``, a line per limit; a limit with several windows (one per account or
    property) shows its fullest."""
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for x in spent:
        by[x["limit"]].append(x)
    parts = []
    for name, windows in by.items():
        top = max(windows, key=lambda x: x["units"])
        size = "?" if top["limit_size"] is None else _compact(top["limit_size"])
        each = f" ×{len(windows)}" if len(windows) > 1 else ""
        parts.append(f"{name} {top['units']:,.0f}{each} of {size}/{_period(top['per_seconds'])}")
    return "\n".join(parts) or "none declared"


def _time(row: Mapping[str, Any]) -> str:
    if row["runs"] > 1:
        over = max(row["quota"], key=lambda x: x["runs"])
        cap = f"{_compact(over['limit_size'])}/{_period(over['per_seconds'])}"
        return f"~{row['runs']} runs: exceeds {over['limit']} {cap}"
    if row["budget_seconds"] is None:
        return "unknown limit size"
    if not row["quota"]:
        return "—"
    seconds = row["budget_seconds"]
    return "no wait" if seconds == 0 else "<1s" if seconds < 1 else f"≥{_duration(seconds)}"


def _compact(n: float) -> str:
    """40,000 as ``40k``, 1,000,000 as ``1M``: limit sizes, read at a glance."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= size and n % (size / 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,.0f}"


def _period(seconds: float) -> str:
    units = {1.0: "s", 60.0: "min", 3600.0: "h", 86_400.0: "day"}
    return units.get(seconds, f"{seconds:g}s")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
