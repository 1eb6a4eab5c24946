"""The engine's invariants, whatever the connector does (issue 13): contracts, completeness, widening."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kpihub.sync import Pipeline
from tests.conftest import StopAfterPages, make_project
from tests.plugins import toy


def pipeline(tmp_path, server, registry, dest="duckdb", chunk_rows=60, **source):
    uri = f"duckdb:///{tmp_path}/d.duckdb" if dest == "duckdb" else f"parquet:///{tmp_path}/pq"
    cfg = {"base_url": server.url, "token": server.token, "max_attempts": 2, **source}
    project = make_project(tmp_path, {"toy": cfg}, destination=uri, chunk_rows=chunk_rows)
    return Pipeline(project, registry=registry)


ORIGINAL_STREAMS = toy.ToySource.streams


def feed_orders(monkeypatch, mapping):
    """Make the toy stream feed ``orders`` through ``mapping(batch) -> dict of columns``."""

    def streams(self, settings):
        (stream,) = ORIGINAL_STREAMS(self, settings)
        stream.canonical_table = "orders"
        stream.to_canonical = lambda batch, ctx: pa.RecordBatch.from_pydict(mapping(batch))
        return [stream]

    monkeypatch.setattr(toy.ToySource, "streams", streams)


def test_a_misnamed_canonical_column_fails_the_stream_naming_it(tmp_path, toy_server, toy_registry, monkeypatch):
    # Issue 13 finding 4: "ordered_on" for "ordered_at" came out as NULL in every row, silently.
    feed_orders(monkeypatch, lambda b: {"order_id": b["id"], "ordered_on": b["updated"], "gross_amount": b["amount"]})
    result = pipeline(tmp_path, toy_server, toy_registry).sync()
    (stream,) = result.streams
    assert stream.status == "failed"
    assert stream.error.startswith(
        "source 'toy', stream 'items': to_canonical for 'orders' returned column 'ordered_on', "
        "which orders does not have"
    )


def test_a_canonical_key_column_left_out_or_uncastable_fails(tmp_path, toy_server, toy_registry, monkeypatch):
    feed_orders(monkeypatch, lambda b: {"ordered_at": b["updated"]})
    result = pipeline(tmp_path / "a", toy_server, toy_registry).sync()
    assert "did not return required column 'order_id'" in result.streams[0].error
    feed_orders(monkeypatch, lambda b: {"order_id": b["id"], "gross_amount": b["name"]})
    result = pipeline(tmp_path / "b", toy_server, toy_registry).sync()
    assert "column 'gross_amount' holds string, which cannot be cast to decimal128(38, 9)" in result.streams[0].error


def test_a_correct_mapping_fills_the_canonical_table(tmp_path, toy_server, toy_registry, monkeypatch):
    feed_orders(monkeypatch, lambda b: {"order_id": b["id"], "ordered_at": b["updated"], "gross_amount": b["amount"]})
    p = pipeline(tmp_path, toy_server, toy_registry)
    assert p.sync().ok
    with p.open_destination(read_only=True) as s:
        orders = s.read_table("orders")
    assert orders.num_rows == 250 and orders["ordered_at"].null_count == 0
    assert set(orders["source_id"].to_pylist()) == {"toy"}


def test_fewer_records_than_the_api_declares_is_incomplete_and_keeps_the_state(
    tmp_path, toy_server, toy_registry, monkeypatch
):
    p = pipeline(tmp_path, toy_server, toy_registry)
    assert p.sync().ok
    with p.open_destination(read_only=True) as s:
        before = s.get_state("toy.items")["cursor"]
    toy_server.touch([5, 6, 7])
    # The API declares two records more than its pages hold (missed while paging), beyond what the
    # paginator can see (its own guard refuses a short total within one query: toy_server.undelivered).
    read = toy.ItemsStream.read

    def short(self, ctx, state):
        ctx.report_total(2)
        yield from read(self, ctx, state)

    monkeypatch.setattr(toy.ItemsStream, "read", short)
    result = p.sync()
    (stream,) = result.streams
    assert not result.ok and stream.status == "incomplete"
    assert stream.error.startswith("read 4 distinct records but the API declared 6")
    with p.open_destination(read_only=True) as s:
        assert s.get_state("toy.items")["cursor"] == before  # not past the gap
        rows = {r["id"]: r["name"] for r in s.read_table("toy_items").to_pylist()}
    assert rows["it_00006"] == "Changed 6"  # what was read is kept


def test_a_short_total_in_a_sorted_stream_holds_the_state_though_chunks_were_committed(
    tmp_path, toy_server, toy_registry
):
    # The stream reads in cursor order, so chunks move the cursor mid-stream; which records are
    # missing is unknown, so the end of the stream puts it back where the sync started.
    p = pipeline(tmp_path, toy_server, toy_registry)
    toy_server.undelivered = 2
    result = p.sync()
    (stream,) = result.streams
    assert stream.status == "incomplete" and stream.error.startswith(
        "read 250 distinct records but the API declared 252"
    )
    with p.open_destination(read_only=True) as s:
        assert "cursor" not in s.get_state("toy.items")
        assert s.read_table("toy_items").num_rows == 250


@pytest.mark.parametrize("dest", ["duckdb", "parquet"])
def test_a_new_field_that_gets_fractions_in_a_later_commit_widens_to_float(tmp_path, toy_server, toy_registry, dest):
    # Issue 13 finding 7: {"x": 1} then {"x": 1.5} failed the stream.
    for i, item in toy_server.items.items():
        item["x"] = 1 if i <= 100 else 1.5
    p = pipeline(tmp_path, toy_server, toy_registry, dest)
    result = p.sync()
    assert result.ok, result.streams[0].error
    assert "x: int64 -> double" in result.streams[0].drift
    with p.open_destination(read_only=True) as s:
        table = s.read_table("toy_items")
    assert table.schema.field("x").type == pa.float64()
    assert pc.sum(table["x"]).as_py() == 100 * 1 + 150 * 1.5


def test_a_note_from_the_connector_reaches_the_summary_once_with_its_count(
    tmp_path, toy_server, toy_registry, monkeypatch
):
    read = toy.ItemsStream.read

    def noting(self, ctx, state):
        for page in read(self, ctx, state):
            ctx.note("items without a colour: colour stored as null", count=len(page))
            yield page

    monkeypatch.setattr(toy.ItemsStream, "read", noting)
    result = pipeline(tmp_path, toy_server, toy_registry).sync()
    assert result.ok
    assert "items without a colour: colour stored as null (250)" in result.streams[0].drift


def expecting(monkeypatch, offset):
    """The toy stream reports the platform's total of ``amount`` (off by ``offset``)."""
    from decimal import Decimal

    read = toy.ItemsStream.read

    def with_total(self, ctx, state):
        total = Decimal(0)
        for page in read(self, ctx, state):
            total += sum(Decimal(r["amount"]) for r in page)
            yield page
        ctx.expect_total("amount", total + offset)

    monkeypatch.setattr(toy.ItemsStream, "read", with_total)


