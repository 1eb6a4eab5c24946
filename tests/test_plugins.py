"""The plugin manager: entry points, broken plugins, name clashes, listing."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import types

import pytest
from click.testing import CliRunner

import kpihub
from kpihub.cli import cli
from kpihub.errors import PluginError, UnknownNameError
from kpihub.plugins import Registry, reset_registry


class FakeDist:
    """A stand-in distribution with entry points (as pluggy's own tests do)."""

    def __init__(self, name: str, eps: list[tuple[str, str]]) -> None:
        self.metadata = {"Name": name}
        self.version = "1.2.3"
        self.entry_points = [importlib.metadata.EntryPoint(n, v, "kpihub") for n, v in eps]


@pytest.fixture
def fake_dists(monkeypatch):
    dists: list[FakeDist] = []
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: list(dists))
    return dists


@pytest.fixture
def plugin_modules(monkeypatch, tmp_path):
    """Write plugin modules to a directory on sys.path (imported for real by the entry point)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def add(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.delitem(sys.modules, name, raising=False)

    yield add
    for path in tmp_path.glob("*.py"):
        sys.modules.pop(path.stem, None)


def test_entry_point_plugin_is_loaded_and_attributed(fake_dists):
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "tests.plugins.toy")]))
    reg = Registry()
    assert "toy" in reg.sources
    info = reg.plugins["toy"]
    assert (info.distribution, info.version, info.sources) == ("kpihub-toy", "1.2.3", ["toy"])
    assert info.hooks == ["kpihub_register_sources"]
    assert reg.plugins["kpihub.default_plugins.destinations"].destinations == ["duckdb", "files", "adbc"]


def test_plugin_failing_to_import_is_named_and_others_work(fake_dists):
    fake_dists.append(FakeDist("kpihub-broken", [("broken", "tests.plugins.does_not_exist")]))
    reg = Registry()
    (error,) = reg.errors
    assert str(error).startswith(
        "error loading kpihub plugin 'broken' from kpihub-broken 1.2.3: ModuleNotFoundError: No module named"
    )
    assert "duckdb" in reg.destinations  # everything else still loads
    with pytest.raises(PluginError, match="plugin 'broken'"):
        reg.source("broken")


def test_plugin_raising_on_import(fake_dists, plugin_modules):
    plugin_modules("kpihub_raises", "raise RuntimeError('missing API key at import time')")
    fake_dists.append(FakeDist("kpihub-raises", [("raises", "kpihub_raises")]))
    (error,) = Registry().errors
    assert "from kpihub-raises 1.2.3: RuntimeError: missing API key at import time" in str(error)


def test_a_name_registered_twice_names_both_plugins(fake_dists, plugin_modules):
    plugin_modules(
        "kpihub_dup",
        "import kpihub\nfrom kpihub.destinations.duckdb import DuckDBDestination\n"
        "@kpihub.hookimpl\ndef kpihub_register_destinations(register):\n"
        "    register(DuckDBDestination())\n",
    )
    fake_dists.append(FakeDist("kpihub-dup", [("dup", "kpihub_dup")]))
    reg = Registry()
    (error,) = reg.errors
    assert str(error) == (
        "plugin 'dup' (kpihub-dup 1.2.3) registers destination 'duckdb', already registered by "
        "plugin 'kpihub.default_plugins.destinations'"
    )


def test_misspelled_hook_fails_loudly(fake_dists, plugin_modules):
    plugin_modules("kpihub_typo", "import kpihub\n@kpihub.hookimpl\ndef kpihub_register_source(register):\n    pass\n")
    fake_dists.append(FakeDist("kpihub-typo", [("typo", "kpihub_typo")]))
    with pytest.raises(Exception, match="kpihub_register_source"):
        Registry()


def test_disable_and_load_only(fake_dists, monkeypatch):
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "tests.plugins.toy")]))
    monkeypatch.setenv("KPIHUB_DISABLE_PLUGINS", "toy")
    assert "toy" not in Registry().sources
    monkeypatch.delenv("KPIHUB_DISABLE_PLUGINS")
    monkeypatch.setenv("KPIHUB_LOAD_PLUGINS", "other")
    assert "toy" not in Registry().sources


def test_unknown_names_list_what_is_known(registry):
    with pytest.raises(
        UnknownNameError, match=r"source 'ga4' is not registered by any plugin \(known: none installed\)"
    ):
        registry.source("ga4")
    with pytest.raises(UnknownNameError, match="no destination handles scheme 'bigquery'"):
        registry.destination_for("bigquery://p/d")


def test_cli_plugins_lists_and_reports_broken(fake_dists):
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "tests.plugins.toy")]))
    fake_dists.append(FakeDist("kpihub-broken", [("broken", "tests.plugins.does_not_exist")]))
    reset_registry(None)
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    data = {p["name"]: p for p in json.loads(result.output)}
    assert data["toy"]["sources"] == ["toy"] and data["toy"]["version"] == "1.2.3"
    assert "No module named" in data["broken"]["error"]
    assert result.exit_code == 1
    only_kpis = CliRunner().invoke(cli, ["plugins", "--json", "--all", "--hook", "kpihub_register_kpis"])
    # Every built-in but the destinations registers KPIs; the toy plugin registers none.
    from kpihub.plugins import DEFAULT_PLUGINS

    assert [p["name"] for p in json.loads(only_kpis.output)] == [
        m for m in DEFAULT_PLUGINS if m != "kpihub.default_plugins.destinations"
    ]
    assert "kpihub.default_plugins.crm_kpis" in DEFAULT_PLUGINS
    # A command that does not need the broken plugin still works, with a one-line warning.
    reset_registry(None)
    result = CliRunner().invoke(cli, ["kpis", "--list"])
    assert result.exit_code == 0, result.output
    assert "win_rate" in result.output


def test_public_api_is_exported():
    names = sorted(n for n in dir(kpihub) if not n.startswith("_") and n not in {"annotations"})
    modules = {n for n in names if isinstance(getattr(kpihub, n), types.ModuleType)}
    assert sorted(set(names) - modules) == sorted(set(kpihub.__all__) - {"__version__"})


def test_sync_with_a_broken_source_plugin_is_one_line(fake_dists, plugin_modules, tmp_path, monkeypatch):
    plugin_modules("kpihub_toy_broken", "raise ImportError('kpihub-toy needs thinglib>=2')")
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "kpihub_toy_broken")]))
    reset_registry(None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kpihub.toml").write_text('[sources.toy]\nbase_url = "http://127.0.0.1:9"\n')
    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == (
        "Error: error loading kpihub plugin 'toy' from kpihub-toy 1.2.3: ImportError: kpihub-toy needs thinglib>=2"
    )
    assert lines[0].startswith("Warning: error loading kpihub plugin 'toy'")
    assert "Traceback" not in result.output


def test_a_plugin_kpi_registered_through_the_hook_computes_like_a_built_in(fake_dists, plugin_modules):
    import datetime as dt

    import duckdb

    from kpihub.kpis.engine import KPIEngine
    from tests.kpi_data import load, ts

    plugin_modules(
        "kpihub_sdr",
        "import kpihub\nfrom kpihub.kpis.spec import KPI, Measure\n"
        "@kpihub.hookimpl\ndef kpihub_register_kpis(register):\n"
        "    register(KPI('sql_share', 'SQL share of leads', 'SQLs / leads', 'percent', 'higher', 'derived',\n"
        "                 expr='sqls / leads', stage='Act', reference='our SDR team'))\n",
    )
    fake_dists.append(FakeDist("kpihub-sdr", [("sdr", "kpihub_sdr")]))
    reg = Registry()
    assert reg.plugins["sdr"].kpis == ["sql_share"] and not reg.errors
    con = duckdb.connect()
    rows = [("a", "2024-01-02", "2024-01-09"), ("b", "2024-01-03", None), ("c", "2024-01-04", None)]
    load(
        con,
        "crm_contacts",
        [{"contact_id": c, "became_lead_at": ts(lead), "became_sql_at": ts(s)} for c, lead, s in rows],
    )
    jan = dt.date(2024, 1, 1)
    series = KPIEngine(con, catalog=reg.kpis).series(
        reg.kpi("sql_share"), grain="month", start=jan, end=dt.date(2024, 2, 1)
    )
    assert series.values() == {jan: pytest.approx(1 / 3)}  # 1 SQL of 3 leads


def test_trace_plugins_logs_every_hook_call(fake_dists, monkeypatch):
    # docs/plugin_hooks.md: KPIHUB_TRACE_PLUGINS=1 with --debug logs every hook call (pluggy's tracing).
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "tests.plugins.toy")]))
    monkeypatch.setenv("KPIHUB_TRACE_PLUGINS", "1")
    reset_registry(None)
    result = CliRunner().invoke(cli, ["--debug", "plugins", "--json"])
    assert result.exit_code == 0, result.output
    calls = [line for line in result.stderr.splitlines() if "kpihub_register_" in line]
    assert any("kpihub_register_sources" in c for c in calls), result.stderr
    assert any("kpihub_register_destinations" in c for c in calls)
    monkeypatch.delenv("KPIHUB_TRACE_PLUGINS")
    reset_registry(None)
    quiet = CliRunner().invoke(cli, ["--debug", "plugins", "--json"])
    assert "kpihub_register_sources [hook]" not in quiet.stderr


def test_a_hookwrapper_wraps_each_plugins_registration(fake_dists, plugin_modules):
    # Hooks are called through pluggy, one plugin at a time, so a wrapper wraps each call and
    # registrations stay attributed to the plugin that made them.
    plugin_modules(
        "watcher",
        "import kpihub\n"
        "calls = []\n"
        "@kpihub.hookimpl(wrapper=True)\n"
        "def kpihub_register_sources(register):\n"
        "    calls.append('before')\n"
        "    result = yield\n"
        "    calls.append('after')\n"
        "    return result\n",
    )
    fake_dists.append(FakeDist("kpihub-toy", [("toy", "tests.plugins.toy")]))
    fake_dists.append(FakeDist("kpihub-watcher", [("watcher", "watcher")]))
    reg = Registry()
    implementations = [i for i in reg.pm.hook.kpihub_register_sources.get_hookimpls() if not i.wrapper]
    assert len(implementations) >= 1
    assert sys.modules["watcher"].calls == ["before", "after"] * len(implementations)
    assert reg.plugins["toy"].sources == ["toy"] and reg.plugins["watcher"].sources == []
