"""Crash-safety harness: run a sync in a child process, SIGKILL it at a chosen step, run it again.

kpihub's sync engine and destinations mark each step of a commit with a
failpoint (``kpihub.failpoints``). The harness lists the points an
uninterrupted run passes, picks some at random (seeded), and runs the sync
command with ``KPIHUB_FAILPOINT`` set, so the child kills itself with
SIGKILL exactly there — no cleanup runs, as after the OOM killer or a power
cut. A destination (or connector) author proves crash safety by asserting,
after every kill, that state points at nothing that is not durably written,
and after a final run, that the tables equal those of an uninterrupted run::

    counts = trace_points(command, env)
    for point in choose_points(counts, 20, seed=1):
        outcome = run_sync(command, env, point)
        ...  # check the destination; outcome.killed says whether the point was reached
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["KillPoint", "RunOutcome", "choose_points", "run_sync", "trace_points"]


@dataclass(frozen=True)
class KillPoint:
    """The ``nth`` time a run reaches failpoint ``name``."""

    name: str
    nth: int = 1

    def __str__(self) -> str:
        return f"{self.name}:{self.nth}"


@dataclass
class RunOutcome:
    point: KillPoint | None
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        """The child died by SIGKILL at its failpoint (False: it finished before reaching it)."""
        return self.returncode == -signal.SIGKILL


def run_sync(
    command: Sequence[str], env: Mapping[str, str], point: KillPoint | None = None, *, timeout: float = 300
) -> RunOutcome:
    """Run ``command`` (a ``kpihub sync`` invocation); with ``point``, the child SIGKILLs itself there."""
    child_env = {k: v for k, v in env.items() if k not in ("KPIHUB_FAILPOINT", "KPIHUB_FAILPOINT_TRACE")}
    if point is not None:
        child_env["KPIHUB_FAILPOINT"] = str(point)
    proc = subprocess.run(list(command), env=child_env, capture_output=True, text=True, timeout=timeout)
    return RunOutcome(point, proc.returncode, proc.stdout, proc.stderr)


def trace_points(command: Sequence[str], env: Mapping[str, str], *, timeout: float = 300) -> Counter[str]:
    """How often an uninterrupted run of ``command`` passes each failpoint (it must succeed)."""
    with tempfile.TemporaryDirectory(prefix="kpihub-trace-") as tmp:
        trace = os.path.join(tmp, "points")
        child_env = {**env, "KPIHUB_FAILPOINT_TRACE": trace}
        child_env.pop("KPIHUB_FAILPOINT", None)
        proc = subprocess.run(list(command), env=child_env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"traced run failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        if not os.path.exists(trace):
            return Counter()
        with open(trace) as fh:
            return Counter(line.strip() for line in fh if line.strip())


def choose_points(counts: Mapping[str, int], k: int, *, seed: int) -> list[KillPoint]:
    """``k`` kill points at random: a step name uniformly (so rare commit steps get their share
    next to frequent page reads), then which occurrence of it."""
    rng = random.Random(seed)
    names = sorted(n for n, c in counts.items() if c > 0)
    if not names:
        raise ValueError("no failpoints to choose from (did the traced run do any work?)")
    out = []
    for _ in range(k):
        name = rng.choice(names)
        out.append(KillPoint(name, rng.randint(1, counts[name])))
    return out