def test_loaded_rows_that_match_the_platforms_total_are_ok(tmp_path, toy_server, toy_registry, monkeypatch):
    expecting(monkeypatch, 0)
    result = pipeline(tmp_path, toy_server, toy_registry).sync()
    assert result.ok and not result.streams[0].reconciliation


def test_a_total_the_loaded_rows_do_not_reach_is_a_mismatch(tmp_path, toy_server, toy_registry, monkeypatch):
    expecting(monkeypatch, 5)
    p = pipeline(tmp_path, toy_server, toy_registry)
    result = p.sync()
    (stream,) = result.streams
    assert not result.ok and stream.status == "mismatch"
    assert "amount (all rows): loaded " in stream.error and "the platform says" in stream.error
    with p.open_destination(read_only=True) as s:
        state = s.get_state("toy.items")
    (found,) = state["reconciliation"].values()
    assert found["expected"] - found["loaded"] == 5
    assert state["status"] == "mismatch"


def test_a_gap_that_a_second_read_closes_ends_ok(tmp_path, toy_server, toy_registry, monkeypatch):
    # Records deleted or moved while paging make the first pass short of the declared total;
    # the engine reads the window once more, and a complete second pass is ok (and noted).
    read, calls = toy.ItemsStream.read, []

    def short_once(self, ctx, state):
        calls.append(1)
        if len(calls) == 1:
            ctx.report_total(3)
        yield from read(self, ctx, state)

    monkeypatch.setattr(toy.ItemsStream, "read", short_once)
    p = pipeline(tmp_path, toy_server, toy_registry)
    result = p.sync()
    (stream,) = result.streams
    assert result.ok and len(calls) == 2
    assert "read again from the sync's start cursor: read 250 distinct records but the API declared 253" in stream.drift
    with p.open_destination(read_only=True) as s:
        assert s.read_table("toy_items").num_rows == 250 and s.get_state("toy.items")["cursor"]


