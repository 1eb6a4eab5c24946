"""``kpihub demo``'s help desk: the fake's history synced through the engine scores FCR and first
response time as designed, the demo's target baselines are its 2026-Q1 values, and it is seeded."""

from __future__ import annotations

import base64
import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kpihub_zendesk import source
from kpihub_zendesk.fake import DEMO_TARGETS, FakeZendesk, demo_spec
from kpihub_zendesk.history import business_minutes

from kpihub import DemoSpec, Pipeline, Project
from kpihub.testing import DEMO_BUSINESS, KPIEngine, ProjectSettings, Registry
from kpihub.testing.conformance import SourceConformance

OSLO = zoneinfo.ZoneInfo(DEMO_BUSINESS.time_zone)
Q1, Q2, Q3 = dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 7, 1)


class _Zendesk(SourceConformance[FakeZendesk]):
    """Not collected (no ``Test`` prefix): only its registry of the built-ins and this source."""

    source = source()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoSpec, Pipeline, Any]]:
    """The demo spec the TOML's ``[source] demo`` names, synced the way ``kpihub demo`` does."""
    spec = source().demo(seed=7, scale=1)
    assert spec is not None and isinstance(spec.server, FakeZendesk)
    root = tmp_path_factory.mktemp("demo")
    with spec.server:
        project = Project(
            path=root / "kpihub.toml",
            settings=ProjectSettings(destination=f"duckdb:///{root}/demo.duckdb", timezone=DEMO_BUSINESS.time_zone),
            sources={"zendesk": {**spec.settings, "base_url": spec.server.url}},
        )
        pipeline = Pipeline(project, registry=_Zendesk().registry())
        result = pipeline.sync()
    assert result.ok, [(r.key, r.error) for r in result.streams]
    yield spec, pipeline, result


def _quarters(pipeline: Pipeline, kpi_id: str) -> dict[dt.date, float | None]:
    catalog = Registry(load_entrypoints=False).kpis
    with pipeline.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog, timezone=DEMO_BUSINESS.time_zone)
        return engine.series(catalog[kpi_id], grain="quarter", start=Q1, end=Q3).values()


def test_fcr_is_about_72_percent_in_q1_rising_to_about_76_in_q2(demo: Any) -> None:
    values = _quarters(demo[1], "first_contact_resolution")
    q1, q2 = values[Q1], values[Q2]
    assert q1 is not None and q2 is not None
    assert 0.69 <= q1 <= 0.75 and 0.73 <= q2 <= 0.79 and q2 > q1, values


def test_first_response_is_about_two_and_a_quarter_hours_and_falling(demo: Any) -> None:
    values = _quarters(demo[1], "first_response_hours")
    q1, q2 = values[Q1], values[Q2]
    assert q1 is not None and q2 is not None
    assert 2.0 <= q1 <= 2.6 and 1.75 <= q2 <= 2.25 and q2 < q1, values


def test_the_targets_baselines_are_the_q1_values_and_the_targets_a_step_better(demo: Any) -> None:
    spec, pipeline, _ = demo
    catalog = Registry(load_entrypoints=False).kpis
    assert {t["kpi"] for t in spec.targets} == {"first_contact_resolution", "first_response_hours"}
    for row in spec.targets:
        kpi = catalog[row["kpi"]]
        q1 = _quarters(pipeline, row["kpi"])[Q1]
        assert q1 is not None
        shown = q1 * (100 if kpi.unit == "percent" else 1)  # percent targets are written as 73.4
        assert round(shown, 1) == row["baseline"], (row, shown)
        assert row["period"] == DEMO_BUSINESS.period
        better = row["target"] - row["baseline"] if kpi.direction == "higher" else row["baseline"] - row["target"]
        assert 0 < better <= 0.15 * row["baseline"], row  # better, and within one quarter's reach


def test_every_ticket_of_the_fake_is_synced_once(demo: Any) -> None:
    spec, pipeline, result = demo
    (stream,) = result.streams
    assert stream.records == len(spec.server.tickets) and stream.duplicates == 0
    with pipeline.open_destination(read_only=True) as session:
        ids = session.read_table("support_tickets").column("ticket_id").to_pylist()
    assert sorted(ids) == sorted(str(n) for n in spec.server.tickets)


