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
_DONE = object()


def prefetch(iterator: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``iterator`` in a worker thread, ``depth`` items ahead of the consumer."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(("error", exc))
        finally:
            close = getattr(iterator, "close", None)
            if stop.is_set() and close is not None:
                close()

    worker = threading.Thread(target=produce, name="kpihub-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=60)  # the item in hand (an HTTP request) finishes before its client closes


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
    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth * max_workers))
    stop = threading.Event()
    slots = threading.Semaphore(max(1, max_workers))

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(it: Iterator[T]) -> None:
        with slots:
            try:
                if stop.is_set():
                    return
                for item in it:
                    if not put("item", item):
                        return
                put("done", None)
            except BaseException as exc:  # handed to the consumer, raised there
                put("error", exc)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()

    workers = [threading.Thread(target=run, args=(it,), name="kpihub-interleave", daemon=True) for it in pending]
    for worker in workers:
        worker.start()
    finished = 0
    try:
        while finished < len(workers):
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                finished += 1
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
