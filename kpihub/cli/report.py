"""``kpihub report``: the scorecard with its charts as one HTML page (or a PNG, SVG or PDF)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kpihub.cli._context import open_engine, project, registry
from kpihub.cli.kpis import exit_if_refused, project_scorecard, project_targets
from kpihub.config import Project
from kpihub.errors import ConfigError
from kpihub.kpis.periods import GRAINS, Period
from kpihub.plugins import Registry
from kpihub.report.data import ReportData, gather_report
from kpihub.report.static import STATIC_FORMATS, static_bytes

FORMATS = ("html", *STATIC_FORMATS)


def write_report(
    proj: Project,
    reg: Registry,
    out: Path,
    *,
    fmt: str = "html",
    period: Period | None = None,
    grain: str = "month",
    targets_file: str | None = None,
    today: dt.date | None = None,
    only: list[str] | None = None,
    title: str = "KPI report",
) -> ReportData:
    """Build the scorecard and what the report shows around it, and write it to ``out`` as ``fmt``."""
    targets = project_targets(proj, reg, targets_file)  # a bad targets file is said before the destination
    with open_engine(proj, reg) as engine:
        card = project_scorecard(proj, reg, engine, targets, period=period, grain=grain, today=today, only=only)
        data = gather_report(engine, reg.kpis, card)
    if fmt == "html":
        from kpihub.report.html import render_html

        body = render_html(data, title=title).encode("utf-8")
    else:
        body = static_bytes(data, fmt, title=title)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(body)
    partial.replace(out)  # a cron job's reader never sees half a file
    return data


@click.command("report")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), help="File to write (default: report.<format>).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("--period", help="Period to score, e.g. 2024-05, 2024-Q2, 2024 (default: the data's last complete one).")
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True)
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False), help="Targets file (default: project's).")
@click.option("--as-of", "as_of", help="Score as if today were this day (YYYY-MM-DD).")
@click.option("--kpi", "only", multiple=True, help="Only this KPI (repeatable).")
@click.option("--title", default="KPI report", show_default=True, help="The report's heading.")
@click.pass_context
def command(
    ctx: click.Context,
    out: str | None,
    fmt: str,
    period: str | None,
    grain: str,
    targets_file: str | None,
    as_of: str | None,
    only: tuple[str, ...],
    title: str,
) -> None:
    """Write the scorecard, a chart per KPI with baseline and target, breakdowns, cohorts and CLV.

    The HTML page is one file that opens with no network (scripts and styles inlined); PNG, SVG and
    PDF are one static picture of the same content.
    """
    proj = project(ctx)
    reg = registry(ctx).for_project(proj)
    try:
        chosen = Period.parse(period) if period else None
        today = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    path = Path(out or f"report.{fmt}")
    if path.suffix.lstrip(".").lower() not in ("", fmt) and not (fmt == "html" and path.suffix.lower() == ".htm"):
        raise ConfigError(f"--out {path}: the file name says {path.suffix}, the format is {fmt}")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: directory {path.parent} does not exist")
    data = write_report(
        proj, reg, path, fmt=fmt, period=chosen, grain=grain, targets_file=targets_file, today=today,
        only=list(only) or None, title=title,
    )  # fmt: skip
    click.echo(f"Wrote {path} ({len(data.kpis)} KPIs, {', '.join(data.periods) or 'no period'})")
    exit_if_refused(ctx, data.scorecard)
