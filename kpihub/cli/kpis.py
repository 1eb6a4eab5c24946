"""``kpihub kpis``: the scorecard (actual vs baseline and target), the catalogue, the SQL."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import click
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from kpihub.cli._context import open_engine, project, registry
from kpihub.cli.main import EXIT_REFUSED
from kpihub.cli.output import write_table
from kpihub.config import Project
from kpihub.errors import ConfigError, KpihubError
from kpihub.kpis.catalog import catalog_markdown, catalog_rows, tables_read
from kpihub.kpis.compiler import DIALECTS, GrainError, compile_kpi, rfm_sql, transpile
from kpihub.kpis.engine import ENGINES, KPIEngine
from kpihub.kpis.periods import GRAINS, Period, periods_between
from kpihub.kpis.scorecard import Scorecard, build_scorecard, default_period
from kpihub.kpis.spec import KPI
from kpihub.kpis.targets import Target, load_targets
from kpihub.plugins import Registry
from kpihub.report.scorecard import FORMATS, data_quality_lines, format_value, render_scorecard, write_scorecard
from kpihub.secrets import first_line, redact


def compute_scorecard(
    proj: Project,
    reg: Registry,
    *,
    targets_file: str | Path | None = None,
    period: Period | None = None,
    periods: list[Period] | None = None,
    grain: str = "month",
    today: dt.date | None = None,
    only: list[str] | None = None,
    destination: str | None = None,
    engine: str = "duckdb",
) -> Scorecard:
    """Open the project's destination read-only and build its scorecard (on ``engine``)."""
    targets = project_targets(proj, reg, targets_file)  # a bad targets file is said before the destination
    with open_engine(proj, reg, destination, engine) as kpi_engine:
        return project_scorecard(
            proj, reg, kpi_engine, targets, period=period, periods=periods, grain=grain, today=today, only=only
        )


def project_scorecard(
    proj: Project,
    reg: Registry,
    kpi_engine: KPIEngine,
    targets: Sequence[Target],
    *,
    period: Period | None = None,
    periods: list[Period] | None = None,
    grain: str = "month",
    today: dt.date | None = None,
    only: list[str] | None = None,
) -> Scorecard:
    """The project's scorecard on an open ``kpi_engine`` against ``targets`` (:func:`project_targets`)."""
    return build_scorecard(
        kpi_engine,
        reg.kpis,
        targets=targets,
        period=period,
        periods=periods,
        grain=grain,  # type: ignore[arg-type]
        today=today,
        only=only,
        stream_tables=stream_tables(proj, reg),
    )


