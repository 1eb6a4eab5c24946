"""Concurrency helpers: read ahead in a thread; read several accounts at once.

Connectors use :func:`interleave` to read several accounts or properties of one
configured source in parallel under a limit, yielding pages as they arrive.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["interleave", "prefetch"]

T = TypeVar("T")


class _Channel:
    """A bounded queue between worker threads and one consumer that may stop early.

    A worker's ``put`` gives up as soon as the consumer has stopped (no put ever blocks past
    that), so workers end with their consumer; ``close`` says so and waits for them.
    """

    def __init__(self, size: int) -> None:
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, size))
        self.stopped = threading.Event()

    def put(self, kind: str, value: Any = None) -> bool:
        """Hand ``(kind, value)`` to the consumer; False when it has stopped listening."""
        while not self.stopped.is_set():
            try:
                self._items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> tuple[str, Any]:
        return self._items.get()

    def close(self, workers: Iterable[threading.Thread]) -> None:
        self.stopped.set()
        for worker in workers:
            worker.join(timeout=60)  # the item in hand (an HTTP request) finishes before its client closes


def _drain(iterator: Iterator[Any], channel: _Channel) -> None:
    """Run ``iterator`` into ``channel``: its items, then ``done`` or its error; close it either way."""
    try:
        for item in iterator:
            if not channel.put("item", item):
                return
        channel.put("done")
    except BaseException as exc:  # handed to the consumer, raised there
        channel.put("error", exc)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def prefetch(iterator: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``iterator`` in a worker thread, ``depth`` items ahead of the consumer."""
    channel = _Channel(depth)
    worker = threading.Thread(target=_drain, args=(iterator, channel), name="kpihub-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        channel.close([worker])


def interleave(iterators: Iterable[Iterator[T]], max_workers: int = 4, depth: int = 2) -> Iterator[T]:
    """Items of all ``iterators``, each run in a worker thread, at most ``max_workers`` at once.

    Items of one iterator keep their order; across iterators they come as produced.
    The first error stops everything and is raised to the consumer. When the consumer
    stops (an error, a graceful stop), the workers finish the item in hand and end
    before this returns, so no request outlives the client it was made with.
    """
    pending = list(iterators)
    if not pending:
        return
    channel = _Channel(depth * max_workers)
    slots = threading.Semaphore(max(1, max_workers))

    def run(it: Iterator[T]) -> None:
        with slots:
            if channel.stopped.is_set():
                close = getattr(it, "close", None)
                if close is not None:
                    close()
                return
            _drain(it, channel)

    workers = [threading.Thread(target=run, args=(it,), name="kpihub-interleave", daemon=True) for it in pending]
    for worker in workers:
        worker.start()
    finished = 0
    try:
        while finished < len(workers):
            kind, value = channel.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                finished += 1
    finally:
        channel.close(workers)
