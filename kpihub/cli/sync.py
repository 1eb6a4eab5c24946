"""``kpihub sync``: read sources into the destination.

Ctrl-C or SIGTERM stops it gracefully: running streams finish the page in hand and
commit what they read with its state, then the command exits with
:data:`~kpihub.cli.main.EXIT_STOPPED`. A second signal aborts at once (exit 130);
what was committed stays committed either way.

A stream stopped by a quota that will not come back within the run (a daily cap) commits
what it read the same way, ends with status ``quota``, and the command exits with
:data:`~kpihub.cli.main.EXIT_QUOTA` after saying when the quota resets.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import click

from kpihub.cli._context import project, registry
from kpihub.cli.main import EXIT_QUOTA, EXIT_STOPPED
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
    with graceful_stop() as stop, RichProgress(console) as progress:
        result = pipeline.sync(
            list(sources) or None, streams=wanted, full_refresh=full_refresh, progress=progress, stop=stop
        )
    console.print(summary_table(result.streams))
    for r in result.streams:
        if r.drift:
            ctx.obj["err"].print(f"[yellow]Note:[/yellow] {r.key}: {redact(r.drift)}", soft_wrap=True)
    failed = [r for r in result.streams if r.status not in ("ok", "stopped", "quota")]
    for r in failed:
        click.echo(f"Error: {r.key}: {redact(r.error)}", err=True)
    if failed:
        ctx.exit(1)
    quota = [r for r in result.streams if r.status == "quota"]
    for r in quota:
        click.echo(f"Quota: {r.key}: {redact(r.error)}", err=True)
    if quota:
        saved = sum(r.records for r in result.streams)
        resets = sorted({getattr(r.exception, "resets", "") or "reset time unknown" for r in quota})
        click.echo(
            f"Stopped on quota ({'; '.join(resets)}): {saved:,} records committed with their state; "
            "run `kpihub sync` again after the reset to continue.",
            err=True,
        )
        ctx.exit(EXIT_QUOTA)
    if result.stopped:
        saved = sum(r.records for r in result.streams)
        click.echo(
            f"Stopped: {saved:,} records committed with their state; run `kpihub sync` again to continue.", err=True
        )
        ctx.exit(EXIT_STOPPED)


@contextlib.contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM; the second raises ``KeyboardInterrupt``."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = signal.Signals(signum).name
        click.echo(f"{name}: stopping after the current page and saving state (again to abort now)", err=True)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
