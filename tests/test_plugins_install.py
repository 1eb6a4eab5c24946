"""``kpihub plugins install|uninstall`` for real: pip into a fresh venv, offline, then ``kpihub plugins`` there.

The venv is test_install_smoke's (kpihub built from a copy of this checkout, third-party packages
seen through a .pth file); the plugin is a tiny distribution written here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.test_install_smoke import plugins, sh, venv  # noqa: F401  (venv: the module's fixture)

OFFLINE = ("--no-index", "--no-build-isolation")

PLUGIN = """
import pyarrow as pa
from pydantic import SecretStr

import kpihub


class TinySettings(kpihub.SourceSettings):
    base_url: str = "https://tiny.invalid"
    api_key: SecretStr
    page_size: int = 25


class TinySource(kpihub.Source[TinySettings]):
    name = "tinything"
    title = "Tiny Thing"
    settings_class = TinySettings

    def streams(self, settings):
        schema = pa.schema([pa.field("id", pa.string(), nullable=False)])
        return [kpihub.Stream("widgets", schema, primary_key=("id",), cursor_field=None)]

    def check(self, settings, http):
        return kpihub.CheckResult(True, "fine")


@kpihub.hookimpl
def kpihub_register_sources(register):
    register(TinySource())
"""


def tiny_distribution(root: Path) -> Path:
    dist = root / "kpihub-tinything"
    (dist / "kpihub_tinything").mkdir(parents=True)
    (dist / "kpihub_tinything" / "__init__.py").write_text(PLUGIN)
    (dist / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "kpihub-tinything"\nversion = "0.3.0"\n'
        '[project.entry-points.kpihub]\ntinything = "kpihub_tinything"\n'
        '[tool.setuptools]\npackages = ["kpihub_tinything"]\n'
    )
    return dist


def kpihub(env: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env / "bin" / "kpihub"), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_install_lists_streams_and_settings_then_uninstall(venv, tmp_path):  # noqa: F811
    env, _src = venv
    dist = tiny_distribution(tmp_path)
    installed = kpihub(env, "plugins", "install", *OFFLINE, dist)
    assert installed.returncode == 0, installed.stderr
    found = plugins(env)["tinything"]
    assert (found["distribution"], found["version"], found["sources"]) == ("kpihub-tinything", "0.3.0", ["tinything"])
    (details,) = found["source_details"]
    assert details["streams"] == [
        {
            "name": "widgets",
            "primary_key": ["id"],
            "cursor_field": None,
            "canonical_table": None,
            "sync_mode": "full",
            "write_mode": "replace",
        }
    ]
    settings = {s["name"]: s for s in details["settings"]}
    assert settings["api_key"] == {
        "name": "api_key",
        "type": "SecretStr",
        "required": True,
        "default": None,
        "secret": True,
        "env": "KPIHUB_TINYTHING_API_KEY",
    }
    assert (settings["page_size"]["default"], settings["page_size"]["required"]) == (25, False)
    table = kpihub(env, "plugins").stdout
    assert "tinything (Tiny Thing): streams widgets" in table
    assert "KPIHUB_TINYTHING_API_KEY" in table and "SecretStr" in table
    removed = kpihub(env, "plugins", "uninstall", "-y", "kpihub-tinything")
    assert removed.returncode == 0, removed.stderr
    assert "tinything" not in plugins(env)


def test_editable_install_and_pips_exit_code(venv, tmp_path):  # noqa: F811
    env, _src = venv
    dist = tiny_distribution(tmp_path)
    assert kpihub(env, "plugins", "install", *OFFLINE, "-e", dist).returncode == 0
    try:
        assert "tinything" in plugins(env)
        # An edit to the source tree shows without a reinstall: it is an editable install.
        module = dist / "kpihub_tinything" / "__init__.py"
        module.write_text(module.read_text().replace('title = "Tiny Thing"', 'title = "Tiny Thing 2"'))
        assert plugins(env)["tinything"]["source_details"][0]["title"] == "Tiny Thing 2"
    finally:
        sh(env / "bin" / "kpihub", "plugins", "uninstall", "--yes", "kpihub-tinything")
    assert "tinything" not in plugins(env)
    missing = kpihub(env, "plugins", "install", "--no-index", "kpihub-no-such-plugin-xyz")
    assert missing.returncode == 1  # pip's own exit code
    assert "No matching distribution found for kpihub-no-such-plugin-xyz" in missing.stderr
    bad_option = kpihub(env, "plugins", "install", "--no-such-pip-option", "x")
    assert bad_option.returncode == 2 and "no such option: --no-such-pip-option" in bad_option.stderr
    usage = kpihub(env, "plugins", "install")
    assert usage.returncode == 2 and "name a distribution to install" in usage.stderr


def test_plugins_lists_a_sources_streams_and_settings_in_process(monkeypatch):
    # The same listing without a venv: types as a user reads them (rich must not eat "[str]").
    from click.testing import CliRunner

    from kpihub.cli import cli
    from kpihub.describe import type_name
    from kpihub.plugins import Registry, reset_registry
    from tests.plugins import toy

    reg = Registry(load_entrypoints=False)
    reg.register_plugin(toy, "toy")
    reset_registry(reg)
    result = CliRunner().invoke(cli, ["plugins", "--format", "json"])
    (details,) = {p["name"]: p for p in json.loads(result.output)}["toy"]["source_details"]
    settings = {s["name"]: s for s in details["settings"]}
    assert settings["token"]["secret"] and settings["token"]["env"] == "KPIHUB_TOY_TOKEN"
    assert (settings["fail_after_pages"]["type"], settings["page_size"]["default"]) == ("int | None", 50)
    assert [s["name"] for s in details["streams"]] == [s.name for s in toy.ToySource().streams(None)]
    table = CliRunner().invoke(cli, ["plugins"]).output
    assert "KPIHUB_TOY_FAIL_AFTER_PAGES" in table and "int | None" in table
    assert type_name(list[str]) == "list[str]"
