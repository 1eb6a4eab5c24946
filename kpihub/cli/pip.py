"""``kpihub plugins install|uninstall``: pip in the environment kpihub runs in.

As ``llm install`` does (simonw/llm ``cli.py``), so that a plugin lands where ``kpihub`` finds
it whatever ``pip`` is first on the PATH; here as ``sys.executable -m pip`` in a child process
whose exit code is kpihub's. Options pip knows and these do not name are passed on
(``--no-index``, ``--find-links DIR``, ``--index-url URL``).
"""

from __future__ import annotations

import subprocess
import sys

import click

PASS_THROUGH = {"ignore_unknown_options": True}


def run_pip(ctx: click.Context, args: list[str]) -> None:
    """Run ``python -m pip ARGS`` with this interpreter; exit with pip's code."""
    try:
        code = subprocess.call([sys.executable, "-m", "pip", *args])
    except OSError as exc:  # the interpreter itself cannot be started
        raise click.ClickException(f"cannot run {sys.executable} -m pip: {exc}") from None
    ctx.exit(code)


@click.command("install", context_settings=PASS_THROUGH)
@click.argument("packages", nargs=-1, type=click.UNPROCESSED)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest versions.")
@click.option("-e", "--editable", metavar="PATH", help="Install the project at PATH in editable mode.")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if already up to date.")
@click.option("--pre", is_flag=True, help="Include pre-release and development versions.")
@click.pass_context
def install(
    ctx: click.Context, packages: tuple[str, ...], upgrade: bool, editable: str | None, force_reinstall: bool, pre: bool
) -> None:
    """Install plugin distributions (e.g. kpihub-hubspot) into kpihub's environment with pip."""
    if not packages and not editable:
        raise click.UsageError("name a distribution to install (kpihub plugins install kpihub-hubspot) or -e PATH")
    args = ["install"]
    args += ["--upgrade"] if upgrade else []
    args += ["--editable", editable] if editable else []
    args += ["--force-reinstall"] if force_reinstall else []
    args += ["--pre"] if pre else []
    run_pip(ctx, [*args, *packages])


@click.command("uninstall", context_settings=PASS_THROUGH)
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def uninstall(ctx: click.Context, packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin distributions from kpihub's environment with pip."""
    run_pip(ctx, ["uninstall", *packages, *(["-y"] if yes else [])])
