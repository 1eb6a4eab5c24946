"""A sync runs on Arrow's system allocator unless the user picked one (kpihub/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

SCRIPT = """
import pyarrow as pa
from kpihub.memory import use_system_pool
before = pa.default_memory_pool().backend_name
use_system_pool()
print(before, pa.default_memory_pool().backend_name)
"""


def run(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(
    pa.default_memory_pool().backend_name != "mimalloc" and not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"),
    reason="this pyarrow build does not default to mimalloc",
)
def test_mimalloc_is_replaced_by_the_system_allocator():
    assert run({}) == ["mimalloc", "system"]


def test_a_pool_the_user_chose_is_kept():
    assert run({"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}) == ["jemalloc", "jemalloc"]


def test_a_sync_switches_the_pool(tmp_path):
    script = f"""
import pyarrow as pa, kpihub
from kpihub.errors import ConfigError
p = kpihub.Pipeline(kpihub.load_project({str(tmp_path / "kpihub.toml")!r}))
try:
    p.sync()
except ConfigError:
    pass  # no sources: the pool was chosen before that was found
print(pa.default_memory_pool().backend_name)
"""
    (tmp_path / "kpihub.toml").write_text('[project]\ndestination = "duckdb:///x.duckdb"\n')
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "system"
