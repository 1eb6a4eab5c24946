"""``kpihub demo``: fake APIs on loopback -> sync -> DuckDB -> KPI scorecard. No credentials."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

import click

from kpihub.cli._context import registry
from kpihub.cli.progress import RichProgress, summary_table
from kpihub.cli.report import write_report
from kpihub.config import Project, ProjectSettings
from kpihub.errors import ConfigError
from kpihub.report.scorecard import render_scorecard
from kpihub.secrets import redact
from kpihub.source import DemoSpec
from kpihub.sync import Pipeline
from kpihub.testing.business import DEMO_BUSINESS

DEMO_TOML = """\
# Written by `kpihub demo`. The demo's fake API servers stop when the demo ends,
# so this project can score KPIs (kpihub kpis) but not sync again.
[project]
destination = "{destination}"
timezone = "{timezone}"
targets = "targets.toml"
vat_rate = {vat_rate}
gross_margin = {gross_margin}
"""


def _targets_toml(rows: list[dict[str, Any]]) -> str:
    out = ["# Sample targets for the demo business (written by `kpihub demo`).\n"]
    for row in rows:
        out.append("[[target]]")
        for key, value in row.items():
            out.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
        out.append("")
    return "\n".join(out).replace("'", '"')


def _project_values() -> dict[str, Any]:
    """The demo business's time zone, VAT rate and gross margin, as ``[project]`` takes them."""
    b = DEMO_BUSINESS
    return {"timezone": b.time_zone, "vat_rate": b.vat_rate, "gross_margin": b.gross_margin}


def _settings(spec: DemoSpec, data_dir: Path) -> dict[str, Any]:
    """A demo source's settings with ``{base_url}`` (token endpoints live on the fake too) and ``{demo_dir}``."""
    url = spec.server.url if spec.server else ""
    values = {
        k: v.format(base_url=url, demo_dir=data_dir) if isinstance(v, str) else v for k, v in spec.settings.items()
    }
    return {**values, "base_url": url} if spec.server else values


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="kpihub-demo",
    show_default=True,
    help="Where the demo project and its DuckDB file go.",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 50),
    default=1,
    show_default=True,
    help="Multiply the demo data (30,000 HubSpot contacts per unit).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--destination",
    default="duckdb:///kpihub.duckdb",
    show_default=True,
    help="Where the demo syncs to (relative paths inside --dir): postgresql://…, sqlite:///…, parquet:///….",
)
@click.pass_context
def command(ctx: click.Context, directory: str, scale: int, seed: int, destination: str) -> None:
    """Run the embedded demo: fake APIs on 127.0.0.1 and sample files, sync to DuckDB, print the scorecard."""
    reg = registry(ctx)
    console = ctx.obj["console"]
    specs: dict[str, DemoSpec] = {}
    for name, source in sorted(reg.sources.items()):
        spec = source.demo(seed=seed, scale=scale)
        if spec is not None:
            specs[name] = spec
    if not specs:
        raise ConfigError("no installed source plugin offers a demo (pip install ./plugins/kpihub-hubspot)")
    root = Path(directory)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "kpihub.toml").write_text(DEMO_TOML.format(destination=destination, **_project_values()), encoding="utf-8")
    targets = [t for spec in specs.values() for t in spec.targets]
    (root / "targets.toml").write_text(_targets_toml(targets), encoding="utf-8")
    started = time.monotonic()
    data_dir = (root / "data").resolve()
    for spec in specs.values():
        for name, text in spec.files.items():
            data_dir.mkdir(exist_ok=True)
            (data_dir / name).write_text(text, encoding="utf-8")
    servers = [spec.server for spec in specs.values() if spec.server is not None]
    for server in servers:
        server.start()
    try:
        sources = {name: _settings(spec, data_dir) for name, spec in specs.items()}
        apis = ", ".join(name for name, spec in specs.items() if spec.server)
        files = ", ".join(name for name, spec in specs.items() if spec.files)
        console.print(
            f"[bold]kpihub demo[/bold]: fake {apis} API on 127.0.0.1"
            + (f" and {files} from {root}/data" if files else "")
            + f" → {redact(destination)}"
        )
        settings = ProjectSettings(destination=destination, targets="targets.toml", **_project_values())
        project = Project(path=root.resolve() / "kpihub.toml", settings=settings, sources=sources)
        reg = reg.for_project(project)  # the demo business's VAT rate and gross margin
        pipeline = Pipeline(project, registry=reg)
        with RichProgress(console) as progress:
            result = pipeline.sync(progress=progress)
    finally:
        for server in servers:
            server.stop()
    console.print(summary_table(result.streams))
    result.raise_for_errors()
    report = root.resolve() / "report.html"
    rows = write_report(project, reg, report, today=dt.date.today(), title="KPI report (demo business)").scorecard
    render_scorecard(rows, console, title="KPI scorecard (demo business, targets from targets.toml)")
    console.print(
        f"\nSynced {result.records:,} records and scored {len(rows)} KPIs in {time.monotonic() - started:.1f}s. "
        f"Report with charts: [bold]{report}[/bold]\n"
        f"Explore: [bold]kpihub -p {root}/kpihub.toml kpis --format json[/bold]"
        + (f" or open {root}/kpihub.duckdb in DuckDB." if destination.startswith("duckdb:") else ".")
    )
