"""``kpihub init``: write a commented kpihub.toml and the targets.toml it reads."""

from __future__ import annotations

from pathlib import Path

import click

TEMPLATE = """\
# kpihub project file. Every setting can also come from the environment:
# KPIHUB_<FIELD> for [project], KPIHUB_<SOURCE>_<FIELD> for a source
# (keep secrets there, e.g. KPIHUB_HUBSPOT_TOKEN=pat-...).

[project]
# Where synced tables and sync state go: a DuckDB file (the default) ...
destination = "duckdb:///kpihub.duckdb"
# ... or a directory of Parquet files:
# destination = "parquet:///data"

# KPI periods (days, weeks, months) are cut in this time zone.
timezone = "UTC"

# Targets for the scorecard (TOML with [[target]] tables, or CSV), relative
# to this file. Add yours to targets.toml; without any, every KPI is scored
# with no target.
targets = "targets.toml"

# One table per configured source; the table name is the source id.
# `type` defaults to the id, so two HubSpot portals could be
# [sources.hubspot_eu] type = "hubspot" and [sources.hubspot_us] type = "hubspot".
#
# [sources.hubspot]
# token = "..."                 # better: KPIHUB_HUBSPOT_TOKEN
# start_date = "2024-01-01"     # first sync reads from here
# base_url = "https://api.hubapi.com"
"""

TARGETS_TEMPLATE = """\
# KPI targets, read by `kpihub kpis` (kpihub.toml: targets = "targets.toml").
# Each: a KPI id (kpihub kpis --list), a period, a target and, optionally, the
# baseline you start from. Periods: 2026, 2026-Q3, 2026-07, 2026-W27,
# 2026-07-01. Percent KPIs in percent. Uncomment and edit:
#
# [[target]]
# kpi = "mqls"
# period = "2026-Q3"
# baseline = 480
# target = 550
"""


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.pass_context
def command(ctx: click.Context, force: bool, directory: str) -> None:
    """Write a commented kpihub.toml (and targets.toml) into DIRECTORY."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("kpihub.toml", TEMPLATE), ("targets.toml", TARGETS_TEMPLATE)):
        path = root / name
        if path.exists() and not force:
            raise click.ClickException(f"{path} already exists (use --force to overwrite)")
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
