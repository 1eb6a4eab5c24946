"""``kpihub cohorts``: a retention matrix by acquisition period."""

from __future__ import annotations

import datetime as dt

import click
import pyarrow as pa

from kpihub.cli._context import open_engine, project, registry
from kpihub.cli.output import TABLE_FORMATS, write_table
from kpihub.errors import ConfigError, KPIError
from kpihub.kpis.compiler import cohort_sql
from kpihub.kpis.periods import GRAINS, Period


@click.command("cohorts")
@click.option("--kpi", "kpi_id", default="customer_retention_m1", show_default=True, help="A cohort KPI.")
@click.option("--start", help="First cohort period (2025-01, 2025-Q1 …; default: 12 periods back).")
@click.option("--end", help="Last cohort period (default: the current one).")
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True)
@click.option("--ages", type=click.IntRange(1, 120), default=12, show_default=True, help="Periods after acquisition.")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.pass_context
def command(
    ctx: click.Context,
    kpi_id: str,
    start: str | None,
    end: str | None,
    grain: str,
    ages: int,
    fmt: str,
    output: str | None,
) -> None:
    """Retention by acquisition period: of each cohort, the share active N periods later.

    Cells not observed yet (their period starts after the last event) are empty, not 0.
    """
    proj, reg = project(ctx), registry(ctx)
    kpi = reg.kpi(kpi_id)
    if kpi.kind != "cohort":
        raise KPIError(f"KPI {kpi_id!r} is a {kpi.kind} KPI; cohorts need a cohort KPI (customer_retention_m1 …)")
    try:
        last = Period.parse(end) if end else Period.containing(dt.date.today(), grain)  # type: ignore[arg-type]
        first = Period.parse(start) if start else last.previous(11)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with open_engine(proj, reg) as engine:
        sql = cohort_sql(
            kpi, grain=first.grain, start=first.start, end=last.end, ages=range(ages + 1), timezone=engine.timezone
        )
        cells = engine.query(kpi, sql)
    if fmt != "table":
        write_table(cells, fmt, output, ctx.obj["console"])
        return
    # One row per cohort, one column per age: the familiar triangle.
    matrix: dict[dt.date, dict[str, object]] = {}
    for cell in cells.to_pylist():
        row = matrix.setdefault(cell["cohort"], {"cohort": Period(cell["cohort"], first.grain).label})
        row["customers"] = cell["customers"]
        value = cell["retention"]
        row[f"+{cell['age']}"] = "" if value is None else f"{value * 100:.0f} %"
    write_table(pa.Table.from_pylist(list(matrix.values())), fmt, output, ctx.obj["console"], title=kpi.title)
