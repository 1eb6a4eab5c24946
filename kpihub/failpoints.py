"""Named crash points, for proving crash safety: a process can be made to SIGKILL itself at one of them.

The sync engine and every destination mark the steps of a commit with
``failpoint("<step>")``. Outside tests nothing is configured and a failpoint
is one falsy check. Two environment variables, read at import:

``KPIHUB_FAILPOINT="<name>:<n>"``
    the ``n``-th time (default 1) the process reaches ``<name>``, it sends
    itself SIGKILL: no ``finally``, no ``atexit``, no flush — as the OOM
    killer or a power cut would (``kpihub.testing.crash`` drives this).
``KPIHUB_FAILPOINT_TRACE=<file>``
    append every point reached to ``<file>``, one name per line, so a
    harness can list the points a sync passes through before choosing some.
"""

from __future__ import annotations

import os
import signal

__all__ = ["configure", "failpoint"]

_TARGET = _NTH = ""
_TRACE: str | None = None
_ARMED = False
_hits: dict[str, int] = {}


def configure(target: str | None, trace: str | None = None) -> None:
    """Arm (or disarm) the failpoints in this process: ``target`` as ``KPIHUB_FAILPOINT``, ``trace`` as
    ``KPIHUB_FAILPOINT_TRACE`` (for a process forked from one that imported kpihub before they were set)."""
    global _TARGET, _NTH, _TRACE, _ARMED
    _TARGET, _, _NTH = (target or "").partition(":")
    _TRACE = trace or None
    _ARMED = bool(_TARGET or _TRACE)
    _hits.clear()


configure(os.environ.get("KPIHUB_FAILPOINT"), os.environ.get("KPIHUB_FAILPOINT_TRACE"))


def failpoint(name: str) -> None:
    """Mark a step named ``name``; die here if the environment says so (see module docs)."""
    if not _ARMED:
        return
    if _TRACE:
        with open(_TRACE, "a") as fh:
            fh.write(name + "\n")
    if name == _TARGET:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == int(_NTH or 1):
            os.kill(os.getpid(), signal.SIGKILL)
