"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_scripted_sync_example_runs_offline():
    pytest.importorskip("kpihub_hubspot")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "scripted_sync.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "hubspot.contacts         ok         5000 records" in done.stdout
    assert "win rate by quarter" in done.stdout
