"""Render a scorecard: a rich table or a GitHub-flavoured markdown table grouped by funnel stage, or a file.

The table and markdown are for people: KPIs with no value in any row (their tables not synced, no
rows in the period) fold into one summary line, and a note shared by several rows is said once.
JSON, CSV and Parquet are for programs: every row, every note.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpihub.errors import ConfigError
from kpihub.kpis.scorecard import NOT_TARGETED, Scorecard, ScorecardRow, scorecard_table

FORMATS = ("table", "json", "csv", "parquet", "markdown")
STATUS_STYLE = {"on track": "green", "at risk": "yellow", "off track": "red", "no data": "dim"}
COLUMNS = (
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
)
#: How many KPI titles a shared note names before "and N more".
SHOWN_TITLES = 4
_NOT_SYNCED = re.compile(r"table (\S+) not synced")


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
    if unit == "milliseconds":  # p75 LCP / INP: whole milliseconds
        return f"{value:,.0f} ms"
    if unit == "score":  # NPS: −100 … +100, never a percentage
        return f"{value:+.1f}" if value else "0.0"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def format_change(change: float | None, unit: str) -> str:
    """A row's change for people: ``+13.6 %``, or for a score ``-25.0 pts`` (see ScorecardRow.change)."""
    if change is None:
        return "—"
    return f"{change:+.1f} pts" if unit == "score" else f"{change * 100:+.1f} %"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.0f} %"


def _cells(row: ScorecardRow) -> list[str]:
    """The row's values as the table shows them, from ``Period`` to ``Status``."""
    return [
        row.period,
        format_value(row.actual, row.unit, row.currency),
        format_value(row.previous, row.unit, row.currency),
        format_change(row.change, row.unit),
        format_change(row.change_yoy, row.unit),
        format_value(row.baseline, row.unit, row.currency),
        format_value(row.target, row.unit, row.currency),
        _pct(row.attainment),
        row.status or "",
    ]


# -- what people see: rows with data, notes said once ---------------------------------------------


def without_data(rows: Sequence[ScorecardRow]) -> list[ScorecardRow]:
    """The rows of KPIs that have no value in any of their rows and no target: nothing to read in them.

    A refused or n/a row says why (it stays), a row with a target was asked for (it stays), and a KPI
    with a value in one period of a series keeps its empty periods (a gap is information).
    """
    empty: dict[str, bool] = {}
    for r in rows:
        blank = (
            r.actual is None
            and r.previous is None
            and r.last_year is None
            and r.target is None
            and r.status in ("", "no data", NOT_TARGETED)
        )
        empty[r.kpi] = empty.get(r.kpi, True) and blank
    return [r for r in rows if empty[r.kpi]]


def _grouped(rows: Sequence[ScorecardRow]) -> dict[str, list[str]]:
    """Each note → the titles of the rows that carry it (once each, in row order)."""
    by: dict[str, dict[str, None]] = {}
    for r in rows:
        for note in r.notes:
            by.setdefault(note, {})[r.title] = None
    return {note: list(titles) for note, titles in by.items()}


def note_lines(rows: Sequence[ScorecardRow]) -> list[str]:
    """``Title: note`` for a note of one KPI; ``note: Title, Title … (N KPIs)`` for a shared one."""
    out = []
    for note, titles in _grouped(rows).items():
        if len(titles) == 1:
            out.append(f"{titles[0]}: {note}")
            continue
        named = ", ".join(titles[:SHOWN_TITLES])
        more = f" and {len(titles) - SHOWN_TITLES} more" if len(titles) > SHOWN_TITLES else ""
        out.append(f"{note}: {named}{more} ({len(titles)} KPIs)")
    return out


def no_data_line(hidden: Sequence[ScorecardRow]) -> str | None:
    """``46 KPIs have no data: tables a, b not synced — …`` for the rows :func:`without_data` folds."""
    kpis = list(dict.fromkeys(r.kpi for r in hidden))
    if not kpis:
        return None
    tables, other = [], []
    for note, titles in _grouped(hidden).items():
        match = _NOT_SYNCED.fullmatch(note)
        if match:
            tables.append(match.group(1))
        else:
            other.append(f"{note} ({len(titles)})" if len(titles) > 1 else note)
    reasons = (
        [f"table{'s' if len(tables) > 1 else ''} {', '.join(sorted(tables))} not synced"] if tables else []
    ) + other
    silent = [k for k in kpis if not any(r.notes for r in hidden if r.kpi == k)]
    if silent:  # tables there, no rows in the period: a value would have been 0 or null
        reasons.append(f"{len(silent)} with no rows in the period{'s' if len({r.period for r in hidden}) > 1 else ''}")
    n = len(kpis)
    why = f": {'; '.join(reasons)}" if reasons else ""
    return (
        f"{n} KPI{'s' if n > 1 else ''} {'have' if n > 1 else 'has'} no data{why} "
        "— kpihub kpis --all-rows lists them, --kpi ID shows one"
    )


