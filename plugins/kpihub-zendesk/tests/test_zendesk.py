"""The declarative Zendesk source against its fake: the conformance suite Python sources pass, and
what the export's semantics need (cursor walk, end_of_stream, metric sets, deleted tickets)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kpihub_zendesk import source
from kpihub_zendesk.fake import FakeZendesk

from kpihub.testing import KPIEngine, Registry
from kpihub.testing.conformance import SourceConformance


class TestZendeskConformance(SourceConformance[FakeZendesk]):
    """Every test of kpihub.testing.conformance.SourceConformance, against FakeZendesk."""

    source = source()
    rate_limited_path = r"/incremental/"

    def make_server(self) -> FakeZendesk:
        return FakeZendesk(seed=1)

    def settings(self, server: FakeZendesk) -> dict[str, Any]:
        # The fake has no rate limit of 10 a minute: the budget is raised so the suite runs in seconds.
        return {
            "base_url": server.url,
            "email": server.email,
            "api_token": server.api_token,
            "export_requests_per_minute": 100_000,
        }

    def fault_settings(self, server: FakeZendesk) -> dict[str, Any]:
        return {**self.settings(server), "per_page": 10}

    def change_data(self, server: FakeZendesk) -> None:
        server.touch(fraction=0.05, new=5)
        server.delete(2)

    def live_changes(self, server: FakeZendesk) -> Callable[[Any], None]:
        def churn(request: Any) -> None:  # between two page requests: agents work on, a ticket goes
            server.touch(fraction=0.02, new=1)
            server.delete(1)

        return churn


def _month_values(p: Any, kpi_id: str) -> dict[dt.date, float]:
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        series = engine.series(catalog[kpi_id], grain="month", start=dt.date(2026, 1, 1), end=dt.date(2026, 2, 1))
        return series.values()


def test_deleted_tickets_leave_the_kpis_and_metrics_feed_first_response(tmp_path: Path) -> None:
    c = TestZendeskConformance()
    with FakeZendesk(seed=3, tickets=40) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        server.delete(4)
        c.sync(p)
        live = [t for t in server.tickets.values() if t["status"] != "deleted"]
        answered = [
            server.metrics[t["id"]] for t in live if server.metrics[t["id"]]["reply_time_in_minutes"]["calendar"]
        ]
    # By hand from the fake's own data: every ticket was created in January 2026.
    assert {t["created_at"][:7] for t in server.tickets.values()} == {"2026-01"}
    assert _month_values(p, "tickets") == {dt.date(2026, 1, 1): len(live)}
    hours = sum(m["reply_time_in_minutes"]["calendar"] for m in answered) / 60 / len(answered)
    (value,) = _month_values(p, "first_response_hours").values()
    assert value == pytest.approx(hours)
    with p.open_destination(read_only=True) as session:
        rows = session.read_table("support_tickets").to_pylist()
    assert sum(r["status"] == "deleted" for r in rows) == 4  # kept, marked: a deletion is not a silent gap


def test_the_export_walks_the_cursor_until_end_of_stream(tmp_path: Path) -> None:
    c = TestZendeskConformance()
    with FakeZendesk(seed=4, tickets=95) as server:
        c.sync(c.pipeline(tmp_path, {**c.settings(server), "per_page": 20}))
        pages = [r for r in server.requests if r.path.endswith("/cursor.json")]
    assert len(pages) == 5  # 20 + 20 + 20 + 20 + 15: the fifth says end_of_stream
    assert pages[0].query["start_time"] == "0" and "cursor" not in pages[0].query
    assert all("start_time" not in r.query and r.query["cursor"] for r in pages[1:])
    assert {r.query["include"] for r in pages} == {"metric_sets"}


def test_an_incremental_sync_starts_at_the_newest_generated_timestamp(tmp_path: Path) -> None:
    c = TestZendeskConformance()
    with FakeZendesk(seed=5, tickets=30) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        newest = max(t["generated_timestamp"] for t in server.tickets.values())
        server.requests.clear()
        c.sync(p)
        (first,) = [r for r in server.requests if r.path.endswith("/cursor.json")]
    assert first.query["start_time"] == str(newest)  # inclusive: the tie is read again and kept once


def test_the_cursor_is_the_export_time_and_an_older_unix_cursor_still_resumes(tmp_path: Path) -> None:
    """``generated_timestamp`` is unix seconds on the wire and a time in the state (``kpihub streams``
    and the report's "data through" read it as a date); a state committed as the unix number resumes."""
    import datetime as dt

    c = TestZendeskConformance()
    with FakeZendesk(seed=5, tickets=30) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        result = c.sync(p)
        newest = max(t["generated_timestamp"] for t in server.tickets.values())
        (stream,) = result.streams
        assert stream.cursor == dt.datetime.fromtimestamp(newest, dt.timezone.utc)
        with p.open_destination() as session:  # the state as the unix-number cursor of before
            (key,) = session.all_state()
            entry = {**(session.get_state(key) or {}), "cursor": newest - 600, "cursor_type": "int"}
            session.commit([], {key: entry})
        server.requests.clear()
        again = c.sync(p)
        (first,) = [r for r in server.requests if r.path.endswith("/cursor.json")]
    assert first.query["start_time"] == str(newest - 600) and again.ok
    assert again.streams[0].cursor == dt.datetime.fromtimestamp(newest, dt.timezone.utc)