def exit_if_refused(ctx: click.Context, card: Scorecard) -> None:
    """The scorecard is out and complete but for its refused rows: say so, and exit non-zero for scripts."""
    if not card.refused:
        return
    ids = ", ".join(r.kpi for r in card.refused)
    n = len(card.refused)
    ctx.obj["err"].print(
        f"Warning: {n} KPI{'s' if n > 1 else ''} refused: {ids} (the reason is in each row's notes)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    ctx.exit(EXIT_REFUSED)


def project_targets(proj: Project, reg: Registry, targets_file: str | Path | None = None) -> list[Target]:
    """The targets of ``targets_file`` or the project's ``targets`` setting (none when neither is set)."""
    file = targets_file or proj.settings.targets
    return load_targets(proj.resolve(str(file)), reg.kpis) if file else []


def stream_tables(proj: Project, reg: Registry) -> dict[str, list[str]]:
    """``<source_id>.<stream>`` → the canonical table it feeds, from each configured connector's streams.

    Used where a stream's sync state does not name its table. A source whose settings do not
    validate here (a token not in this environment) is skipped: its streams stay unmapped.
    """
    tables: dict[str, list[str]] = {}
    for source_id in proj.sources:
        try:
            source = reg.project_source(proj, source_id)
            streams = source.streams(proj.source_settings(source_id, source.settings_class))
        except KpihubError:
            continue
        for stream in streams:
            if stream.canonical_table:
                tables[f"{source_id}.{stream.name}"] = [stream.canonical_table]
    return tables


def render_data_quality(card: Scorecard, console: Console) -> None:
    """The data-quality line: each stream whose last sync was not ok, its notes, the KPIs it feeds."""
    lines = data_quality_lines(card)
    if not lines:
        return
    console.print("[bold]Data quality[/bold] (streams whose last sync was not ok)", soft_wrap=True)
    for line in lines:
        console.print(f"• {line}", markup=False, highlight=False, soft_wrap=True)


@click.command("kpis")
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False), help="Targets file (TOML or CSV).")
@click.option(
    "--period", help="Period to score: 2026, 2026-Q2, 2026-06, 2026-W23 (default: the data's last complete --grain)."
)
@click.option("--from", "first", help="A series: every --grain period from this one (2024-01) ...")
@click.option("--to", "last", help="... to this one (2024-12), both included.")
@click.option("--all", "whole", is_flag=True, help="A series over the whole history of the data.")
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True)
@click.option("--kpi", "only", multiple=True, help="Only this KPI (repeatable).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Scorecard: table, markdown, json, csv, parquet. --list: table, json, csv, markdown.",
)
@click.option(
    "--all-rows",
    is_flag=True,
    help="Table and markdown: show the KPIs without data as rows too (JSON, CSV, Parquet always have every row).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option("--as-of", "as_of", help="Judge the period as of this date (YYYY-MM-DD; default today).")
@click.option("--list", "list_only", is_flag=True, help="List the KPI catalogue by funnel stage.")
@click.option("--show-sql", is_flag=True, help="Print each KPI's SQL instead of computing it.")
@click.option("--dialect", type=click.Choice(DIALECTS), default="duckdb", show_default=True)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="duckdb",
    show_default=True,
    help="Where the KPI SQL runs: embedded DuckDB, the PostgreSQL destination itself, or local Spark over Parquet.",
)
@click.option("--by", help="Break --kpi values down by a dimension (channel, campaign, platform, pipeline) or column.")
@click.pass_context
def command(
    ctx: click.Context,
    targets_file: str | None,
    period: str | None,
    first: str | None,
    last: str | None,
    whole: bool,
    grain: str,
    only: tuple[str, ...],
    fmt: str,
    output: str | None,
    as_of: str | None,
    list_only: bool,
    show_sql: bool,
    dialect: str,
    engine: str,
    by: str | None,
    all_rows: bool,
) -> None:
    """Score KPIs against their targets (default), list them, or show their SQL."""
    proj = project(ctx)
    reg = registry(ctx).for_project(proj)
    for kpi_id in only:
        reg.kpi(kpi_id)
    try:
        chosen = Period.parse(period) if period else None
        today = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    console = ctx.obj["console"]
    if list_only:
        _list_catalog(reg, console, fmt)
        return
    if show_sql:
        p = chosen or Period.containing(today or dt.date.today(), grain).previous()  # type: ignore[arg-type]
        _show_sql(proj, reg, p, list(only), dialect, by)
        return
    if by:
        kpi_ids = list(only) or sorted(reg.kpis)
        refused = _breakdown(proj, reg, console, chosen, grain, today, kpi_ids, by, fmt, output, engine)
        if refused:
            ctx.obj["err"].print(
                f"Warning: {len(refused)} KPI(s) refused: "
                + "; ".join(f"{kpi_id}: {reason}" for kpi_id, reason in refused),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            ctx.exit(EXIT_REFUSED)
        return
    periods = _series_periods(proj, reg, first, last, whole, grain, period)
    rows = compute_scorecard(
        proj,
        reg,
        targets_file=targets_file,
        period=chosen,
        periods=periods,
        grain=grain,
        today=today,
        only=list(only) or None,
        engine=engine,
    )
    # KPIs asked for by name are shown whatever their data.
    every = all_rows or bool(only)
    if fmt == "table":
        render_scorecard(rows, console, all_rows=every)
        render_data_quality(rows, console)
    else:
        write_scorecard(rows, fmt, output, sys.stdout, all_rows=every)
    _warn_past_the_data(rows, ctx.obj["err"])
    exit_if_refused(ctx, rows)


def _show_sql(proj: Project, reg: Registry, p: Period, only: list[str], dialect: str, by: str | None) -> None:
    """Print each KPI's SQL for period ``p``; a KPI not computable at that grain is a
    comment when listing all, an error when asked for by name."""
    for kpi_id in only or sorted(reg.kpis):
        kpi = reg.kpi(kpi_id)
        try:
            sql = _kpi_sql_text(proj, reg, kpi, p, dialect, by)
        except GrainError as exc:
            if only:
                raise
            click.echo(f"-- {kpi_id} ({dialect}): not at grain {p.grain}: {exc}\n")
            continue
        click.echo(f"-- {kpi_id} ({dialect})\n{sql};\n")


def _kpi_sql_text(proj: Project, reg: Registry, kpi: KPI, p: Period, dialect: str, by: str | None) -> str:
    if kpi.kind == "model":
        # The model is fitted in Python on this per-customer summary.
        return transpile(
            rfm_sql(kpi, as_of=p.end - dt.timedelta(days=1), timezone=proj.settings.timezone),
            dialect,
            pretty=True,
        )
    return compile_kpi(
        kpi,
        grain=p.grain,
        start=p.previous().start,
        end=p.end,
        timezone=proj.settings.timezone,
        dialect=dialect,
        pretty=True,
        catalog=reg.kpis,
        by=by,
    )


def _series_periods(
    proj: Project, reg: Registry, first: str | None, last: str | None, whole: bool, grain: str, period: str | None
) -> list[Period] | None:
    """The periods of ``--from``/``--to`` or ``--all`` (``None``: one period is scored)."""
    if not (first or last or whole):
        return None
    if period:
        raise ConfigError("give --period or a series (--from/--to, --all), not both")
    if whole and (first or last):
        raise ConfigError("give --all or --from/--to, not both")
    try:
        if whole:
            with open_engine(proj, reg) as engine:
                spans = engine.data_spans()
            if not spans:
                raise ConfigError("--all: there is no data yet (run kpihub sync)")
            start = Period.containing(min(s[0] for s in spans.values()), grain)  # type: ignore[arg-type]
            end = Period.containing(max(s[1] for s in spans.values()), grain)  # type: ignore[arg-type]
            return periods_between(start, end, grain)  # type: ignore[arg-type]
        if not (first and last):
            raise ConfigError("a series needs both --from and --to (or --all)")
        return periods_between(Period.parse(first), Period.parse(last), grain)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _warn_past_the_data(card: Scorecard, err: Console) -> None:
    """One warning when rows have no value because the data ends before their period."""
    past = [r for r in card if any(n.startswith(f"no data in {r.period}:") for n in r.notes)]
    if not past or card.data_end is None:
        return
    periods = sorted({r.period for r in past})
    shown = ", ".join(periods[:3]) + (f" and {len(periods) - 3} more" if len(periods) > 3 else "")
    err.print(
        f"Warning: {len(past)} row(s) have no data in {shown}: the data ends {card.data_end.isoformat()} "
        "(see each row's notes; choose --period or --from/--to)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _list_catalog(reg: Registry, console: Console, fmt: str) -> None:
    """The catalogue grouped by funnel stage (Reach, Engage, Act, Nurture, then unstaged)."""
    rows = catalog_rows(reg.kpis.values(), reg.sources)  # fed_by: the installed sources writing its tables
    if fmt in ("json", "csv"):
        write_table(pa.Table.from_pylist(rows), fmt, None, console)
    elif fmt == "markdown":
        click.echo(catalog_markdown(reg.kpis.values()), nl=False)
    elif fmt == "table":
        table = Table(header_style="bold")
        for col in ("KPI", "Title", "Unit", "Better", "Kind", "Computed from", "Fed by"):
            table.add_column(col)
        for i, row in enumerate(rows):
            if i == 0 or row["stage"] != rows[i - 1]["stage"]:
                if i:
                    table.add_section()
                table.add_row(f"[bold]{row['stage'] or 'Other'}[/]", "", "", "", "", "", "")
            cells = (row["kpi"], row["title"], row["unit"], row["direction"], row["kind"], row["computed_from"])
            table.add_row(*cells, row["fed_by"])
        console.print(table)
    else:
        raise ConfigError(f"--list writes table, json, csv or markdown, not {fmt}")


def _breakdown(
    proj: Project,
    reg: Registry,
    console: Console,
    chosen: Period | None,
    grain: str,
    today: dt.date | None,
    kpi_ids: list[str],
    by: str,
    fmt: str,
    output: str | None,
    engine_name: str = "duckdb",
) -> list[tuple[str, str]]:
    """Each KPI in ``chosen`` (default: the data's last complete period, as the scorecard's) per value
    of dimension ``by``; the KPIs refused, with their reasons.

    A KPI that cannot be computed for the data (money in two currencies …) does not hide the others.
    """
    rows = []
    refused: list[tuple[str, str]] = []
    kpis = [reg.kpi(kpi_id) for kpi_id in kpi_ids]
    with open_engine(proj, reg, engine=engine_name) as engine:
        # The tables these KPIs read: a social table synced to today says nothing of the ads' last month.
        tables = {t for k in kpis for t in tables_read(k, reg.kpis)}
        period = chosen or default_period(engine.data_ends(tables), grain, today or dt.date.today())  # type: ignore[arg-type]
        # One scan for the KPIs that aggregate the same rows (CTR, CPC, CPA, ROAS by campaign).
        done = engine.series_many(kpis, grain=period.grain, start=period.start, end=period.end, by=by)
        for kpi_id in kpi_ids:
            series = done[kpi_id]
            if isinstance(series, GrainError):
                continue  # not defined at this grain: nothing to show, nothing refused
            if isinstance(series, KpihubError):
                refused.append((kpi_id, redact(first_line(series))))
                continue
            for r in series.table.to_pylist():
                rows.append(
                    {"kpi": kpi_id, "period": period.label, by: r[by], "value": r["value"], "currency": series.currency}
                )
    if fmt in ("table", "markdown"):  # values formatted by unit; files keep raw numbers
        for r in rows:
            r["value"] = format_value(r.pop("value"), reg.kpi(r["kpi"]).unit, r.pop("currency"))
    table = pa.Table.from_pylist(rows) if rows else pa.table({"kpi": pa.array([], pa.string())})
    write_table(table, fmt, output, console, title=f"KPIs by {by}, {period.label}")
    return refused
