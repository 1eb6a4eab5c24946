"""``python -m bench.crash``: the long SIGKILL sweep that the test suite only samples.

The suite's crash tests (tests/test_crash_safety*.py) kill every destination's sync once at each
failpoint the traced run passes, and a few random points more: 10 kills a destination. This runs
the same tests with many more random kill points (``--kills``, default 40). It is nightly work, not
a benchmark, and asserts the same things. Nothing is timed here. Extra arguments go to pytest
(``-k postgres``, ``-n 0``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_crash_safety.py", "tests/test_crash_safety_stores.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="kill points per destination (default 40)")
    args, pytest_args = parser.parse_known_args(argv)
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    env = {**os.environ, "KPIHUB_TEST_CRASH_KILLS": str(args.kills)}
    command = [sys.executable, "-m", "pytest", "-q", *TESTS, *pytest_args]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
