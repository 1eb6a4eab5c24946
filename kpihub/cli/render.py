"""How events look: drawn for a terminal, plain lines for a log file, or JSON lines.

A console is *plain* when its stream is not a terminal, or ``CI`` is set, or ``TERM=dumb``:
then it writes no ANSI escapes, no live progress, and tables without box-drawing characters
(:class:`PlainTables`). ``NO_COLOR`` turns colour off on a terminal too.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from rich import box
from rich.console import Console, ConsoleRenderable, RenderHook
from rich.table import Table
from rich.text import Text

from kpihub.cli.events import STREAM_EVENTS, Event, EventSink, level_name
from kpihub.cli.live import RichProgress

#: A progress line per stream at most this often (seconds) in a log; a terminal redraws continuously.
PROGRESS_SECONDS = 10.0

#: Column headers underlined with ASCII dashes, columns separated by spaces: reads like ``ps`` in a log.
PLAIN_BOX = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)

_PREFIX = {"warning": ("Warning:", "yellow"), "note": ("Note:", "yellow"), "error": ("Error:", "bold red")}


def plain_stream(stream: IO[str]) -> bool:
    """True when ``stream`` should get plain text: not a terminal, or ``CI`` set, or ``TERM=dumb``."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    if os.environ.get("TERM") == "dumb":
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return True


def console_for(stream: IO[str] | None, *, stderr: bool, plain: bool, width: int | None = None) -> Console:
    """A rich console for stdout or stderr; a plain one draws no escapes, no live display, no box lines."""
    console = Console(
        stderr=stderr,
        file=stream,
        highlight=False,
        soft_wrap=stderr,  # a message is one line in a log, however long
        force_terminal=False if plain else None,
        color_system=None if plain else "auto",
        no_color=True if os.environ.get("NO_COLOR") else None,
        width=width,
    )
    if plain:
        console.push_render_hook(PlainTables())
    return console


class PlainTables(RenderHook):
    """Every table a plain console prints gets ASCII header dashes and no borders (whoever built it)."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        out: list[ConsoleRenderable] = []
        for renderable in renderables:
            if isinstance(renderable, Table):
                if renderable.box is not None:
                    renderable.box, renderable.show_edge, renderable.pad_edge = PLAIN_BOX, False, False
                if renderable.title:  # on a line of its own: a table's title is padded to the table's width
                    title = renderable.title
                    out.append(Text.from_markup(title) if isinstance(title, str) else title)  # type: ignore[arg-type]
                    renderable.title = None
            out.append(renderable)
        return out


class Throttle:
    """At most one progress line per stream every ``seconds``."""

    def __init__(self, seconds: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._last: dict[str, float] = {}

    def due(self, event: Event) -> bool:
        key = str(event.fields.get("stream", ""))
        now = self.clock()
        if event.name == "stream_start":
            self._last[key] = now
            return True
        if event.name != "stream_progress":
            return True
        if now - self._last.setdefault(key, now) < self.seconds:
            return False
        self._last[key] = now
        return True


class HumanRenderer:
    """For people: a live progress display on a terminal, one line per event otherwise (stderr);
    the sync summary as a table on stdout."""

    def __init__(
        self, console: Console, err: Console, *, level: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.console, self.err, self.level = console, err, level
        self.live = RichProgress(console) if console.is_terminal and not console.is_dumb_terminal else None
        self.throttle = Throttle(clock=clock)

    def render(self, event: Event) -> None:
        if event.name in STREAM_EVENTS and self.live is not None:
            self.live.draw(event)
        if event.name == "summary":
            self._summary(event)
            return
        if event.level < self.level or not self.throttle.due(event):
            return
        if event.name == "stream_progress" and self.live is not None:
            return  # the live display shows it
        self._line(event)

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()

    def _summary(self, event: Event) -> None:
        from kpihub.cli.progress import summary_table

        self.stop_live()
        self.console.print(summary_table(event.fields.get("streams", [])))
        if event.message:
            self.err.print(Text(event.message))

    def _line(self, event: Event) -> None:
        if "traceback" in event.fields:
            self.err.print(Text(str(event.fields["traceback"]).rstrip("\n")))
        text = human_line(event)
        prefix = _PREFIX.get(event.name)
        self.err.print(Text.assemble((prefix[0], prefix[1]), " ", text) if prefix else Text(text))


def human_line(event: Event) -> str:
    """The line a person reads for ``event`` (without the ``Warning:``/``Error:`` prefix)."""
    f = event.fields
    if event.name == "stream_start":
        return f"{f['stream']}: started"
    if event.name == "stream_progress":
        return f"{f['stream']}: {f['records']:,} records so far ({f['rate']:,.0f}/s)"
    if event.name == "stream_end":
        line = f"{f['stream']}: {f['status']}, {f['records']:,} records in {f['seconds']:.1f}s ({f['rate']:,.0f}/s)"
        return line + (f", cursor {f['cursor']}" if f.get("cursor") is not None else "")
    if event.name in ("log", "retry", "http"):
        return f"{logging.getLevelName(event.level)} {f.get('logger', 'kpihub')}: {event.message}"
    return event.message


class JsonRenderer:
    """One JSON object per line. The sync summary (the command's result) goes to ``out`` (stdout), every
    other event to ``err`` (stderr); progress lines are throttled like a log's."""

    def __init__(
        self,
        out: IO[str],
        err: IO[str],
        *,
        level: int,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.out, self.err, self.level, self.now = out, err, level, now
        self.throttle = Throttle(clock=clock)

    def render(self, event: Event) -> None:
        if event.name != "summary" and (event.level < self.level or not self.throttle.due(event)):
            return
        stream = self.out if event.name == "summary" else self.err
        stream.write(json_line(event, self.now()) + "\n")
        stream.flush()

    def stop_live(self) -> None:
        pass


def json_line(event: Event, now: dt.datetime) -> str:
    ts = now.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head: dict[str, Any] = {"ts": ts, "event": event.name, "level": level_name(event.level)}
    if event.message:
        head["message"] = event.message
    return json.dumps({**head, **_plain(event.fields)}, ensure_ascii=False, default=str)


def _plain(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("ts", "event", "level", "message")}


class JsonLineWriter(io.TextIOBase):
    """``sys.stderr`` under ``--log-format json``: whatever else writes there (a plugin's print, a
    warning, a command's rich console) becomes a ``message`` event, so every stderr line is JSON."""

    encoding = "utf-8"  # click checks both before it writes to a stream
    errors = "strict"

    def __init__(self, sink: EventSink) -> None:
        super().__init__()
        self.sink = sink
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        self._emit(lines)
        return len(text)

    def close(self) -> None:
        with self._lock:
            rest, self._buffer = self._buffer, ""
        self._emit([rest])
        super().close()

    def _emit(self, lines: Iterable[str]) -> None:
        for line in lines:
            if not line.strip():
                continue  # blank lines carry nothing in a log
            level = logging.INFO
            if line.startswith("Error:"):
                level = logging.ERROR
            elif line.startswith(("Warning:", "Note:")):
                level = logging.WARNING
            self.sink.emit("message", line, level=level)
