"""The live progress display a terminal shows while a sync runs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from kpihub.cli.events import Event

if TYPE_CHECKING:
    from kpihub.sync import StreamResult

#: A stream's status as the display and the summary table show it.
STATUS = {
    "ok": "[green]ok[/green]",
    "stopped": "[yellow]stopped[/yellow]",
    "quota": "[yellow]quota[/yellow]",
    "interrupted": "[yellow]interrupted[/yellow]",
    "incomplete": "[red]incomplete[/red]",
    "mismatch": "[red]mismatch[/red]",
}


class RichProgress:
    """Per-stream records and rate, live on a terminal while a sync runs (nothing elsewhere).

    Also usable directly as the engine's ``progress`` (``with RichProgress(console) as p``).
    The display starts with the first stream, so a sync that fails before any stream prints nothing.
    """

    def __init__(self, console: Console) -> None:
        self.enabled = console.is_terminal and not console.is_dumb_terminal
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
        self._started = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self.progress.stop()
                self._started = False

    def draw(self, event: Event) -> None:
        """Show a ``stream_start`` / ``stream_progress`` / ``stream_end`` event."""
        f = event.fields
        if event.name == "stream_start":
            self.stream_started(f["stream"])
        elif event.name == "stream_progress":
            self.records(f["stream"], f["added"])
        elif event.name == "stream_end":
            self._finish(f["stream"], f["status"], f["records"], f["rate"])

    def stream_started(self, key: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            if not self._started:
                self.progress.start()
                self._started = True
            self._tasks[key] = self.progress.add_task(key, key=key, total=None, rate="", status="reading")

    def records(self, key: str, count: int) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        self.progress.advance(task, count)
        speed = self.progress.tasks[task].speed
        self.progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

    def stream_finished(self, result: StreamResult) -> None:
        self._finish(result.key, result.status, result.records, result.rate)

    def _finish(self, key: str, status: str, records: int, rate: float) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        shown = "[green]done[/green]" if status == "ok" else STATUS.get(status, "[red]failed[/red]")
        self.progress.update(task, total=records, completed=records, status=shown, rate=f"{rate:,.0f}/s")