def test_a_mismatch_that_a_second_read_resolves_ends_ok(tmp_path, toy_server, toy_registry, monkeypatch):
    from decimal import Decimal

    read, calls = toy.ItemsStream.read, []

    def off_once(self, ctx, state):
        calls.append(1)
        total = Decimal(0)
        for page in read(self, ctx, state):
            total += sum(Decimal(r["amount"]) for r in page)
            yield page
        ctx.expect_total("amount", total + (7 if len(calls) == 1 else 0))

    monkeypatch.setattr(toy.ItemsStream, "read", off_once)
    p = pipeline(tmp_path, toy_server, toy_registry)
    result = p.sync()
    (stream,) = result.streams
    assert result.ok and len(calls) == 2 and "read again from the sync's start cursor" in stream.drift
    with p.open_destination(read_only=True) as s:
        assert s.read_table("toy_items").num_rows == 250


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "jsonl", "sqlite", "postgres"])
def test_a_stopped_full_refresh_leaves_the_previous_table_and_state(kind, tmp_path, toy_server, toy_registry, request):
    # Issue 13 finding 3: Ctrl-C after the first chunk of a --full-refresh left 2,800 of 40,000 rows.
    import threading

    if kind == "postgres":
        uri = request.getfixturevalue("postgres_uri")
    else:
        uri = {"duckdb": f"duckdb:///{tmp_path}/d.duckdb", "sqlite": f"sqlite:///{tmp_path}/d.sqlite"}.get(
            kind, f"{kind}:///{tmp_path}/lake"
        )
    cfg = {"base_url": toy_server.url, "token": toy_server.token, "max_attempts": 2}
    p = Pipeline(make_project(tmp_path, {"toy": cfg}, destination=uri, chunk_rows=60), registry=toy_registry)
    assert p.sync().ok
    with p.open_destination(read_only=True) as s:
        before_rows = sorted(s.read_table("toy_items").drop_columns(["_loaded_at"]).to_pylist(), key=repr)
        before_state = s.get_state("toy.items")
    toy_server.touch([10, 20])
    stop = threading.Event()
    result = p.sync(full_refresh=True, stop=stop, progress=StopAfterPages(stop, pages=3))
    (stream,) = result.streams
    assert stream.status == "stopped" and stream.records >= 60  # a chunk was committed to the stage
    assert "the table keeps its previous contents" in stream.error
    with p.open_destination(read_only=True) as s:
        rows = sorted(s.read_table("toy_items").drop_columns(["_loaded_at"]).to_pylist(), key=repr)
        state = s.get_state("toy.items")
        assert not [t for t in s.tables() if "stage" in t]
    assert rows == before_rows
    assert state["cursor"] == before_state["cursor"] and state["records"] == before_state["records"]
    again = p.sync(full_refresh=True)  # uninterrupted: swaps in the whole new table
    assert again.ok
    with p.open_destination(read_only=True) as s:
        table = s.read_table("toy_items")
    assert table.num_rows == 250
    assert {r["id"]: r["name"] for r in table.to_pylist()}["it_00010"] == "Changed 10"


def test_a_full_refresh_short_of_the_declared_total_keeps_the_previous_table(
    tmp_path, toy_server, toy_registry, monkeypatch
):
    p = pipeline(tmp_path, toy_server, toy_registry)
    assert p.sync().ok
    with p.open_destination(read_only=True) as s:
        before = s.get_state("toy.items")["cursor"]
    del toy_server.items[100]  # gone from the API, and the API still counts it (and one more)
    read = toy.ItemsStream.read

    def short(self, ctx, state):
        ctx.report_total(2)
        yield from read(self, ctx, state)

    monkeypatch.setattr(toy.ItemsStream, "read", short)
    (stream,) = p.sync(full_refresh=True).streams
    assert stream.status == "incomplete" and stream.error.endswith("; the table keeps its previous contents")
    with p.open_destination(read_only=True) as s:
        assert s.read_table("toy_items").num_rows == 250 and s.get_state("toy.items")["cursor"] == before


def test_a_report_row_outside_the_declared_window_fails_the_stream(tmp_path):
    import datetime as dt

    import kpihub
    from kpihub.config import Project, ProjectSettings
    from kpihub.hookspecs import hookimpl
    from kpihub.plugins import Registry

    schema = pa.schema([pa.field("date", pa.date32(), nullable=False), pa.field("clicks", pa.int64())])

    class Days(kpihub.Stream):
        def read(self, ctx, state):
            since, until = ctx.report_window(state, lookback_days=1, start_date=dt.date(2026, 1, 1))
            days = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
            if state:  # the re-read also sends a day long before its window
                days.append(dt.date(2025, 12, 1))
            yield [{"date": d.isoformat(), "clicks": 1} for d in days]

    class DaysSource(kpihub.Source):
        name = "days"
        settings_class = kpihub.SourceSettings

        def streams(self, settings):
            return [Days("daily", schema, primary_key=("date",), cursor_field="date")]

    class Plugin:
        @staticmethod
        @hookimpl
        def kpihub_register_sources(register):
            register(DaysSource())

    registry = Registry(load_entrypoints=False)
    registry.register_plugin(Plugin, "days")
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/d.duckdb"),
        sources={"days": {"base_url": "http://127.0.0.1:9"}},
    )
    assert Pipeline(project, registry=registry).sync().ok
    (stream,) = Pipeline(project, registry=registry).sync().streams
    assert stream.status == "failed"
    assert "a row for date 2025-12-01 is outside the window" in stream.error