def _split(rows: Sequence[ScorecardRow], all_rows: bool) -> tuple[list[ScorecardRow], list[ScorecardRow]]:
    hidden = [] if all_rows else without_data(rows)
    gone = {id(r) for r in hidden}
    return [r for r in rows if id(r) not in gone], hidden


def data_quality_lines(card: Sequence[ScorecardRow]) -> list[str]:
    """Each stream whose last sync was not ok, its notes and the KPIs of ``card`` it feeds."""
    if not isinstance(card, Scorecard):
        return []
    lines = []
    for q in card.data_quality:
        if q.tables:
            titles = ", ".join(dict.fromkeys(r.title for r in card.affected(q))) or "no KPI on this scorecard"
            feeds = f"feeds {', '.join(q.tables)}: {titles}"
        else:
            feeds = "feeds an unknown table"
        lines.append(f"{q.describe()} ({feeds})")
    return lines


# -- the terminal table ----------------------------------------------------------------------------


def render_scorecard(
    rows: Sequence[ScorecardRow], console: Console, *, title: str = "KPI scorecard", all_rows: bool = False
) -> None:
    """The scorecard table, then its notes; ``all_rows`` keeps the KPIs without data as rows."""
    shown, hidden = _split(rows, all_rows)
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    stage = object()
    for row in shown:
        label = ""
        if row.stage != stage:
            if table.row_count:
                table.add_section()
            label = row.stage or ""
        stage = row.stage
        *values, status = (escape(c) for c in _cells(row))
        style = STATUS_STYLE.get(row.status or "", "")
        table.add_row(label, escape(row.title), *values, f"[{style}]{status}[/{style}]" if style else status)
    console.print(table)
    summary = no_data_line(hidden)
    for line in [*note_lines(shown), *([summary] if summary else [])]:
        console.print(f"[dim]• {escape(line)}[/dim]", soft_wrap=True)


# -- markdown ----------------------------------------------------------------------------------------


def scorecard_markdown(rows: Sequence[ScorecardRow], *, title: str = "KPI scorecard", all_rows: bool = False) -> str:
    """The scorecard as GitHub-flavoured markdown: a table per funnel stage (the KPIs without a target
    of their own under ``<stage> — not targeted``), status as text, then the notes and data quality as lists."""
    shown, hidden = _split(rows, all_rows)
    out = [f"## {title}", ""]
    header = markdown_row([name for name, _ in COLUMNS[1:]])
    rule = "| " + " | ".join("---:" if justify == "right" else "---" for _, justify in COLUMNS[1:]) + " |"
    for label, group in _stage_groups(shown):
        out += [f"### {label}", "", header, rule]
        out += [markdown_row([row.title, *_cells(row)]) for row in group]
        out.append("")
    if not shown:
        out += ["No KPI has data to show.", ""]
    summary = no_data_line(hidden)
    notes = [*note_lines(shown), *([summary] if summary else [])]
    if notes:
        out += ["**Notes**", "", *(f"- {markdown_text(n)}" for n in notes), ""]
    quality = data_quality_lines(rows)
    if quality:
        out += [
            "**Data quality** (streams whose last sync was not ok)",
            "",
            *(f"- {markdown_text(q)}" for q in quality),
            "",
        ]
    return "\n".join(out[:-1]) + "\n"


def _stage_groups(rows: Sequence[ScorecardRow]) -> Iterator[tuple[str, list[ScorecardRow]]]:
    """Consecutive rows of one stage (rows come sorted by stage, the not-targeted ones after)."""
    label, group = "", list[ScorecardRow]()
    for row in rows:
        this = (row.stage or "Other") + (" — not targeted" if row.status == NOT_TARGETED else "")
        if group and this != label:
            yield label, group
            group = []
        label = this
        group.append(row)
    if group:
        yield label, group


def markdown_text(text: str) -> str:
    """Text that cannot break a table row or turn into emphasis: ``|`` and ``*`` escaped, lines joined."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


# -- files -------------------------------------------------------------------------------------------


def write_scorecard(
    rows: Sequence[ScorecardRow], fmt: str, output: str | Path | None, out: IO[str], *, all_rows: bool = False
) -> None:
    """Write rows as ``json`` / ``csv`` / ``parquet`` (every row) or ``markdown`` (as people read it: see
    :func:`scorecard_markdown`) to ``output``, or ``out`` for the text formats."""
    if fmt == "json":
        text = json.dumps([r.as_dict() for r in rows], indent=2, default=str) + "\n"
    elif fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(scorecard_table(rows), buf)
        text = buf.getvalue().decode()
    elif fmt == "markdown":
        text = scorecard_markdown(rows, all_rows=all_rows)
    elif fmt == "parquet":
        if not output:
            raise ConfigError("--format parquet needs --output FILE")
        pq.write_table(scorecard_table(rows), str(output))
        return
    else:
        raise ConfigError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
