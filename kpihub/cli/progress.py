"""Sync progress and summary with rich."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kpihub.sync import StreamResult


class RichProgress:
    """Per-stream records and rate, live while a sync runs."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.fields[key]:<28}"),
            BarColumn(bar_width=20),
            TextColumn("{task.completed:>10,.0f} records"),
            TextColumn("{task.fields[rate]:>10}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stream_started(self, key: str) -> None:
        with self._lock:
            self._tasks[key] = self.progress.add_task(key, key=key, total=None, rate="", status="reading")

    def records(self, key: str, count: int) -> None:
        task = self._tasks[key]
        self.progress.advance(task, count)
        speed = self.progress.tasks[task].speed
        self.progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

    def stream_finished(self, result: StreamResult) -> None:
        task = self._tasks[result.key]
        status = "[green]done[/green]" if result.status == "ok" else _STATUS.get(result.status, "[red]failed[/red]")
        self.progress.update(
            task, total=result.records, completed=result.records, status=status, rate=f"{result.rate:,.0f}/s"
        )


_STATUS = {
    "ok": "[green]ok[/green]",
    "stopped": "[yellow]stopped[/yellow]",
    "incomplete": "[red]incomplete[/red]",
    "mismatch": "[red]mismatch[/red]",
}


def _api_total(r: StreamResult) -> str:
    if r.api_total is None:
        return ""
    return f"[yellow]≠ {r.api_total:,}[/yellow]" if r.total_mismatch else f"{r.api_total:,}"


def summary_table(results: Sequence[StreamResult]) -> Table:
    table = Table(title="Sync summary", title_justify="left", header_style="bold")
    for name, justify in [
        ("Stream", "left"),
        ("Status", "left"),
        ("Records", "right"),
        ("API total", "right"),
        ("Records/s", "right"),
        ("Seconds", "right"),
        ("Cursor", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        status = _STATUS.get(r.status, "[red]failed[/red]")
        table.add_row(
            r.key,
            status,
            f"{r.records:,}",
            _api_total(r),
            f"{r.rate:,.0f}",
            f"{r.seconds:.1f}",
            "" if r.cursor is None else str(r.cursor),
        )
    return table
