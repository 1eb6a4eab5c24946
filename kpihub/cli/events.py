"""What a command reports, as events through one sink: drawn for a terminal, written as plain lines
for a log file, or as one JSON object per line (``--log-format json``).

Sync progress, retries and other log records, warnings, errors and the sync summary are all
:class:`Event` objects given to the command's :class:`EventSink`; the renderer decides how they
look (:mod:`kpihub.cli.render`). Nothing else in the CLI prints progress or log lines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kpihub.secrets import RedactingFilter, redact

__all__ = ["Event", "EventSink", "Renderer", "SinkHandler", "level_name"]

#: Events a sync reports for each stream (the live display draws them; lines and JSON throttle progress).
STREAM_EVENTS = ("stream_start", "stream_progress", "stream_end")


@dataclass(frozen=True)
class Event:
    """One thing to report: a name (``stream_end``, ``retry``, ``error`` …), a level, a redacted
    one-line message for people and the fields a machine reads."""

    name: str
    level: int = logging.INFO
    message: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)


class Renderer(Protocol):
    """How events look: :class:`~kpihub.cli.render.HumanRenderer` or :class:`~kpihub.cli.render.JsonRenderer`."""

    def render(self, event: Event) -> None: ...
    def stop_live(self) -> None: ...


class EventSink:
    """Where a command's events go. Thread-safe: streams report from the sync's worker threads.

    The lock is re-entrant because a signal handler runs on the main thread, possibly while that
    thread is inside :meth:`emit`.
    """

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._lock = threading.RLock()

    def emit(self, name: str, message: str = "", *, level: int = logging.INFO, **fields: Any) -> None:
        """Report one event; every string in it is redacted (secrets never reach a log)."""
        event = Event(name, level, redact(message) if message else "", _redacted(fields))
        with self._lock:
            self.renderer.render(event)

    def warning(self, message: str, **fields: Any) -> None:
        self.emit("warning", message, level=logging.WARNING, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message, level=logging.ERROR, **fields)

    @contextmanager
    def live(self) -> Iterator[EventSink]:
        """While a sync runs: a terminal may draw a live display, which ends (whatever happens) on exit,
        so what is printed next starts on a line of its own."""
        try:
            yield self
        finally:
            with self._lock:
                self.renderer.stop_live()


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def level_name(level: int) -> str:
    """``info``, ``warning`` … as JSON lines spell the level."""
    return logging.getLevelName(level).lower()


class SinkHandler(logging.Handler):
    """Log records as events: a record logged with ``extra={"kpihub_event": {"event": NAME, ...}}``
    becomes that event with its fields (the HTTP toolkit's retries), httpx's request lines become
    ``http`` events (debug), any other record a ``log`` event. Messages are redacted first."""

    def __init__(self, sink: EventSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(getattr(record, "kpihub_event", None) or {})
            name = fields.pop("event", "log")
            level = record.levelno
            if record.name.startswith(("httpx", "httpcore")):
                name, level = "http", logging.DEBUG  # httpx logs each request at INFO; here it is detail
            self.sink.emit(name, record.getMessage(), level=level, logger=record.name, **fields)
        except Exception:  # a log line must never break the sync it reports on
            self.handleError(record)
