"""Writing a result table as a terminal table, JSON, CSV or Parquet: one way for every command."""

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

TABLE_FORMATS = ("table", "json", "csv", "parquet")


def write_table(
    table: pa.Table,
    fmt: str,
    output: str | None,
    console: Console,
    *,
    title: str = "",
    cell: Callable[[str, object], str] = lambda _column, value: "—" if value is None else str(value),
) -> None:
    """``table`` to the terminal (``table``) or as ``json``/``csv``/``parquet`` to ``output`` or stdout."""
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
    if fmt == "json":
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
