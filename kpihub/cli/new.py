"""``kpihub new source NAME``: scaffold a plugin distribution that passes its tests."""

from __future__ import annotations

from pathlib import Path

import click

from kpihub.scaffold import KINDS, Names, scaffold

NEXT_STEPS = {"source": "edit src/{package}/fake.py to speak your API, then source.py"}


@click.command("new")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Directory to create the distribution in.",
)
@click.pass_context
def command(ctx: click.Context, kind: str, name: str, parent: Path) -> None:
    """Scaffold a new plugin distribution: kpihub-NAME with its package, a fake or fixture, tests and a README.

    It installs and passes its tests as generated: pip install -e './kpihub-NAME[test]' && pytest kpihub-NAME
    """
    root, files = scaffold(kind, name, parent)
    console = ctx.obj["console"]
    console.print(f"Created {root} ({len(files)} files)", highlight=False, markup=False)
    package = Names.parse(name).mapping["package"]
    console.print(f"  pip install -e '{root}[test]' && pytest {root}", highlight=False, markup=False)
    console.print(f"  then {NEXT_STEPS[kind].format(package=package)}", highlight=False, markup=False)
