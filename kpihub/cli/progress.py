"""Sync progress: the engine's callbacks as events, and the summary table."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from kpihub.cli.events import EventSink
from kpihub.cli.live import STATUS, RichProgress
from kpihub.config import env_prefix
from kpihub.errors import ConfigError
from kpihub.sync import StreamResult

__all__ = ["NOT_FAILED", "RichProgress", "SyncReporter", "stream_fields", "summary_table"]

#: Statuses that end a stream without an error (a stop on request or on a quota keeps what was read).
NOT_FAILED = ("ok", "stopped", "quota")


def stream_fields(r: StreamResult) -> dict[str, Any]:
    """A stream's result as the fields of its ``stream_end`` event and its row in the summary."""
    fields: dict[str, Any] = {
        "stream": r.key,
        "source": r.source_id,
        "status": r.status,
        "records": r.records,
        "api_total": r.api_total,
        "total_mismatch": r.total_mismatch,
        "seconds": round(r.seconds, 3),
        "rate": round(r.rate, 1),
        "cursor": None if r.cursor is None else str(r.cursor),
        "rejected": r.rejected,
        "error": r.error,
        "notes": list(r.notes),
    }
    if isinstance(r.exception, ConfigError) and r.exception.field:
        # A source that could not start: which setting, and the variable that sets it (never its value).
        fields["setting"] = r.exception.field
        fields["env"] = f"{env_prefix(r.source_id)}{r.exception.field.split('.')[0].upper()}"
    return fields


class SyncReporter:
    """The sync engine's :class:`~kpihub.sync.Progress` callbacks as events on ``sink``.

    It keeps each stream's result as it ends, so a sync interrupted before ``Pipeline.sync``
    returns can still say what every stream committed (:meth:`results`).
    """

    def __init__(self, sink: EventSink, clock: Callable[[], float] = time.monotonic) -> None:
        self.sink, self.clock = sink, clock
        self._lock = threading.Lock()
        self._running: dict[str, tuple[float, int]] = {}
        self._finished: dict[str, StreamResult] = {}

    def stream_started(self, key: str) -> None:
        with self._lock:
            self._running[key] = (self.clock(), 0)
        self.sink.emit("stream_start", stream=key, source=key.split(".", 1)[0])

    def records(self, key: str, count: int) -> None:
        with self._lock:
            started, total = self._running.get(key, (self.clock(), 0))
            total += count
            self._running[key] = (started, total)
        seconds = self.clock() - started
        rate = total / seconds if seconds > 0 else 0.0
        self.sink.emit(
            "stream_progress", stream=key, records=total, added=count, seconds=round(seconds, 3), rate=round(rate, 1)
        )

    def stream_finished(self, result: StreamResult) -> None:
        with self._lock:
            self._running.pop(result.key, None)
            self._finished[result.key] = result
        self.sink.emit("stream_end", **stream_fields(result))

    def results(self) -> list[StreamResult]:
        """Every stream that ended, then those still running: ``interrupted`` with what they had read."""
        with self._lock:
            done = list(self._finished.values())
            running = dict(self._running)
        cut = []
        for key, (started, read) in running.items():
            source_id, _, stream = key.partition(".")
            message = f"interrupted after reading {read} records; `kpihub state` shows what was committed"
            cut.append(StreamResult(source_id, stream, "interrupted", seconds=self.clock() - started, error=message))
        return done + cut


def _api_total(row: Mapping[str, Any]) -> str:
    total = row.get("api_total")
    if total is None:
        return ""
    return f"[yellow]≠ {total:,}[/yellow]" if row.get("total_mismatch") else f"{total:,}"


def summary_table(results: Sequence[StreamResult] | Sequence[Mapping[str, Any]]) -> Table:
    """The ``Sync summary`` table, from stream results or their :func:`stream_fields`."""
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
        row = stream_fields(r) if isinstance(r, StreamResult) else r
        table.add_row(
            escape(row["stream"]),
            STATUS.get(row["status"], "[red]failed[/red]"),
            f"{row['records']:,}",
            _api_total(row),
            f"{row['rate']:,.0f}",
            f"{row['seconds']:.1f}",
            "" if row.get("cursor") is None else escape(str(row["cursor"])),
        )
    return table
