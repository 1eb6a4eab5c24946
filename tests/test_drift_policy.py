"""Type drift against tables that already exist, in every destination: a value that no longer fits its column
fails the stream naming stream, record key and field — or, with ``on_bad_record = "quarantine"``, lands in
``_rejected`` with the reason while the rest loads; a connector that now declares an incompatible type fails
before reading anything (naming table, column and both types), quarantines what does not fit, or is rebuilt
by a full refresh."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from kpihub.sync import Pipeline
from tests.conftest import make_project
from tests.plugins import toy

KINDS = ["duckdb", "parquet", "jsonl", "csv", "arrow", "sqlite", "postgres"]


def _uri(kind: str, tmp_path, request) -> str:
    if kind == "postgres":
        return request.getfixturevalue("postgres_uri")
    return {
        "duckdb": f"duckdb:///{tmp_path}/d.duckdb",
        "sqlite": f"sqlite:///{tmp_path}/d.sqlite",
    }.get(kind, f"{kind}:///{tmp_path}/lake")


def _pipeline(uri, tmp_path, server, registry, **settings) -> Pipeline:
    cfg = {"base_url": server.url, "token": server.token, "max_attempts": 2}
    return Pipeline(make_project(tmp_path, {"toy": cfg}, destination=uri, chunk_rows=40, **settings), registry=registry)


def _read(p: Pipeline, name: str) -> list[dict]:
    with p.open_destination(read_only=True) as s:
        return s.read_table(name).to_pylist() if name in s.tables() else []


def _scores(server, values: dict[int, object]) -> None:
    """Items gain a ``score`` field (a field the toy schema does not declare: the table evolves)."""
    for i, item in server.items.items():
        item["score"] = values.get(i, i % 7)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def test_a_value_that_no_longer_fits_its_column_fails_the_stream_by_default(
    kind, tmp_path, toy_server, toy_registry, request
):
    uri = _uri(kind, tmp_path, request)
    _scores(toy_server, {})
    p = _pipeline(uri, tmp_path, toy_server, toy_registry)
    assert p.sync().ok
    assert {r["id"]: r["score"] for r in _read(p, "toy_items")}["it_00010"] == 3  # int column from the first sync
    toy_server.touch([5, 6, 7])
    toy_server.items[6]["score"] = "n/a"
    result = p.sync()
    assert not result.ok
    error = result.streams[0].error
    assert error == "stream 'items', record id='it_00006', field 'score': cannot read 'n/a' as int64"
    with p.open_destination(read_only=True) as s:
        cursor = s.get_state("toy.items")["cursor"]
    assert cursor < toy_server.items[5]["updated"].replace("Z", "+00:00")  # state did not move past the failure


def test_quarantine_keeps_what_does_not_fit_in_rejected_and_loads_the_rest(
    kind, tmp_path, toy_server, toy_registry, request
):
    uri = _uri(kind, tmp_path, request)
    _scores(toy_server, {})
    p = _pipeline(uri, tmp_path, toy_server, toy_registry, on_bad_record="quarantine")
    assert p.sync().ok
    toy_server.touch([5, 6, 7, 8, 9])
    toy_server.items[6]["score"] = "n/a"
    toy_server.items[7]["score"] = 12.5
    toy_server.items[8]["score"] = "8"  # a number sent as text still fits
    result = p.sync()
    assert result.ok, result.streams[0].error
    assert result.streams[0].rejected == 2
    assert "records quarantined to _rejected: score (2)" in result.streams[0].drift
    rows = {r["id"]: r for r in _read(p, "toy_items")}
    assert len(rows) == 250
    assert rows["it_00008"]["score"] == 8 and rows["it_00008"]["name"] == "Changed 8"
    assert rows["it_00009"]["name"] == "Changed 9"
    assert rows["it_00006"]["name"] == "Item 6"  # the stored version stays; the new one is quarantined
    rejected = sorted(_read(p, "_rejected"), key=lambda r: r["record_key"])
    assert [json.loads(r["record_key"]) for r in rejected] == [{"id": "it_00006"}, {"id": "it_00007"}]
    assert [r["reason"] for r in rejected] == [
        "stream 'items', record id='it_00006', field 'score': cannot read 'n/a' as int64",
        "stream 'items', record id='it_00007', field 'score': cannot read 12.5 as int64",
    ]
    assert {r["source_id"] for r in rejected} == {"toy"} and {r["table_name"] for r in rejected} == {"toy_items"}
    assert json.loads(rejected[0]["record"])["name"] == "Changed 6"  # the record as received, to fix and replay
    with p.open_destination(read_only=True) as s:
        cursor = s.get_state("toy.items")["cursor"]
    assert cursor == toy_server.items[9]["updated"].replace("Z", "+00:00")  # past the quarantined records


def test_a_null_primary_key_is_quarantined_with_the_reason(kind, tmp_path, toy_server, toy_registry, request):
    uri = _uri(kind, tmp_path, request)
    toy_server.items[4]["id"] = None
    p = _pipeline(uri, tmp_path, toy_server, toy_registry, on_bad_record="quarantine")
    result = p.sync()
    assert result.ok and result.streams[0].rejected == 1
    assert len(_read(p, "toy_items")) == 249
    (row,) = _read(p, "_rejected")
    assert row["reason"] == "stream 'items': record without primary key 'id'" and row["field"] == "id"
    assert json.loads(row["record"])["name"] == "Item 4"


def _declare_amount_as_text(monkeypatch) -> None:
    schema = toy.ITEMS_SCHEMA.set(toy.ITEMS_SCHEMA.get_field_index("amount"), pa.field("amount", pa.string()))
    monkeypatch.setattr(toy, "ITEMS_SCHEMA", schema)
    original = toy.ToySource.streams

    def streams(self, settings):
        out = original(self, settings)
        for s in out:
            s.schema = schema
        return out

    monkeypatch.setattr(toy.ToySource, "streams", streams)


def test_a_connector_that_now_declares_an_incompatible_type_fails_at_once_naming_both_types(
    kind, tmp_path, toy_server, toy_registry, request, monkeypatch
):
    uri = _uri(kind, tmp_path, request)
    p = _pipeline(uri, tmp_path, toy_server, toy_registry)
    assert p.sync().ok
    _declare_amount_as_text(monkeypatch)
    toy_server.touch([1])
    toy_server.requests.clear()
    result = p.sync()
    assert not result.ok
    assert result.streams[0].error == (
        "table 'toy_items', column 'amount': the table holds decimal128(38, 9), the stream now declares string, "
        "which cannot be migrated safely; run `kpihub sync --full-refresh` to rebuild it, or set "
        'on_bad_record = "quarantine" to keep the table and quarantine what does not fit'
    )
    assert not toy_server.requests  # refused before reading anything
    # With quarantine the table keeps its type; amounts that parse load, the rest are quarantined.
    toy_server.items[2]["amount"] = "12,50"
    toy_server.touch([2, 3])
    q = _pipeline(uri, tmp_path, toy_server, toy_registry, on_bad_record="quarantine")
    result = q.sync()
    assert result.ok and result.streams[0].rejected == 1
    rows = {r["id"]: r for r in _read(q, "toy_items")}
    assert Decimal(str(rows["it_00003"]["amount"])) == Decimal(toy_server.items[3]["amount"])
    (rejected,) = _read(q, "_rejected")
    assert (
        rejected["reason"]
        == "stream 'items', record id='it_00002', field 'amount': cannot read '12,50' as decimal128(38, 9)"
    )
    # A full refresh rebuilds the table with the new type.
    assert p.sync(full_refresh=True).ok
    rows = {r["id"]: r for r in _read(p, "toy_items")}
    assert rows["it_00002"]["amount"] == "12,50" and len(rows) == 250
