"""The command group: options every command shares, logging, one-line errors."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click
from rich.console import Console

from kpihub import __version__
from kpihub.errors import KpihubError
from kpihub.secrets import RedactingFilter, redact

#: Exit codes: 1 a user-facing error or failed stream, 2 bad usage (click), 3 stopped on request
#: (Ctrl-C / SIGTERM: what was read is committed with its state), 4 `kpihub kpis` printed its
#: scorecard but refused one or more KPIs for the data (reason in each row), 130 aborted (a second Ctrl-C).
EXIT_ERROR = 1
EXIT_STOPPED = 3
EXIT_REFUSED = 4
#: ``kpihub sync``: a quota that will not come back within the run (a daily cap); what was read is committed.
EXIT_QUOTA = 5
EXIT_INTERRUPTED = 130


#: Sub-command → its module, imported only when that command runs (a cron `kpihub sync` does not pay
#: for sqlglot, numpy or the CLV models).
COMMANDS = {
    name: f"kpihub.cli.{name}"
    for name in (
        *("plugins", "init", "new", "sync", "plan", "check", "kpis", "cohorts", "clv", "demo", "state"),
        "doctor",
    )
}


class KpihubGroup(click.Group):
    """Turns every kpihub error into one redacted line on stderr and a non-zero exit.

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
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            debug = bool(ctx.meta.get("kpihub.debug"))
            if debug:
                click.echo(redact("".join(traceback.format_exception(exc))), err=True)
            if isinstance(exc, KpihubError):
                click.echo(f"Error: {redact(exc)}", err=True)
            else:
                hint = "" if debug else " (run with --debug for the traceback)"
                click.echo(f"Error: internal error: {type(exc).__name__}: {redact(exc)}{hint}", err=True)
            ctx.exit(EXIT_ERROR)


def setup_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("kpihub")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=KpihubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kpihub")
@click.option(
    "--project",
    "-p",
    "project",
    type=click.Path(dir_okay=False),
    envvar="KPIHUB_PROJECT",
    help="Project file (default: kpihub.toml here or in a parent directory).",
)
@click.option("-v", "--verbose", count=True, help="Log retries and progress details.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (secrets stay redacted).")
@click.pass_context
def cli(ctx: click.Context, project: str | None, verbose: int, debug: bool) -> None:
    """kpihub: sync marketing and business data into Arrow tables and score your KPIs."""
    ctx.ensure_object(dict)
    ctx.meta["kpihub.debug"] = debug
    ctx.obj["project"] = project
    # Not a terminal (CI logs, pipes): rich would assume 80 columns and squeeze tables.
    width = None if sys.stdout.isatty() else 160
    ctx.obj["console"] = Console(stderr=False, highlight=False, width=width)
    ctx.obj["err"] = Console(stderr=True, highlight=False)
    setup_logging(verbose, debug)


def warn_plugin_errors(registry: Any, err: Console) -> None:
    """One line per broken plugin; commands that do not need it go on."""
    for error in registry.errors:
        err.print(f"[yellow]Warning:[/yellow] {redact(error)}", markup=True, highlight=False, soft_wrap=True)


def main() -> None:
    cli(prog_name="kpihub")
