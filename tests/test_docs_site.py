"""The docs site builds with ``mkdocs build --strict``: a warning (a broken link, a page left out
of the nav, a name mkdocstrings cannot find) fails the build and this test, in CI with the rest.

The generated pages (mkdocs_hooks.py) are checked for what they must hold: every public name of
the connector API, every hook spec, every built-in KPI, every canonical table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner, not a warning of ours
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=config.parent,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(REPO / "mkdocs.yml", out)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def test_the_site_builds_with_no_warning(site):
    assert (site / "index.html").exists()
    for path in ("quickstart", "concepts", "tutorial", "scheduling", "reference/api", "reference/kpi-catalogue"):
        assert (site / path / "index.html").exists(), path


def test_the_api_reference_has_every_public_name_of_the_connector_api(site):
    import mkdocs_hooks

    for module_name, (path, _title) in mkdocs_hooks.REFERENCE.items():
        module = __import__(module_name, fromlist=["__all__"])
        html = page(site, path.removesuffix(".md"))
        for name in module.__all__:
            if name.startswith("__"):
                continue
            anchor = mkdocs_hooks._defined_at(module, name)
            assert f'id="{anchor}"' in html, f"{module_name}.{name} is not in {path}"
    # A docstring reached the page, rendered (no Sphinx role left).
    api = page(site, "reference/api")
    assert "Sync a project in one call" in api and ":class:" not in api


def test_the_hook_reference_has_every_hook_spec(site):
    from kpihub import hookspecs

    html = page(site, "reference/hooks")
    for name in (n for n in vars(hookspecs) if n.startswith("kpihub_")):
        assert f'id="kpihub.hookspecs.{name}"' in html, name
    assert "New in version 0.1." in html and "versionadded" not in html


def test_the_kpi_catalogue_and_canonical_tables_are_generated_from_the_code(site):
    from kpihub.model import CANONICAL_TABLES
    from kpihub.plugins import Registry

    catalogue = page(site, "reference/kpi-catalogue")
    for kpi in Registry(load_entrypoints=False).kpis.values():
        assert f"<code>{kpi.id}</code>" in catalogue, kpi.id
    tables = page(site, "reference/canonical-tables")
    for table in CANONICAL_TABLES.values():
        assert f'id="{table.name}"' in tables, table.name


def test_a_broken_link_fails_the_build(tmp_path):
    # The same site with one broken link: --strict must turn mkdocs' warning into a failed build.
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    for name in ("mkdocs.yml", "mkdocs_hooks.py", "README.md"):
        shutil.copy(REPO / name, copy / name)
    for readme in REPO.glob("plugins/*/README.md"):
        (copy / readme.parent.relative_to(REPO)).mkdir(parents=True)
        shutil.copy(readme, copy / readme.relative_to(REPO))
    quickstart = copy / "docs" / "quickstart.md"
    quickstart.write_text(quickstart.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build(copy / "mkdocs.yml", tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "no-such-page.md" in output and "Aborted with 1 warnings in strict mode" in output, output
