"""The command group: options every command shares, logging, one-line errors."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click
from rich.console import Console

from kpihub import __version__
from kpihub.cli.events import EventSink, SinkHandler
from kpihub.cli.render import HumanRenderer, JsonLineWriter, JsonRenderer, console_for, plain_stream
from kpihub.errors import KpihubError
from kpihub.secrets import redact

#: Exit codes (``kpihub --help`` and docs/cli.md list them): 1 a user-facing error, a failed,
#: ``incomplete`` or ``mismatch`` stream or a source that could not start, 2 bad usage (click),
#: 3 stopped on request (Ctrl-C / SIGTERM: what was read is committed with its state), 4 `kpihub kpis`
#: printed its scorecard but refused one or more KPIs for the data (reason in each row), 130 interrupted
#: (a second Ctrl-C: the summary says what was committed).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_REFUSED = 4
#: ``kpihub sync``: a quota that will not come back within the run (a daily cap); what was read is committed.
EXIT_QUOTA = 5
EXIT_INTERRUPTED = 130

EPILOG = """\b
Exit codes:
  0    ok: every stream synced
  1    error: config, credentials, a failed, incomplete or mismatch stream,
       a source that could not start (the others still sync)
  2    bad command-line usage
  3    stopped on request (Ctrl-C, SIGTERM); what was read is committed
  4    kpihub kpis: the scorecard is printed, some KPIs were refused
  5    kpihub sync: a quota that does not come back within the run
  130  interrupted (a second Ctrl-C); the summary lists what was committed

Not a terminal (or CI set, or TERM=dumb): plain lines, no colour, no
progress bars. See docs/cli.md.
"""


#: Sub-command → its module, imported only when that command runs (a cron `kpihub sync` does not pay
#: for sqlglot, numpy or the CLV models).
COMMANDS = {
    name: f"kpihub.cli.{name}"
    for name in (
        *("plugins", "init", "new", "sync", "plan", "check", "kpis", "cohorts", "clv", "demo", "state"),
        *("doctor", "report", "streams"),
    )
}


class KpihubGroup(click.Group):
    """Turns every kpihub error into one redacted line on stderr (a JSON ``error`` event under
    ``--log-format json``) and a non-zero exit.

    Sub-commands load lazily (click's documented LazyGroup pattern).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import importlib

            self.add_command(importlib.import_module(COMMANDS[cmd_name]).command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.exceptions.Abort) as exc:
            if not isinstance(sink_of(ctx).renderer, JsonRenderer):
                raise  # click prints usage errors itself
            # click would print them as text after the JSON lines; keep stderr JSON only.
            message = exc.format_message() if isinstance(exc, click.ClickException) else "Aborted!"
            code = exc.exit_code if isinstance(exc, click.ClickException) else EXIT_ERROR
            sink_of(ctx).error(redact(message), exit_code=code)
            ctx.exit(code)
        except KeyboardInterrupt:
            sink_of(ctx).emit("interrupted", "Interrupted.", level=logging.ERROR, exit_code=EXIT_INTERRUPTED)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            debug = bool(ctx.meta.get("kpihub.debug"))
            extra = {"traceback": redact("".join(traceback.format_exception(exc)))} if debug else {}
            if isinstance(exc, KpihubError):
                sink_of(ctx).error(redact(exc), **extra)
            else:
                hint = "" if debug else " (run with --debug for the traceback)"
                sink_of(ctx).error(f"internal error: {type(exc).__name__}: {redact(exc)}{hint}", **extra)
            ctx.exit(EXIT_ERROR)


def sink_of(ctx: click.Context) -> EventSink:
    """The command's event sink (a plain one when the group's options never ran)."""
    root = ctx.find_root()
    sink = root.obj.get("events") if isinstance(root.obj, dict) else None
    if sink is None:
        sink = EventSink(HumanRenderer(console_for(None, stderr=False, plain=True), _err_console(), level=0))
    return sink


def _err_console() -> Console:
    return console_for(None, stderr=True, plain=plain_stream(sys.stderr))


def make_sink(log_format: str, verbose: int, debug: bool) -> tuple[EventSink, Console, Console]:
    """The event sink for ``--log-format`` and the stdout / stderr consoles commands print with."""
    if log_format == "json":
        level = logging.DEBUG if debug else logging.INFO
        # Tables a command prints on stdout are its output: plain, never drawn over by a live display.
        console = console_for(None, stderr=False, plain=True, width=160)
        sink = EventSink(JsonRenderer(sys.stdout, sys.stderr, level=level))
        # The stderr console writes through JsonLineWriter (installed by the group): one event a line.
        return sink, console, console_for(None, stderr=True, plain=True, width=100_000)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    plain_out = plain_stream(sys.stdout)
    # Not a terminal (CI logs, pipes): rich would assume 80 columns and squeeze tables.
    console = console_for(None, stderr=False, plain=plain_out, width=160 if plain_out else None)
    err = _err_console()
    return EventSink(HumanRenderer(console, err, level=level)), console, err


def setup_logging(sink: EventSink, verbose: int, debug: bool, *, json_lines: bool = False) -> None:
    """kpihub's log records (and httpx's request lines with ``--debug``) as events on ``sink``."""
    level = logging.DEBUG if debug else logging.INFO if verbose or json_lines else logging.WARNING
    handler = SinkHandler(sink)
    for name, lowest in (("kpihub", level), ("httpx", logging.INFO if debug else logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(lowest)
        logger.propagate = False


@click.group(cls=KpihubGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, prog_name="kpihub")
@click.option(
    "--project",
    "-p",
    "project",
    type=click.Path(dir_okay=False),
    envvar="KPIHUB_PROJECT",
    help="Project file (default: kpihub.toml here or in a parent directory).",
)
@click.option("-v", "--verbose", count=True, help="Log each stream's start, progress and end, and retries.")
@click.option("--debug", is_flag=True, help="Also HTTP requests, debug logs and tracebacks (secrets stay redacted).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="KPIHUB_LOG_FORMAT",
    show_default=True,
    help="text: tables and lines (plain when not a terminal); json: one JSON object per event and line "
    "(the sync summary on stdout, every other event on stderr).",
)
@click.pass_context
def cli(ctx: click.Context, project: str | None, verbose: int, debug: bool, log_format: str) -> None:
    """kpihub: sync marketing and business data into Arrow tables and score your KPIs."""
    ctx.ensure_object(dict)
    ctx.meta["kpihub.debug"] = debug
    ctx.obj["project"] = project
    sink, ctx.obj["console"], ctx.obj["err"] = make_sink(log_format, verbose, debug)
    ctx.obj["events"] = sink
    if log_format == "json":
        _stderr_as_events(ctx, sink)
    setup_logging(sink, verbose, debug, json_lines=log_format == "json")


def _stderr_as_events(ctx: click.Context, sink: EventSink) -> None:
    """Whatever else writes to stderr while the command runs becomes a JSON ``message`` event."""
    previous = sys.stderr
    writer = JsonLineWriter(sink)
    sys.stderr = writer

    def restore() -> None:
        writer.close()
        sys.stderr = previous

    ctx.call_on_close(restore)


def warn_plugin_errors(registry: Any, sink: EventSink) -> None:
    """One line per broken plugin; commands that do not need it go on."""
    for error in registry.errors:
        sink.warning(redact(error))


def main() -> None:
    cli(prog_name="kpihub")
