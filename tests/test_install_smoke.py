"""Install the real HubSpot distribution into a fresh venv: it appears in `kpihub plugins`, and goes.

Offline: the new venv sees this environment's third-party packages through a
.pth file (kpihub itself excluded), and pip builds kpihub and kpihub-hubspot
from a copy of this checkout with --no-index --no-build-isolation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


#: Read at import: the tests' autouse fixture hides KPIHUB_* variables (the scaffolded KPI pack runs on it).
POSTGRES = os.environ.get("KPIHUB_TEST_POSTGRES_URI")


def sh(*args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


#: Build output, caches and scratch: not the checkout (.mypy_cache alone is tens of MB on a developer's tree).
NOT_COPIED = (".git", ".venv", "build", "*.egg-info", "__pycache__", "kpihub-demo", ".pytest_cache")
NOT_COPIED += (".mypy_cache", ".ruff_cache", ".hypothesis", "tmp")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke")
    src = root / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(*NOT_COPIED),
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
    # Nothing of this environment's plugins leaks in; each test below leaves the venv so (checked once here,
    # not before every install: a kpihub start each).
    assert plugins(env) == {}, "the fresh venv sees plugins it did not install"
    return env, src


def plugins(env: Path) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(sh(env / "bin" / "kpihub", "plugins", "--json"))}


PLUGINS = [
    ("kpihub-hubspot", "hubspot"),
    ("kpihub-stripe", "stripe"),
    ("kpihub-google-ads", "google_ads"),
    ("kpihub-meta-ads", "meta_ads"),
    ("kpihub-linkedin-ads", "linkedin_ads"),
    ("kpihub-ga4", "ga4"),
    ("kpihub-files", "files"),
    ("kpihub-zendesk", "zendesk"),  # declarative: its TOML must ship in the wheel
    ("kpihub-typeform", "typeform"),
    ("kpihub-shopify", "shopify"),
    ("kpihub-crux", "crux"),
    ("kpihub-linkedin-pages", "linkedin_pages"),
    ("kpihub-meta-pages", "meta_pages"),
    ("kpihub-matomo", "matomo"),
]


@pytest.mark.parametrize(("distribution", "source"), PLUGINS)
def test_each_plugin_installs_on_its_own_and_uninstalls(venv, distribution, source):
    venv, src = venv
    sh(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        src / "plugins" / distribution,
    )
    found = plugins(venv)
    assert list(found) == [source]  # only this plugin: each installs on its own
    assert (found[source]["distribution"], found[source]["version"], found[source]["sources"]) == (
        distribution,
        "0.1.0",
        [source],
    )
    sh(venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", distribution)
    assert source not in plugins(venv)
    assert "win_rate" in sh(venv / "bin" / "kpihub", "kpis", "--list")  # the core still works


SCAFFOLDS = [("source", "demo_thing"), ("kpi", "demo_pack"), ("destination", "demo_lines")]


def test_a_scaffold_of_each_kind_installs_and_passes_its_tests_with_no_edits(venv, tmp_path):
    # issue 15: `kpihub new source|kpi|destination NAME`, then pip install and pytest, exactly as generated:
    # all three into this one venv (one install, one test run), and out again.
    venv, _src = venv
    dists = []
    for kind, name in SCAFFOLDS:
        sh(venv / "bin" / "kpihub", "new", kind, name, "--dir", tmp_path)
        dists.append(tmp_path / f"kpihub-{name.replace('_', '-')}")
    pip = (venv / "bin" / "python", "-m", "pip")
    sh(*pip, "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", *dists)
    env = {**os.environ, **({"KPIHUB_TEST_POSTGRES_URI": POSTGRES} if POSTGRES else {})}
    try:
        found = plugins(venv)
        assert {name for _, name in SCAFFOLDS} <= set(found), found
        out = sh(
            venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *dists, env=env
        )
        assert " passed" in out and "failed" not in out and "error" not in out, out
        assert not POSTGRES or "skipped" not in out, out  # the KPI pack's PostgreSQL run too
    finally:
        sh(*pip, "uninstall", "-y", "-q", *(d.name for d in dists))
    assert not {name for _, name in SCAFFOLDS} & set(plugins(venv))
