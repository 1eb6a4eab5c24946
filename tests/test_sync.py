"""The sync engine with a toy source on a fake server: incremental state, failures, chunks."""

from __future__ import annotations

import pytest

from kpihub.concurrency import interleave, prefetch
from kpihub.errors import ConfigError, SyncError, UnknownNameError
from kpihub.sync import Pipeline
from tests.conftest import make_project


def pipeline(tmp_path, server, registry, dest="duckdb", **source):
    uri = f"duckdb:///{tmp_path}/d.duckdb" if dest == "duckdb" else f"parquet:///{tmp_path}/pq"
    cfg = {"base_url": server.url, "token": server.token, "max_attempts": 2, **source}
    project = make_project(tmp_path, {"toy": cfg}, destination=uri, chunk_rows=60)
    return Pipeline(project, registry=registry)


def table_rows(p: Pipeline) -> dict[str, str]:
    with p.open_destination(read_only=True) as s:
        return {r["id"]: r["name"] for r in s.read_table("toy_items").to_pylist()}


@pytest.mark.parametrize("dest", ["duckdb", "parquet"])
def test_full_then_incremental_sync(tmp_path, toy_server, toy_registry, dest):
    p = pipeline(tmp_path, toy_server, toy_registry, dest)
    first = p.sync()
    assert first.ok and first.records == 250
    assert first.streams[0].api_total == 250
    assert len(table_rows(p)) == 250
    toy_server.touch([3, 77, 200])
    toy_server.requests.clear()
    second = p.sync()
    # GTE on the cursor re-reads the last record of the first sync; merge keeps one row each.
    assert second.ok and second.records == 4
    rows = table_rows(p)
    assert len(rows) == 250
    assert rows["it_00077"] == "Changed 77" and rows["it_00076"] == "Item 76"
    assert toy_server.requests[0].query["updated_gte"] == "2024-01-01T04:10:00Z"


def test_failure_mid_stream_keeps_committed_chunks_and_state(tmp_path, toy_server, toy_registry):
    # chunk_rows=60, page 50: pages 1-2 are committed as one chunk before page 3 fails.
    p = pipeline(tmp_path, toy_server, toy_registry, fail_after_pages=2)
    result = p.sync()
    assert not result.ok
    assert result.streams[0].error == "toy: simulated failure mid-stream"
    with p.open_destination(read_only=True) as s:
        state = s.get_state("toy.items")
        committed = s.read_table("toy_items")
    assert committed.num_rows == 100
    assert state["cursor"] == "2024-01-01T01:40:00+00:00"  # item 100: the last durable record
    with pytest.raises(SyncError, match="1 stream"):
        result.raise_for_errors()
    # Re-run without the failure: no duplicates, no gaps.
    p2 = pipeline(tmp_path, toy_server, toy_registry)
    assert p2.sync().ok
    assert len(table_rows(p2)) == 250


def test_failure_before_any_commit_leaves_no_cursor_and_records_the_failure(tmp_path, toy_server, toy_registry):
    toy_server.fail(status=500, times=99, path="/v1/items")
    p = pipeline(tmp_path, toy_server, toy_registry)
    result = p.sync()
    assert "HTTP 500" in result.streams[0].error and "after 2 attempts" in result.streams[0].error
    with p.open_destination(read_only=True) as s:
        state = s.get_state("toy.items")
    assert "cursor" not in state and state["status"] == "failed" and "HTTP 500" in state["error"]
    toy_server.clear_faults()
    assert p.sync().ok and len(table_rows(p)) == 250  # the next sync reads everything
    with p.open_destination(read_only=True) as s:
        state = s.get_state("toy.items")
    assert state["status"] == "ok" and state["error"] is None and state["cursor"]


def test_full_refresh_rereads_everything(tmp_path, toy_server, toy_registry):
    p = pipeline(tmp_path, toy_server, toy_registry)
    p.sync()
    again = p.sync(full_refresh=True)
    assert again.records == 250 and len(table_rows(p)) == 250


def test_bad_token_fails_the_stream_without_printing_it(tmp_path, toy_server, toy_registry):
    p = pipeline(tmp_path, toy_server, toy_registry, token="wrong-token-value-999")
    result = p.sync()
    error = result.streams[0].error
    assert "HTTP 401: Invalid API key provided" in error and "wrong-token-value-999" not in error


def test_unknown_source_and_stream_are_named(tmp_path, toy_server, toy_registry):
    p = pipeline(tmp_path, toy_server, toy_registry)
    with pytest.raises(UnknownNameError, match="source 'nope' is not configured"):
        p.sync(["nope"])
    with pytest.raises(UnknownNameError, match="has no stream 'orders'"):
        p.sync(streams=["orders"])


