"""Writing a result table as a terminal table, markdown, JSON, CSV or Parquet: one way for every command."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from kpihub.errors import ConfigError

TABLE_FORMATS = ("table", "markdown", "json", "csv", "parquet")


def write_table(
    table: pa.Table,
    fmt: str,
    output: str | None,
    console: Console,
    *,
    title: str = "",
    cell: Callable[[str, object], str] = lambda _column, value: "—" if value is None else str(value),
) -> None:
    """``table`` to the terminal (``table``) or as ``markdown``/``json``/``csv``/``parquet`` to ``output`` or
    stdout; ``cell`` renders the terminal's and markdown's cells."""
    if fmt == "table":
        view = Table(header_style="bold", title=title or None, title_justify="left")
        for name in table.column_names:
            view.add_column(name, justify="left" if pa.types.is_string(table.schema.field(name).type) else "right")
        for row in table.to_pylist():
            view.add_row(*(cell(name, value) for name, value in row.items()))
        console.print(view)
        return
    if fmt == "parquet":
        if not output:
            raise ConfigError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        return
    if fmt == "markdown":
        data = _markdown(table, title, cell).encode()
    elif fmt == "json":
        data = json.dumps(table.to_pylist(), indent=2, ensure_ascii=False, default=str).encode() + b"\n"
    elif fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        data = buf.getvalue()
    else:
        raise ConfigError(f"unknown format {fmt!r} (choose from {', '.join(TABLE_FORMATS)})")
    if output:
        Path(output).write_bytes(data)
    else:
        click.echo(data.decode(), nl=False)


def _markdown(table: pa.Table, title: str, cell: Callable[[str, object], str]) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned), under ``## title`` when there is one."""
    from kpihub.report.scorecard import markdown_row

    names = table.column_names
    rule = ["---" if pa.types.is_string(table.schema.field(n).type) else "---:" for n in names]
    lines = [*([f"## {title}", ""] if title else []), markdown_row(names), "| " + " | ".join(rule) + " |"]
    lines += [markdown_row([cell(n, v) for n, v in row.items()]) for row in table.to_pylist()]
    return "\n".join(lines) + "\n"