def test_the_export_walk_serves_each_ticket_exactly_once() -> None:
    server = FakeZendesk(seed=7, start=dt.date(2026, 3, 1), end=dt.date(2026, 4, 30))
    with server:
        auth = base64.b64encode(f"{server.email}/token:{server.api_token}".encode()).decode()
        url = f"{server.url}/api/v2/incremental/tickets/cursor.json"
        params: dict[str, str] = {"start_time": "0", "per_page": "100"}
        seen: Counter[int] = Counter()
        with httpx.Client(headers={"Authorization": f"Basic {auth}"}) as client:
            for _ in range(100):
                body = client.get(url, params=params).raise_for_status().json()
                seen.update(t["id"] for t in body["tickets"])
                if body["end_of_stream"]:
                    break
                params = {"cursor": body["after_cursor"], "per_page": "100"}
    assert len(server.tickets) > 300
    assert set(seen) == set(server.tickets) and set(seen.values()) == {1}


def test_the_demo_is_deterministic_per_seed_and_scales() -> None:
    first = demo_spec(seed=7)
    again, other, double = demo_spec(seed=7), demo_spec(seed=8), demo_spec(seed=7, scale=2)
    servers = [s.server for s in (first, again, other, double)]
    assert all(isinstance(s, FakeZendesk) for s in servers)
    a, b, c, d = servers
    assert (a.tickets, a.metrics) == (b.tickets, b.metrics)  # type: ignore[union-attr]
    assert a.tickets != c.tickets  # type: ignore[union-attr]
    assert 4_000 <= len(a.tickets) <= 5_500 and 1.8 <= len(d.tickets) / len(a.tickets) <= 2.2  # type: ignore[union-attr]
    assert first.settings == {**again.settings} and first.targets == DEMO_TARGETS


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_history_is_consistent_ticket_by_ticket() -> None:
    server = demo_spec(seed=7).server
    assert isinstance(server, FakeZendesk)
    ids = sorted(server.tickets)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # numbered in order of creation
    created = [_at(server.tickets[n]["created_at"]) for n in ids]
    assert created == sorted(created)
    statuses: Counter[str] = Counter()
    for n in ids:
        t, m = server.tickets[n], server.metrics[n]
        local = _at(t["created_at"]).astimezone(OSLO)
        assert DEMO_BUSINESS.start <= local.date() <= DEMO_BUSINESS.end and 8 <= local.hour < 17, t
        assert t["via"]["channel"] in {"email", "web", "native_messaging", "chat", "voice", "api"}
        assert t["generated_timestamp"] - _at(t["updated_at"]).timestamp() in (0, 1, 2)
        assert m["ticket_id"] == n and m["updated_at"] == t["updated_at"]
        reply, solved = m["reply_time_in_minutes"]["calendar"], m["solved_at"]
        assert (reply is None) == (m["replies"] == 0) == (t["assignee_id"] is None)
        assert (solved is not None) == (t["status"] in ("solved", "closed")), t
        if solved is not None:
            assert m["replies"] >= 1 + m["reopens"] and _at(solved) <= _at(t["updated_at"])
            minutes = (_at(solved) - _at(t["created_at"])).total_seconds() // 60
            assert m["full_resolution_time_in_minutes"]["calendar"] == minutes
        if t["status"] == "closed":  # closed by the automation 4 days after the solve
            assert _at(t["updated_at"]) - _at(solved) >= dt.timedelta(days=4)
        statuses[t["status"]] += 1
        if local.date() >= DEMO_BUSINESS.end - dt.timedelta(days=3):
            statuses[f"last days {t['status']}"] += 1
    assert statuses["closed"] > 0.9 * len(ids) and 0 < statuses["deleted"] < 0.02 * len(ids)
    assert statuses["last days pending"] + statuses["last days open"] + statuses["last days new"] > 0
    assert statuses["last days closed"] == 0  # solved less than 4 days before the export


def test_business_minutes_count_only_weekday_hours() -> None:
    friday_4pm = int(dt.datetime(2026, 3, 6, 16, tzinfo=dt.timezone.utc).timestamp())
    monday_9am = int(dt.datetime(2026, 3, 9, 9, tzinfo=dt.timezone.utc).timestamp())
    assert business_minutes(friday_4pm, monday_9am, 0) == 120  # 16-17 Friday, 08-09 Monday
    assert business_minutes(friday_4pm, monday_9am, 7_200) == 180  # at UTC+2: 18:00 Friday to 11:00 Monday
    assert business_minutes(monday_9am, monday_9am + 600, 0) == 10


def test_history_options_do_not_mix_with_the_quick_tickets() -> None:
    with pytest.raises(ValueError, match="not both"):
        FakeZendesk(tickets=5, start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 2))
    with pytest.raises(ValueError, match="need start"):
        FakeZendesk(scale=2)