def test_missing_required_setting_is_one_line(tmp_path, toy_server, toy_registry):
    project = make_project(tmp_path, {"toy": {"base_url": toy_server.url}})
    with pytest.raises(ConfigError) as info:
        Pipeline(project, registry=toy_registry).sync()
    assert str(info.value) == (
        "source 'toy': setting 'token' is required (set it in [sources.toy] in kpihub.toml or KPIHUB_TOY_TOKEN)"
    )


def test_prefetch_propagates_errors_and_stops_the_producer():
    produced = []

    def gen():
        for i in range(100):
            produced.append(i)
            if i == 5:
                raise ValueError("boom")
            yield i

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(gen()))
    taken = []
    for item in prefetch(iter(range(1000)), depth=2):
        taken.append(item)
        if item == 3:
            break
    assert taken == [0, 1, 2, 3]


def test_prefetch_ends_its_worker_when_the_consumer_stops_near_the_end():
    import threading
    import time

    # The producer has put its last items and waits to say "done" into a full queue when the
    # consumer stops: it must end with the consumer (it used to block on that put, and close()
    # waited 60 s for it, then left it running).
    finished = threading.Event()

    def gen():
        yield from range(3)
        finished.set()

    items = prefetch(gen(), depth=2)
    assert next(items) == 0
    assert finished.wait(5)
    time.sleep(0.05)  # the worker is now at its final put, the queue full
    items.close()
    assert not [t for t in threading.enumerate() if t.name == "kpihub-prefetch" and t.is_alive()]


def test_interleave_reads_all_iterators_under_a_limit():
    import threading
    import time

    running, peak = [0], [0]
    lock = threading.Lock()

    def account(name: str, n: int):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            for i in range(n):
                time.sleep(0.005)
                yield (name, i)
        finally:
            with lock:
                running[0] -= 1

    got = list(interleave([account(f"a{k}", 5) for k in range(6)], max_workers=2))
    assert sorted(got) == sorted((f"a{k}", i) for k in range(6) for i in range(5))
    assert peak[0] == 2
    for k in range(6):  # each account's own order is kept
        assert [i for name, i in got if name == f"a{k}"] == list(range(5))


def test_interleave_workers_end_with_the_consumer():
    import threading
    import time

    def slow(name: str):
        for i in range(100):
            time.sleep(0.02)  # a request in flight when the consumer stops
            yield f"{name}{i}"

    items = interleave([slow(f"a{k}") for k in range(4)], max_workers=4)
    assert next(items).startswith("a")
    items.close()  # the consumer stops early (an error elsewhere, a graceful stop)
    assert not [t for t in threading.enumerate() if t.name == "kpihub-interleave"]


def test_interleave_raises_the_first_error():
    def ok():
        yield 1

    def bad():
        yield 2
        raise ValueError("account 42 failed")

    with pytest.raises(ValueError, match="account 42 failed"):
        list(interleave([ok(), bad()], max_workers=2))


def test_several_configured_sources_sync_side_by_side(tmp_path, toy_registry):
    from tests.plugins.toy import FakeToy

    with FakeToy(seed=1, items=120) as a, FakeToy(seed=2, items=80) as b:
        sources = {
            "toy_eu": {"type": "toy", "base_url": a.url, "token": a.token},
            "toy_us": {"type": "toy", "base_url": b.url, "token": b.token},
        }
        project = make_project(tmp_path, sources, max_parallel_sources=2)
        result = Pipeline(project, registry=toy_registry).sync()
    assert result.ok and {r.key: r.records for r in result.streams} == {"toy_eu.items": 120, "toy_us.items": 80}
    with Pipeline(project, registry=toy_registry).open_destination(read_only=True) as s:
        assert s.read_table("toy_eu_items").num_rows == 120 and s.read_table("toy_us_items").num_rows == 80


def test_report_window_rereads_the_lookback_days():
    import datetime as dt

    from kpihub.state import report_window

    today = dt.date(2026, 6, 30)
    assert report_window(None, lookback_days=7, start_date=dt.date(2026, 1, 1), today=today) == (
        dt.date(2026, 1, 1),
        today,
    )
    assert report_window(None, lookback_days=7, today=today) == (dt.date(2026, 4, 1), today)  # 90 days back
    state = {"cursor": "2026-06-20", "cursor_type": "date"}
    assert report_window(state, lookback_days=7, start_date=dt.date(2026, 1, 1), today=today) == (
        dt.date(2026, 6, 13),
        today,
    )
