"""``kpihub new source|kpi|destination NAME``: scaffold a plugin distribution that passes its tests."""

from __future__ import annotations

from pathlib import Path

import click

from kpihub.scaffold import KINDS, Names, scaffold

NEXT_STEPS = {
    "source": "edit src/{package}/fake.py to speak your API, then source.py",
    "kpi": "edit src/{package}/kpis.py, then the fixture and the values worked out by hand in tests/",
    "destination": "edit src/{package}/destination.py (and lines.py, the file format); the suite in tests/ stays",
}


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
    """Scaffold a new plugin distribution kpihub-NAME: its pyproject.toml with the entry point, the
    package, tests on kpihub's conformance suite for its kind, and a README.

    \b
    KIND is one of:
      source       a REST source with one stream into a canonical table, and a fake API to test it on
      kpi          a KPI pack with one ratio KPI and a fixture whose values were worked out by hand
      destination  a JSON-lines directory destination, committing tables and state atomically

    It installs and passes its tests as generated: pip install -e './kpihub-NAME[test]' && pytest kpihub-NAME
    """
    root, files = scaffold(kind, name, parent)
    console = ctx.obj["console"]
    console.print(f"Created {root} ({len(files)} files)", highlight=False, markup=False)
    package = Names.parse(name).mapping["package"]
    console.print(f"  pip install -e '{root}[test]' && pytest {root}", highlight=False, markup=False)
    console.print(f"  then {NEXT_STEPS[kind].format(package=package)}", highlight=False, markup=False)
