"""Render a scorecard: a rich table grouped by funnel stage, or a file."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from kpihub.errors import ConfigError
from kpihub.kpis.scorecard import ScorecardRow, scorecard_table

FORMATS = ("table", "json", "csv", "parquet")
STATUS_STYLE = {"on track": "green", "at risk": "yellow", "off track": "red", "no data": "dim"}


def format_value(value: float | None, unit: str, currency: str | None = None) -> str:
    """A KPI value for people: ``23.5 %``, ``12,345.00 EUR``, ``31.2 d``, ``1,204``."""
    if value is None:
        return "—"
    if unit == "percent":
        return f"{value * 100:.1f} %"
    if unit == "currency":
        return f"{value:,.2f}" + (f" {currency}" if currency else "")
    if unit in ("days", "hours", "months", "seconds"):
        return f"{value:.1f} {dict(days='d', hours='h', months='mo', seconds='s')[unit]}"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "score":  # NPS: −100 … +100, never a percentage
        return f"{value:+.1f}" if value else "0.0"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.0f} %"


def render_scorecard(rows: Sequence[ScorecardRow], console: Console, *, title: str = "KPI scorecard") -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in [
        ("Stage", "left"),
        ("KPI", "left"),
        ("Period", "left"),
        ("Actual", "right"),
        ("Prev.", "right"),
        ("Δ prev.", "right"),
        ("Δ last yr", "right"),
        ("Baseline", "right"),
        ("Target", "right"),
        ("Attain.", "right"),
        ("Status", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    stage = object()
    for row in rows:
        label = ""
        if row.stage != stage:
            if table.row_count:
                table.add_section()
            label = row.stage or ""
        stage = row.stage
        status = row.status or ""
        style = STATUS_STYLE.get(status, "")
        table.add_row(
            label or "",
            row.title,
            row.period,
            format_value(row.actual, row.unit, row.currency),
            format_value(row.previous, row.unit, row.currency),
            _pct(row.change, signed=True),
            _pct(row.change_yoy, signed=True),
            format_value(row.baseline, row.unit, row.currency),
            format_value(row.target, row.unit, row.currency),
            _pct(row.attainment),
            f"[{style}]{status}[/{style}]" if style else status,
        )
    console.print(table)
    notes = [(r.title, n) for r in rows for n in r.notes]
    for title, note in notes:
        console.print(f"[dim]• {title}: {note}[/dim]")


def write_scorecard(rows: Sequence[ScorecardRow], fmt: str, output: str | Path | None, out: IO[str]) -> None:
    """Write rows as ``json`` / ``csv`` / ``parquet`` to ``output`` (or ``out`` for text formats)."""
    table = scorecard_table(rows)
    if fmt == "json":
        text = json.dumps([r.as_dict() for r in rows], indent=2, default=str) + "\n"
    elif fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        text = buf.getvalue().decode()
    elif fmt == "parquet":
        if not output:
            raise ConfigError("--format parquet needs --output FILE")
        pq.write_table(table, str(output))
        return
    else:
        raise ConfigError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
