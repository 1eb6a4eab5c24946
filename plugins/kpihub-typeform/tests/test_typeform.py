"""The declarative Typeform source against its fake: the conformance suite Python sources pass, and
what the responses API's semantics need (the before walk, since overlap, one row per answer)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kpihub_typeform import source
from kpihub_typeform.fake import FORM, FakeTypeform

from kpihub.testing import KPIEngine, Registry
from kpihub.testing.conformance import SourceConformance


class TestTypeformConformance(SourceConformance[FakeTypeform]):
    """Every test of kpihub.testing.conformance.SourceConformance, against FakeTypeform."""

    source = source()

    def make_server(self) -> FakeTypeform:
        return FakeTypeform(seed=1)

    def settings(self, server: FakeTypeform) -> dict[str, Any]:
        # The fake has no limit of 2 a second: the budget is raised so the suite runs in seconds.
        return {"base_url": server.url, "token": server.token, "form_id": FORM, "account_requests_per_second": 1000}

    def fault_settings(self, server: FakeTypeform) -> dict[str, Any]:
        return {**self.settings(server), "page_size": 10}

    def change_data(self, server: FakeTypeform) -> None:
        server.respond(6)

    def live_changes(self, server: FakeTypeform) -> Callable[[Any], None]:
        def churn(request: Any) -> None:  # between two page requests: people answer, one is deleted
            server.respond(1)
            server.delete(1)

        return churn


def _month(p: Any, kpi_id: str) -> float:
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        series = engine.series(catalog[kpi_id], grain="month", start=dt.date(2026, 2, 1), end=dt.date(2026, 3, 1))
    (value,) = series.values().values()
    return value


def _answers(server: FakeTypeform, ref: str) -> list[float]:
    return [a["number"] for r in server.responses.values() for a in r["answers"] if a["field"]["ref"] == ref]


def test_nps_csat_and_nki_are_the_forms_answers_computed_by_hand(tmp_path: Path) -> None:
    c = TestTypeformConformance()
    with FakeTypeform(seed=2, responses=60) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
    assert {r["submitted_at"][:7] for r in server.responses.values()} == {"2026-02"}
    nps = _answers(server, "nps_q")
    promoters, detractors = sum(s >= 9 for s in nps), sum(s <= 6 for s in nps)
    # A score from −100 to +100.
    assert _month(p, "nps") == pytest.approx(100 * (promoters - detractors) / len(nps))
    csat = _answers(server, "csat_q")  # satisfied: the top two of the five stars
    assert _month(p, "csat") == pytest.approx(sum(s >= 4 for s in csat) / len(csat))
    nki = _answers(server, "nki_q")  # 1..10 scaled to 0..100, averaged
    assert _month(p, "nki") == pytest.approx(sum(100 * (s - 1) / 9 for s in nki) / len(nki))


def test_the_walk_goes_on_with_the_last_token_while_pages_are_full(tmp_path: Path) -> None:
    c = TestTypeformConformance()
    with FakeTypeform(seed=3, responses=45) as server:
        c.sync(c.pipeline(tmp_path, {**c.settings(server), "page_size": 20}))
        pages = [r for r in server.requests if r.path.endswith("/responses")]
        newest_first = sorted(server.responses.values(), key=lambda r: (r["submitted_at"], r["token"]), reverse=True)
    assert len(pages) == 3  # 20 + 20 + 5: the short page is the last
    assert "before" not in pages[0].query and pages[0].query["page_size"] == "20"
    assert [r.query["before"] for r in pages[1:]] == [newest_first[19]["token"], newest_first[39]["token"]]


def test_an_incremental_sync_asks_since_the_newest_answer_less_an_hour(tmp_path: Path) -> None:
    c = TestTypeformConformance()
    with FakeTypeform(seed=4, responses=30) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        newest = max(
            dt.datetime.fromisoformat(r["submitted_at"].replace("Z", "+00:00")) for r in server.responses.values()
        )
        server.requests.clear()
        c.sync(p)
        (first,) = [r for r in server.requests if r.path.endswith("/responses")]
    assert first.query["since"] == (newest - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_answer_is_a_row_and_unanswered_questions_are_absent(tmp_path: Path) -> None:
    c = TestTypeformConformance()
    with FakeTypeform(seed=5, responses=25) as server:
        p = c.pipeline(tmp_path, c.settings(server))
        c.sync(p)
        answers = sum(len(r["answers"]) for r in server.responses.values())
    with p.open_destination(read_only=True) as session:
        raw = session.read_table("typeform_answers").to_pylist()
        canonical = session.read_table("survey_responses").to_pylist()
    assert len(raw) == len(canonical) == answers
    texts = [r for r in raw if r["answer_type"] == "text"]
    assert texts and all(r["text"] and r["number"] is None for r in texts)
    by_item = {r["item"] for r in canonical}
    assert {"nps", "csat", "nki", "feedback_q", "channel_q"} <= by_item
    nps_rows = [r for r in canonical if r["item"] == "nps"]
    assert {(r["scale_min"], r["scale_max"]) for r in nps_rows} == {(0.0, 10.0)}
