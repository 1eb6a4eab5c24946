"""Install the real HubSpot distribution into a fresh venv: it appears in `kpihub plugins`, and goes.

Offline: the new venv sees this environment's third-party packages through a
.pth file (kpihub itself excluded), and pip builds kpihub and kpihub-hubspot
from a copy of this checkout with --no-index --no-build-isolation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sh(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke")
    src = root / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "kpihub-demo", ".pytest_cache"
        ),
    )
    env = root / "venv"
    sh(sys.executable, "-m", "venv", env)
    outer = Path(sysconfig.get_paths()["purelib"])
    deps = root / "deps"
    deps.mkdir()
    for entry in outer.iterdir():
        if entry.name.lower().startswith(("kpihub", "__editable__", "_kpihub", "pip")):
            continue
        if entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    inner = Path(sh(env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (inner / "outer-deps.pth").write_text(str(deps) + "\n")
    sh(env / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", src)
    return env, src


def plugins(env: Path) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(sh(env / "bin" / "kpihub", "plugins", "--json"))}


def test_installing_and_uninstalling_the_hubspot_distribution(venv):
    venv, src = venv
    assert "hubspot" not in plugins(venv)
    sh(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        src / "plugins" / "kpihub-hubspot",
    )
    found = plugins(venv)["hubspot"]
    assert (found["distribution"], found["version"], found["sources"]) == ("kpihub-hubspot", "0.1.0", ["hubspot"])
    sh(venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "kpihub-hubspot")
    assert "hubspot" not in plugins(venv)
    assert "win_rate" in sh(venv / "bin" / "kpihub", "kpis", "--list")  # the core still works
