"""``kpihub clv``: fit the CLV models and score every customer."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import click
import pyarrow.compute as pc

from kpihub.cli._context import open_engine, project, registry
from kpihub.cli.output import TABLE_FORMATS, write_table
from kpihub.errors import ConfigError, KPIError
from kpihub.models import CLVFit, fit_clv


def clv_document(fit: CLVFit) -> dict[str, object]:
    """The fit as JSON: as-of day, both models' parameters and log-likelihoods (full precision), customers."""
    return {
        "as_of": fit.as_of.isoformat(),
        "bgnbd": asdict(fit.bgnbd),
        "gamma_gamma": asdict(fit.gamma_gamma),
        "customers": fit.customers.to_pylist(),
    }


def write_json(document: object, output: str | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.command("clv")
@click.option("--kpi", "kpi_id", default="clv", show_default=True, help="A model KPI (model = clv).")
@click.option("--as-of", "as_of", help="Last day of the data to fit on (YYYY-MM-DD; default: the last order's day).")
@click.option("--top", type=int, default=10, show_default=True, help="Customers to show in the terminal.")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write every customer to a file.")
@click.pass_context
def command(ctx: click.Context, kpi_id: str, as_of: str | None, top: int, fmt: str, output: str | None) -> None:
    """Fit BG/NBD + Gamma-Gamma on the purchases and predict P(alive), purchases and CLV per customer."""
    proj, reg = project(ctx), registry(ctx)
    kpi = reg.kpi(kpi_id)
    if kpi.kind != "model" or kpi.model != "clv":
        raise KPIError(f"KPI {kpi_id!r} is not a CLV model KPI")
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    with open_engine(proj, reg) as engine:
        if day is None:
            # "As of today" on data that ended years ago fits nonsense: the data's own last day.
            ends = engine.data_ends(engine.input_tables(kpi))
            day = max(ends.values()) if ends else dt.date.today() - dt.timedelta(days=1)
        fit = fit_clv(engine, kpi, as_of=day)
    console = ctx.obj["console"]
    customers = fit.customers
    if fmt == "json":
        write_json(clv_document(fit), output)
        return
    if fmt != "table":
        write_table(customers, fmt, output, console)
        return
    bg, gg = fit.bgnbd, fit.gamma_gamma
    total = pc.sum(customers["clv"]).as_py() or 0.0
    console.print(
        f"BG/NBD r={bg.r:.3f} α={bg.alpha:.3f} a={bg.a:.3f} b={bg.b:.3f} · Gamma-Gamma p={gg.p:.2f} q={gg.q:.2f} "
        f"γ={gg.v:.2f} · {len(customers):,} customers, total CLV {total:,.2f}, mean {total / len(customers):,.2f}"
    )
    if bg.at_bound or gg.at_bound:
        console.print("[yellow]A parameter ended on its search bound: the data carry little signal for it.[/]")
    order = pc.sort_indices(customers, sort_keys=[("clv", "descending")])
    best = customers.take(order).slice(0, top).select(["customer", "frequency", "p_alive", "expected_purchases", "clv"])

    def cell(column: str, value: object) -> str:
        return f"{value:,.2f}" if isinstance(value, float) else str(value)

    write_table(best, "table", None, console, title=f"Top {top} customers by CLV (as of {day})", cell=cell)
    if output:
        write_table(customers, "parquet" if output.endswith(".parquet") else "csv", output, console)
