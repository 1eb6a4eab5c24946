"""``kpihub streams [SOURCE]``: each stream's sync mode, key, cursor field, canonical table and the
cursor the destination committed."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

import kpihub
from kpihub.cli import cli
from kpihub.plugins import reset_registry


@pytest.fixture
def project(tmp_path, toy_server, toy_registry, monkeypatch):
    reset_registry(toy_registry)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kpihub.toml").write_text(
        f'[project]\ndestination = "duckdb:///data.duckdb"\n[sources.toy]\nbase_url = "{toy_server.url}"\n'
    )
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", toy_server.token)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def listing(*args: str) -> list[dict]:
    result = run("streams", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_streams_of_a_configured_source_with_the_committed_cursor(project):
    before = run("streams", "toy", "--format", "json")
    assert "no state read" in before.stderr  # no sync yet: said, not an error
    (items,) = json.loads(before.stdout)
    assert {k: items[k] for k in ("source", "type", "configured", "name", "sync_mode", "write_mode")} == {
        "source": "toy",
        "type": "toy",
        "configured": True,
        "name": "items",
        "sync_mode": "incremental",
        "write_mode": "merge",
    }
    assert (items["primary_key"], items["cursor_field"], items["cursor"]) == (["id"], "updated", None)
    assert run("sync").exit_code == 0
    state = json.loads(run("state").output)
    (items,) = listing("toy")
    assert items["cursor"] == state["toy.items"]["cursor"] and items["status"] == "ok"
    table = run("streams", "toy")
    assert table.exit_code == 0
    line = next(line for line in table.stdout.splitlines() if "items" in line)
    assert line.split()[:5] == ["toy", "items", "incremental", "(merge)", "id"]
    assert "updated" in line and "2024-01-01 04:10:00 UTC" in line


class _Gadgets:
    """An installed source the project does not configure: a full stream, and one its settings name."""

    class Settings(kpihub.SourceSettings):
        extra_stream: str | None = None

    class Source(kpihub.Source):
        name = "gadgets"

        def streams(self, settings):
            schema = pa.schema([("id", pa.string())])
            found = [kpihub.Stream("catalog", schema, primary_key=("id",), canonical_table=None)]
            if settings.extra_stream:
                found.append(kpihub.Stream(settings.extra_stream, schema, cursor_field="id"))
            return found

    Source.settings_class = Settings

    @staticmethod
    @kpihub.hookimpl
    def kpihub_register_sources(register):
        register(_Gadgets.Source())


def test_every_installed_source_is_listed_and_a_full_stream_says_so(project, toy_registry):
    toy_registry.register_plugin(_Gadgets, "gadgets")
    rows = listing()
    by = {(r["source"], r["name"]): r for r in rows}
    assert [r["source"] for r in rows] == ["toy", "gadgets"]  # the configured first, then the installed
    catalog = by[("gadgets", "catalog")]
    assert (catalog["configured"], catalog["sync_mode"], catalog["write_mode"]) == (False, "full", "replace")
    assert catalog["cursor_field"] is None and catalog["cursor"] is None
    table = run("streams")
    assert "full (replace)" in next(line for line in table.stdout.splitlines() if "catalog" in line)
    assert "• Not in kpihub.toml (their defaults' streams; state under their own name): gadgets" in table.stdout
    # Configured, its settings add a stream; the state of a stream it no longer lists is still shown.
    (project / "kpihub.toml").write_text(
        (project / "kpihub.toml").read_text()
        + '[sources.shop]\ntype = "gadgets"\nextra_stream = "orders"\nbase_url = "http://127.0.0.1:9"\n'
    )
    from kpihub.destinations.duckdb import DuckDBDestination

    with DuckDBDestination().open("duckdb:///data.duckdb", root=project) as session:
        session.commit([], {"shop.orders": {"cursor": "o-17"}, "shop.retired": {"cursor": "3"}})
    shop = {r["name"]: r for r in listing("shop")}
    assert set(shop) == {"catalog", "orders", "retired"}
    assert (shop["orders"]["sync_mode"], shop["orders"]["write_mode"], shop["orders"]["cursor"]) == (
        "incremental",
        "append",
        "o-17",
    )
    assert (shop["retired"]["sync_mode"], shop["retired"]["note"], shop["retired"]["cursor"]) == (
        "?",
        "in the state only",
        "3",
    )
    assert shop["catalog"]["note"] is None
    # Asked by the plugin's name: the sources of that type (configured as "shop", not listed again as itself).
    assert {r["source"] for r in listing("gadgets")} == {"shop"}


def test_a_source_whose_secret_is_missing_is_listed_from_its_defaults(project, monkeypatch):
    monkeypatch.delenv("KPIHUB_TOY_TOKEN")
    (items,) = listing("toy")
    assert items["name"] == "items" and "settings do not validate here" in items["note"]
    assert "KPIHUB_TOY_TOKEN" in items["note"] or "token" in items["note"]


def test_unknown_source_is_one_line_naming_the_known_ones(project):
    result = run("streams", "nope")
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("Error: unknown source 'nope' (configured: toy; installed: ") and line.endswith(
        "installed: toy)"
    )
    assert "Traceback" not in result.output
