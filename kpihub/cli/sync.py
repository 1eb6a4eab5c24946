"""``kpihub sync``: read sources into the destination.

Ctrl-C or SIGTERM stops it gracefully: running streams finish the page in hand and
commit what they read with its state, then the command exits with
:data:`~kpihub.cli.main.EXIT_STOPPED`. A second signal makes it exit 130 instead; what
was committed stays committed either way, and the summary says what it was.

A stream stopped by a quota that will not come back within the run (a daily cap) commits
what it read the same way, ends with status ``quota``, and the command exits with
:data:`~kpihub.cli.main.EXIT_QUOTA` after saying when the quota resets.

Everything is reported through the command's event sink (:mod:`kpihub.cli.events`): a table
and lines for people, or JSON lines with ``--log-format json``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import click

from kpihub.cli._context import events, project, registry
from kpihub.cli.events import EventSink
from kpihub.cli.main import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_QUOTA, EXIT_STOPPED
from kpihub.cli.progress import NOT_FAILED, SyncReporter, stream_fields
from kpihub.sync import Pipeline, StreamResult


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
    started = time.monotonic()
    pipeline = Pipeline(project(ctx), destination=destination, registry=registry(ctx))
    wanted = [s.strip() for s in streams.split(",") if s.strip()] if streams else None
    sink = events(ctx)
    reporter = SyncReporter(sink)
    interrupted = False
    try:
        with graceful_stop(sink) as stop, sink.live():
            results = pipeline.sync(
                list(sources) or None, streams=wanted, full_refresh=full_refresh, progress=reporter, stop=stop
            ).streams
    except KeyboardInterrupt:
        # A second signal: the streams have finished their page and committed (the engine waits for
        # them), so what each committed is known; say it rather than a bare "Interrupted.".
        interrupted, results = True, reporter.results()
    code = report(sink, results, interrupted=interrupted, seconds=time.monotonic() - started)
    if code:
        ctx.exit(code)


def report(sink: EventSink, results: Sequence[StreamResult], *, interrupted: bool, seconds: float) -> int:
    """Notes, errors and the summary of a sync as events; the exit code."""
    for r in results:
        if r.drift:
            sink.emit("note", f"{r.key}: {r.drift}", level=logging.WARNING, stream=r.key)
    failed = [r for r in results if r.status not in (*NOT_FAILED, "interrupted")]
    for r in failed:
        fields = stream_fields(r)
        extra = {k: fields[k] for k in ("setting", "env") if k in fields}
        # A source that could not start has no stream: its error already names it.
        sink.error(
            f"{r.key}: {r.error}" if r.stream else str(r.error),
            stream=r.key,
            source=r.source_id,
            status=r.status,
            **extra,
        )
    quota = [r for r in results if r.status == "quota"]
    for r in quota:
        sink.emit("quota", f"Quota: {r.key}: {r.error}", level=logging.WARNING, stream=r.key)
    saved = sum(r.records for r in results)
    committed = f"{saved:,} records committed with their state"
    if interrupted:
        status, code = "interrupted", EXIT_INTERRUPTED
        message = f"Interrupted: {committed}; run `kpihub sync` again to continue."
    elif failed:
        status, code, message = "failed", EXIT_ERROR, ""
    elif quota:
        resets = sorted({getattr(r.exception, "resets", "") or "reset time unknown" for r in quota})
        status, code = "quota", EXIT_QUOTA
        message = (
            f"Stopped on quota ({'; '.join(resets)}): {committed}; run `kpihub sync` again after the reset to continue."
        )
    elif any(r.status == "stopped" for r in results):
        status, code = "stopped", EXIT_STOPPED
        message = f"Stopped: {committed}; run `kpihub sync` again to continue."
    else:
        status, code, message = "ok", 0, ""
    sink.emit(
        "summary",
        message,
        level=logging.ERROR if code == EXIT_ERROR else logging.INFO,
        status=status,
        exit_code=code,
        records=saved,
        seconds=round(seconds, 3),
        failed=[r.key for r in failed],
        streams=[stream_fields(r) for r in results],
    )
    return code


@contextlib.contextmanager
def graceful_stop(sink: EventSink) -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM; the next raises ``KeyboardInterrupt``."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sink.emit(
            "signal",
            f"{name}: stopping after the current page and saving state (again to abort now)",
            level=logging.WARNING,
            signal=name,
        )

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
