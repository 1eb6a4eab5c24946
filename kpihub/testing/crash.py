"""Crash-safety harness: run a sync in a child process, SIGKILL it at a chosen step, run it again.

kpihub's sync engine and destinations mark each step of a commit with a
failpoint (``kpihub.failpoints``). The harness lists the points an
uninterrupted run passes, picks some at random (seeded), and runs the sync
command with ``KPIHUB_FAILPOINT`` set, so the child kills itself with
SIGKILL exactly there — no cleanup runs, as after the OOM killer or a power
cut. A destination (or connector) author proves crash safety by asserting,
after every kill, that state points at nothing that is not durably written,
and after a final run, that the tables equal those of an uninterrupted run::

    launcher = SubprocessLauncher(["kpihub"])  # or ForkLauncher("kpihub") for many runs
    counts = trace_points(launcher, ["-p", "kpihub.toml", "sync"], env)
    for point in choose_points(counts, 20, seed=1):
        outcome = run_sync(launcher, ["-p", "kpihub.toml", "sync"], env, point)
        ...  # check the destination; outcome.killed says whether the point was reached

A staged run (``sync --full-refresh`` over tables that exist) passes its destination's swap steps once, in
the commit that swaps its stages in: trace it with :func:`trace_run` and kill at the steps
:func:`commit_steps` lists around the swap (or name them in ``choose_points(..., include=[...])``), so the
swap is killed at, not left to chance.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import runpy
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ForkLauncher",
    "KillPoint",
    "RunOutcome",
    "SubprocessLauncher",
    "choose_points",
    "commit_steps",
    "run_sync",
    "trace_points",
    "trace_run",
]


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
    #: What the child wrote to stderr (and, forked, stdout): for failure messages.
    stderr: str

    @property
    def killed(self) -> bool:
        """The child died by SIGKILL at its failpoint (False: it finished before reaching it)."""
        return self.returncode == -signal.SIGKILL


class SubprocessLauncher:
    """Runs ``command + args`` as a new process (the real command line, imports and all)."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)

    def run(
        self, args: Sequence[str], env: Mapping[str, str], point: str | None, trace: str | None, timeout: float
    ) -> tuple[int, str]:
        child_env = {k: v for k, v in env.items() if k not in ("KPIHUB_FAILPOINT", "KPIHUB_FAILPOINT_TRACE")}
        if point:
            child_env["KPIHUB_FAILPOINT"] = point
        if trace:
            child_env["KPIHUB_FAILPOINT_TRACE"] = trace
        proc = subprocess.run(
            [*self.command, *args], env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout
        )
        return proc.returncode, proc.stderr.decode(errors="replace")


class ForkLauncher:
    """Runs ``python -m <module> args`` in a process forked from a warm fork server.

    The server (multiprocessing's ``forkserver``) imports kpihub once; each run is still a process of
    its own, killed for real, but starts in milliseconds instead of a second of imports — so a test can
    afford a hundred kill points. The server is single-threaded, which makes forking it safe.
    """

    def __init__(self, module: str, preload: Sequence[str] = ("kpihub.cli", "kpihub.sync")) -> None:
        self.module = module
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload([*preload, module.rsplit(".", 1)[0]])

    def run(
        self, args: Sequence[str], env: Mapping[str, str], point: str | None, trace: str | None, timeout: float
    ) -> tuple[int, str]:
        with tempfile.NamedTemporaryFile(prefix="kpihub-run-", suffix=".log") as log:
            proc = self.ctx.Process(
                target=_forked_main, args=(self.module, list(args), dict(env), point, trace, log.name)
            )
            proc.start()
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
                raise TimeoutError(f"python -m {self.module} {' '.join(args)} ran longer than {timeout} s")
            output = Path(log.name).read_text(errors="replace")
        return proc.exitcode if proc.exitcode is not None else -1, output


def _forked_main(
    module: str, args: list[str], env: dict[str, str], point: str | None, trace: str | None, log: str
) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.clear()
    os.environ.update(env)
    from kpihub import failpoints

    failpoints.configure(point, trace)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


Launcher = SubprocessLauncher | ForkLauncher


def run_sync(
    launcher: Launcher,
    args: Sequence[str],
    env: Mapping[str, str],
    point: KillPoint | None = None,
    *,
    timeout: float = 300,
) -> RunOutcome:
    """Run a sync (``args`` to the launcher's command); with ``point``, the child SIGKILLs itself there."""
    code, stderr = launcher.run(args, env, str(point) if point else None, None, timeout)
    return RunOutcome(point, code, stderr)


def trace_points(
    launcher: Launcher, args: Sequence[str], env: Mapping[str, str], *, timeout: float = 300
) -> Counter[str]:
    """How often an uninterrupted run passes each failpoint (it must succeed)."""
    return Counter(trace_run(launcher, args, env, timeout=timeout))


def trace_run(launcher: Launcher, args: Sequence[str], env: Mapping[str, str], *, timeout: float = 300) -> list[str]:
    """The failpoints an uninterrupted run passes, in order (it must succeed)."""
    with tempfile.TemporaryDirectory(prefix="kpihub-trace-") as tmp:
        trace = os.path.join(tmp, "points")
        code, stderr = launcher.run(args, env, None, trace, timeout)
        if code != 0:
            raise RuntimeError(f"traced run failed ({code}): {stderr.strip()[-2000:]}")
        if not os.path.exists(trace):
            return []
        with open(trace) as fh:
            return [line.strip() for line in fh if line.strip()]


def commit_steps(
    sequence: Sequence[str], step: str, *, begin: str = "sync.before_commit", end: str = "sync.committed"
) -> list[KillPoint]:
    """Every step of the commit in which a traced run (:func:`trace_run`) first passed ``step``: from the
    ``begin`` before it to the ``end`` after it, each as the occurrence the run reaches there — e.g. all of
    a staged run's swap commit, for kill points exactly around the swap."""
    if step not in sequence:
        raise ValueError(f"the traced run never reached {step!r} (reached: {', '.join(sorted(set(sequence)))})")
    at = sequence.index(step)
    first = max((i for i in range(at) if sequence[i] == begin), default=0)
    last = next((i for i in range(at, len(sequence)) if sequence[i] == end), len(sequence) - 1)
    seen = Counter(sequence[:first])
    out = []
    for name in sequence[first : last + 1]:
        seen[name] += 1
        out.append(KillPoint(name, seen[name]))
    return out


def choose_points(
    counts: Mapping[str, int], k: int, *, seed: int, include: Sequence[str] = ()
) -> list[KillPoint]:
    """``k`` kill points at random: a step name uniformly (so rare commit steps get their share
    next to frequent page reads), then which occurrence of it.

    :param include: step names to kill at first, one random occurrence each, before the random points
        (steps a run passes once, such as a staged run's swap); each must be in ``counts``, so a harness
        proves the traced run reached them.
    """
    rng = random.Random(seed)
    names = sorted(n for n, c in counts.items() if c > 0)
    if not names:
        raise ValueError("no failpoints to choose from (did the traced run do any work?)")
    missing = [n for n in include if not counts.get(n)]
    if missing:
        raise ValueError(f"the traced run never reached {', '.join(missing)} (reached: {', '.join(names)})")
    out = [KillPoint(name, rng.randint(1, counts[name])) for name in include]
    for _ in range(k - len(out)):
        name = rng.choice(names)
        out.append(KillPoint(name, rng.randint(1, counts[name])))
    return out
