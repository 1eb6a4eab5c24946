"""docs/tutorial.md runs: its marked code blocks, in order, in an empty directory (issue 15).

``<!-- run -->`` before a fenced block runs it: a shell block as it is, a block with a
``title="FILE"`` is written to FILE. ``<!-- output -->`` before a block says what the run block
before it prints: each of its lines must be in that block's output. The blocks form one bash
script (``set -euo pipefail``), as a reader's terminal session would, so a broken step fails
the test, named by its line in the page.

The reader's ``pip install`` reaches PyPI; here pip installs offline (``--no-index``, no build
isolation) into a fresh venv with kpihub installed, built as tests/test_install_smoke.py builds it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_install_smoke import venv  # noqa: F401  (the fixture: a fresh venv with kpihub)

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
_BLOCK = re.compile(r"^<!-- (run|output) -->\n```(\w+)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_SHELLS = ("bash", "sh", "shell", "console")


@dataclass
class Block:
    kind: str  # run | output
    lang: str
    title: str | None
    body: str
    line: int

    @property
    def where(self) -> str:
        return f"docs/tutorial.md:{self.line}"


def blocks(markdown: str) -> list[Block]:
    found = []
    for m in _BLOCK.finditer(markdown):
        title = re.search(r'title="([^"]+)"', m.group(3))
        line = markdown.count("\n", 0, m.start()) + 2  # the fence's line
        found.append(Block(m.group(1), m.group(2), title.group(1) if title else None, m.group(4), line))
    markers = len(re.findall(r"^<!-- (?:run|output) -->$", markdown, re.M))
    assert markers == len(found), "a <!-- run --> or <!-- output --> marker is not followed by a fenced block"
    for block in found:
        if block.kind == "run":
            assert block.title or block.lang in _SHELLS, f"{block.where}: a run block needs a shell or a title"
    return found


def script(found: list[Block]) -> str:
    out = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]  # a fake left running
    for i, block in enumerate(found):
        if block.kind != "run":
            continue
        out.append(f"echo '@@step {i}@@'; echo '@@step {i}@@' >&2")
        if block.title:
            out.append(f"cat > {shlex.quote(block.title)} <<'KPIHUB_TUTORIAL_EOF'\n{block.body}KPIHUB_TUTORIAL_EOF")
        else:
            out.append(block.body)
    return "\n".join(out) + "\n"


def run_tutorial(markdown: str, cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    """Run the page's run blocks and check its output blocks; return the script's output."""
    found = blocks(markdown)
    done = subprocess.run(
        ["bash", "-c", script(found)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    steps = {i: b for i, b in enumerate(found)}
    if done.returncode != 0:
        last = re.findall(r"^@@step (\d+)@@$", done.stdout, re.M)
        step = steps[int(last[-1])] if last else None
        where = f"{step.where}: {step.body.strip()}" if step else "before the first step"
        raise AssertionError(f"tutorial step failed ({where}), exit {done.returncode}:\n{done.stdout}\n{done.stderr}")
    outputs = dict(re.findall(r"^@@step (\d+)@@\n(.*?)(?=^@@step |\Z)", done.stdout, re.M | re.S))
    ran = None
    for i, block in steps.items():
        if block.kind == "run" and not block.title:
            ran = i
        elif block.kind == "output":
            assert ran is not None, f"{block.where}: an output block before any command"
            got = outputs.get(str(ran), "")
            for line in filter(None, (x.rstrip() for x in block.body.splitlines())):
                assert line in got, f"{block.where}: {line!r} is not in the output of {steps[ran].where}:\n{got}"
    return done.stdout


def tutorial_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIHUB_", "PIP_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(bin_dir.parent),
        PIP_NO_INDEX="1",  # offline: every package the tutorial installs is in the venv already
        PIP_NO_BUILD_ISOLATION="0",  # "0" disables isolation (pip's inverted --no-* variables)
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        COLUMNS="160",
    )
    return env


def test_the_tutorial_runs_end_to_end(venv, tmp_path):  # noqa: F811
    env, _src = venv
    out = run_tutorial(TUTORIAL.read_text(encoding="utf-8"), tmp_path, tutorial_env(env / "bin"))
    assert (tmp_path / "kpihub-helpdesk" / "pyproject.toml").exists()
    assert (tmp_path / "helpdesk.duckdb").exists()
    assert "Support tickets" in out


def test_the_tutorial_runs_each_step_of_the_issue():
    # scaffold -> install -> tests -> fake -> kpihub.toml -> sync -> KPIs: none may lose its marker.
    ran = "\n".join(b.body for b in blocks(TUTORIAL.read_text(encoding="utf-8")) if b.kind == "run")
    titles = [b.title for b in blocks(TUTORIAL.read_text(encoding="utf-8")) if b.title]
    for step in ("kpihub new source", "pip install", "pytest", "kpihub_helpdesk.fake", "kpihub sync", "kpihub kpis"):
        assert step in ran, step
    assert "kpihub.toml" in titles


@pytest.mark.parametrize(
    ("page", "error"),
    [
        ("<!-- run -->\n```bash\necho one\n```\n\n<!-- run -->\n```bash\nfalse\n```\n", "tutorial step failed (x.md:7"),
        ("<!-- run -->\n```bash\necho one\n```\n\n<!-- output -->\n```text\ntwo\n```\n", "'two' is not in the output"),
        ("<!-- run -->\n```bash\nexit 0\n```\n<!-- run -->\n\nno block\n", "is not followed by a fenced block"),
        ("<!-- run -->\n```python\nprint(1)\n```\n", "a run block needs a shell or a title"),
    ],
)
def test_a_broken_step_fails(tmp_path, page, error):
    with pytest.raises(AssertionError) as info:
        run_tutorial(page, tmp_path, dict(os.environ), timeout=30)
    assert error.replace("x.md", "docs/tutorial.md") in str(info.value)


def test_files_and_python_blocks_run_in_order(tmp_path):
    page = (
        '<!-- run -->\n```python title="hello.py"\nprint("hello from", __name__)\n```\n\n'
        "<!-- run -->\n```bash\npython3 hello.py\n```\n\n<!-- output -->\n```text\nhello from __main__\n```\n"
    )
    assert "hello from __main__" in run_tutorial(page, tmp_path, dict(os.environ), timeout=30)
