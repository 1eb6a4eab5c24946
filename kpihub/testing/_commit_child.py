"""A child process for :class:`~kpihub.testing.destination_conformance.DestinationConformance`'s crash test.

``python -m kpihub.testing._commit_child JOB`` unpickles ``(destination, uri, writes, state)`` from
the file ``JOB``, opens the destination and makes that one commit. Run through
:class:`kpihub.testing.crash.ForkLauncher`, the child SIGKILLs itself at the failpoint it is given:
the destination's own (``kpihub.failpoints``), or a file-system step this module marks — before
every ``os.replace``, ``os.rename``, ``os.link``, ``os.unlink``/``os.remove``, ``os.rmdir``, ``os.fsync``
and every ``open`` for writing (``os.<name>`` and ``open.write``) — so a destination that marks no
failpoints of its own is still killed between each of its steps.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

from kpihub import failpoints
from kpihub.failpoints import failpoint

#: The ``os`` functions a commit's file steps go through.
FILE_STEPS = ("replace", "rename", "link", "unlink", "remove", "rmdir", "fsync")


def _marked(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        failpoint(name)
        return func(*args, **kwargs)

    return step


def _marked_open(real: Callable[..., Any]) -> Callable[..., Any]:
    def opener(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and str(file) != failpoints._TRACE:  # not the trace itself
            failpoint("open.write")
        return real(file, mode, *args, **kwargs)

    return opener


def mark_file_steps() -> None:
    """Put a failpoint before each file-system step of this process (see the module docstring)."""
    for name in FILE_STEPS:
        setattr(os, name, _marked(f"os.{name}", getattr(os, name)))
    opener = _marked_open(builtins.open)
    builtins.open = opener
    io.open = opener


def main(job: str) -> None:
    """Make the commit described in ``job`` (a pickle file)."""
    with open(job, "rb") as fh:
        destination, uri, writes, state = pickle.load(fh)  # noqa: S301 - written by the parent test
    mark_file_steps()
    with destination.open(uri) as session:
        session.commit(writes, state)


if __name__ == "__main__":
    main(sys.argv[1])
