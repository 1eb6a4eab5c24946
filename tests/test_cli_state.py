"""``kpihub state`` / ``state show`` / ``state reset``: on DuckDB and on the Parquet files destination,
a reset makes the next ``kpihub sync`` re-read the stream from scratch (no duplicates)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kpihub.cli import cli
from kpihub.plugins import get_registry, reset_registry

DESTINATIONS = ["duckdb:///{root}/data.duckdb", "parquet:///{root}/data"]


@pytest.fixture(params=DESTINATIONS, ids=["duckdb", "parquet"])
def project(request, tmp_path, toy_server, toy_registry, monkeypatch):
    reset_registry(toy_registry)
    monkeypatch.chdir(tmp_path)
    uri = request.param.format(root=tmp_path)
    (tmp_path / "kpihub.toml").write_text(
        f'[project]\ndestination = "{uri}"\n[sources.toy]\nbase_url = "{toy_server.url}"\npage_size = 100\n'
    )
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", toy_server.token)
    return uri


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin)


def state() -> dict:
    result = run("state")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def rows_in(uri: str, table: str) -> int:
    with get_registry().destination_for(uri).open(uri, read_only=True) as session:
        return session.read_table(table).num_rows


def test_reset_makes_the_next_sync_a_full_reread(project, toy_server):
    assert run("sync").exit_code == 0
    first = state()["toy.items"]
    assert first["records"] == 250 and first["since"] is None and first["cursor"]
    toy_server.touch([3, 7])
    assert run("sync").exit_code == 0
    incremental = state()["toy.items"]
    assert incremental["since"] == first["cursor"] and incremental["records"] < 250  # the control: from the cursor
    done = run("state", "reset", "toy.items", "--yes")
    assert done.exit_code == 0, done.output
    assert done.output == "reset toy.items: the next kpihub sync re-reads it from the beginning\n"
    entry = state()["toy.items"]
    assert set(entry) == {"reset_at"}  # no cursor: the engine's first-sync path
    assert json.loads(run("streams", "toy", "--format", "json").output)[0]["cursor"] is None
    assert run("sync").exit_code == 0
    again = state()["toy.items"]
    assert again["records"] == 250 and again["since"] is None and again["cursor"] == incremental["cursor"]
    assert "reset_at" not in again
    assert rows_in(project, "toy_items") == 250  # re-read rows replace the table's: no duplicates


def test_reset_refuses_without_confirmation_and_unknown_names_change_nothing(project, monkeypatch):
    assert run("sync").exit_code == 0
    before = state()
    refused = run("state", "reset", "toy.items")  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 1
    assert refused.output == ("Error: not resetting toy.items without confirmation: run with --yes (not a terminal)\n")
    unknown_stream = run("state", "reset", "toy.nope", "--yes")
    assert unknown_stream.exit_code == 1
    assert unknown_stream.output == "Error: source 'toy' has no stream 'nope' (streams: items)\n"
    unknown_source = run("state", "reset", "nope", "--yes")
    assert unknown_source.exit_code == 1 and len(unknown_source.output.splitlines()) == 1
    assert unknown_source.output.startswith("Error: unknown source 'nope' (known: ") and "toy" in unknown_source.output
    assert state() == before
    # On a terminal it asks; "n" keeps the state, "y" resets.
    monkeypatch.setattr("kpihub.cli.state.interactive", lambda: True)
    declined = run("state", "reset", "toy.items", stdin="n\n")
    assert declined.exit_code == 1 and "Reset toy.items? The next sync re-reads it in full" in declined.output
    assert state() == before
    accepted = run("state", "reset", "toy.items", stdin="y\n")
    assert accepted.exit_code == 0 and "cursor" not in state()["toy.items"]


def test_reset_of_a_source_resets_every_stream_it_has_state_for_in_one_commit(project):
    assert run("sync").exit_code == 0
    with get_registry().destination_for(project).open(project) as session:
        # A stream the source no longer lists, and another source's: only toy's go.
        session.commit([], {"toy.retired": {"cursor": "7"}, "other.things": {"cursor": "9"}})
    shown = json.loads(run("state", "show", "toy").output)
    assert set(shown) == {"toy.items", "toy.retired"}
    assert json.loads(run("state", "show", "toy.items").output).keys() == {"toy.items"}
    done = run("state", "reset", "toy", "--yes")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("reset toy.items, toy.retired: ")
    after = state()
    assert after["toy.items"]["reset_at"] == after["toy.retired"]["reset_at"]  # one commit
    assert after["other.things"] == {"cursor": "9"}
    nothing = run("state", "reset", "nope.x", "--yes")
    assert nothing.exit_code == 1 and "unknown source 'nope'" in nothing.output


def test_bare_state_and_show_print_the_same_json(project):
    assert run("sync").exit_code == 0
    assert run("state").output == run("state", "show").output
    assert json.loads(run("state", "show").output)["toy.items"]["records"] == 250
