"""The SIGKILL-then-rerun proof of :mod:`tests.test_crash_safety` for the other file formats and an object
store (a module of its own so the test workers share the slow runs out)."""

from __future__ import annotations

import pytest

from tests.test_crash_safety import kill_and_rerun


@pytest.mark.parametrize("kind", ["csv", "arrow", "s3"])
def test_sigkill_at_random_commit_steps_then_rerun_gives_the_tables_of_an_uninterrupted_sync(kind, tmp_path, request):
    kill_and_rerun(kind, tmp_path, request)
