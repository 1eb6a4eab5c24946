"""``kpihub demo``'s Typeform: the fake's form over the demo business's dates, synced through the
engine into DuckDB, scores the NPS, CSAT and NKI it was designed to, and its targets' baselines are
the 2026-Q1 values it gives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import kpihub_typeform
import pytest
from kpihub_typeform import source
from kpihub_typeform.fake import DEMO_TARGETS, FORM, FakeTypeform, demo_spec
from kpihub_typeform.survey import OSLO

from kpihub import DemoSpec, Pipeline, Project, SyncResult
from kpihub.testing import DEMO_BUSINESS, KPIEngine, ProjectSettings, Registry

QUARTERS = ("2025-Q1", "2025-Q2", "2026-Q1", "2026-Q2")
START, END = dt.date(2025, 1, 1), dt.date(2026, 7, 1)


def _quarters(by_start: dict[dt.date, Any]) -> dict[str, float]:
    """``{quarter's first day: value}`` as ``{"2026-Q1": value}`` for :data:`QUARTERS`."""
    named = {f"{d.year}-Q{(d.month - 1) // 3 + 1}": v for d, v in by_start.items()}
    return {q: named[q] for q in QUARTERS}


@dataclass
class Demo:
    spec: DemoSpec
    pipeline: Pipeline
    result: SyncResult
    pages: list[Any]
    values: dict[str, dict[str, float]]  # KPI -> quarter -> value


def _registry() -> Registry:
    registry = Registry(load_entrypoints=False)
    registry.register_plugin(kpihub_typeform, "typeform")
    return registry


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo's spec (through typeform.toml's ``demo``), synced as ``kpihub demo`` does: Oslo time, DuckDB."""
    spec = source().demo(seed=7)
    assert spec is not None and isinstance(spec.server, FakeTypeform)
    root = tmp_path_factory.mktemp("demo")
    zone = DEMO_BUSINESS.time_zone
    settings = ProjectSettings(destination=f"duckdb:///{root}/kpihub.duckdb", timezone=zone)
    with spec.server as server:
        project = Project(
            path=root / "kpihub.toml",
            settings=settings,
            sources={"typeform": {**spec.settings, "base_url": server.url}},
        )
        pipeline = Pipeline(project, registry=_registry())
        result = pipeline.sync()
        pages = [r for r in server.requests if r.path.endswith("/responses")]
    catalog = _registry().kpis
    with pipeline.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone=zone, catalog=catalog)
        values = {kpi: _quarters(engine.series(catalog[kpi], grain="quarter", start=START, end=END).values())
                  for kpi in ("nps", "csat", "nki")}  # fmt: skip
    yield Demo(spec, pipeline, result, pages, values)  # type: ignore[arg-type]


def test_the_demo_syncs_ok_without_waiting_for_the_rate_limit(demo: Demo) -> None:
    assert demo.result.ok, [r.error for r in demo.result.streams]
    server = demo.spec.server
    assert isinstance(server, FakeTypeform)
    assert demo.spec.settings["token"] == server.token and demo.spec.settings["form_id"] == FORM
    # Typeform's limit stays the default for real accounts; the demo raises its own.
    default = source().settings_class.model_fields["account_requests_per_second"].default
    assert default == 2 and demo.spec.settings["account_requests_per_second"] >= 100


def test_nps_is_in_the_high_20s_in_2026_q1_and_rises_a_few_points_in_q2(demo: Demo) -> None:
    nps = demo.values["nps"]
    assert 26 <= nps["2026-Q1"] <= 30
    assert 2 <= nps["2026-Q2"] - nps["2026-Q1"] <= 6
    assert nps["2025-Q1"] < nps["2025-Q2"] < nps["2026-Q1"]  # improving slowly all along
    assert nps["2025-Q1"] >= 10


def test_csat_top_two_box_share_and_nki_are_realistic(demo: Demo) -> None:
    for quarter in QUARTERS:
        assert 0.75 <= demo.values["csat"][quarter] <= 0.85, quarter  # a ratio: 0.81 is 81 %
        assert 68 <= demo.values["nki"][quarter] <= 80, quarter
    assert demo.values["csat"]["2026-Q2"] > demo.values["csat"]["2025-Q1"]


def test_the_targets_baselines_are_the_2026_q1_values_rounded(demo: Demo) -> None:
    targets = {t["kpi"]: t for t in demo.spec.targets}
    assert set(targets) == {"nps", "csat", "nki"} and all(t["period"] == "2026-Q2" for t in targets.values())
    q1 = {kpi: values["2026-Q1"] for kpi, values in demo.values.items()}
    assert targets["nps"]["baseline"] == round(q1["nps"])
    assert targets["csat"]["baseline"] == round(100 * q1["csat"], 1)  # percent targets are written as 81.2
    assert targets["nki"]["baseline"] == round(q1["nki"], 1)
    assert all(t["target"] > t["baseline"] for t in targets.values())  # all three: higher is better
    assert demo.spec.targets == DEMO_TARGETS and demo.spec.targets is not DEMO_TARGETS


def test_every_answer_arrives_exactly_once_through_the_before_walk(demo: Demo) -> None:
    server = demo.spec.server
    assert isinstance(server, FakeTypeform)
    newest_first = sorted(server.responses.values(), key=lambda r: (r["submitted_at"], r["token"]), reverse=True)
    assert 1_900 <= len(newest_first) <= 2_300
    assert [p.query["page_size"] for p in demo.pages] == ["1000"] * 3 and "before" not in demo.pages[0].query
    assert [p.query["before"] for p in demo.pages[1:]] == [newest_first[999]["token"], newest_first[1999]["token"]]
    (stream,) = demo.result.streams
    answers = {(r["token"], a["field"]["id"]) for r in newest_first for a in r["answers"]}
    assert stream.records == len(answers) == sum(len(r["answers"]) for r in newest_first)
    assert stream.duplicates == 0
    with demo.pipeline.open_destination(read_only=True) as session:
        raw = session.read_table("typeform_answers").select(["response_id", "field_id"]).to_pylist()
    assert len(raw) == len(answers) and {(r["response_id"], r["field_id"]) for r in raw} == answers


def test_the_demo_fake_is_deterministic_per_seed() -> None:
    first = demo_spec(seed=7)
    assert first.server.responses == demo_spec(seed=7).server.responses  # type: ignore[union-attr]
    assert first.server.responses != demo_spec(seed=8).server.responses  # type: ignore[union-attr]
    doubled = len(demo_spec(seed=7, scale=2).server.responses)  # type: ignore[union-attr]
    assert 1.8 <= doubled / len(first.server.responses) <= 2.2  # type: ignore[union-attr]


def _by_quarter(server: FakeTypeform, ref: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in server.responses.values():
        local = dt.datetime.fromisoformat(r["submitted_at"].replace("Z", "+00:00")).astimezone(OSLO)
        quarter = f"{local.year}-Q{(local.month - 1) // 3 + 1}"
        out.setdefault(quarter, []).extend(a["number"] for a in r["answers"] if a["field"]["ref"] == ref)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_design_holds_whatever_the_seed(seed: int) -> None:
    server = demo_spec(seed=seed).server
    assert isinstance(server, FakeTypeform)
    nps = {
        q: 100 * (sum(s >= 9 for s in v) - sum(s <= 6 for s in v)) / len(v)
        for q, v in _by_quarter(server, "nps_q").items()
    }
    assert 26 <= nps["2026-Q1"] <= 31 and 1 <= nps["2026-Q2"] - nps["2026-Q1"] <= 6
    csat = {q: sum(s >= 4 for s in v) / len(v) for q, v in _by_quarter(server, "csat_q").items()}
    assert all(0.75 <= share <= 0.85 for share in csat.values()), csat


def test_the_answers_look_like_a_feedback_forms() -> None:
    server = demo_spec(seed=7).server
    assert isinstance(server, FakeTypeform)
    rows = list(server.responses.values())
    months: dict[str, int] = {}
    for r in rows:
        months[r["submitted_at"][:7]] = months.get(r["submitted_at"][:7], 0) + 1
    assert len(months) == 18 and all(60 <= n <= 180 for n in months.values()), months
    assert 100 <= len(rows) / 18 <= 130
    hours = [dt.datetime.fromisoformat(r["submitted_at"].replace("Z", "+00:00")).astimezone(OSLO).hour for r in rows]
    assert sum(2 <= h <= 6 for h in hours) < 0.02 * len(rows)  # few answer at night
    assert all(r["landed_at"] < r["submitted_at"] for r in rows)
    answered = {
        ref: sum(any(a["field"]["ref"] == ref for a in r["answers"]) for r in rows) / len(rows)
        for ref in ("nps_q", "csat_q", "nki_q", "feedback_q", "channel_q")
    }
    assert 0.93 <= answered["nps_q"] < 1 and 0.8 <= answered["csat_q"] < 0.95 and 0.6 <= answered["nki_q"] < 0.85
    assert 0.15 <= answered["feedback_q"] <= 0.45 and 0.85 <= answered["channel_q"] < 1  # some skip each
    channels = {a["choice"]["label"] for r in rows for a in r["answers"] if a["type"] == "choice"}
    assert channels == {"Web shop", "Store", "Phone"}
    scales = {(a["field"]["ref"], a["number"]) for r in rows for a in r["answers"] if a["type"] == "number"}
    assert {s for ref, s in scales if ref == "nps_q"} == set(range(11))
    assert {s for ref, s in scales if ref == "csat_q"} == set(range(1, 6))
    assert {s for ref, s in scales if ref == "nki_q"} <= set(range(1, 11))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": dt.date(2026, 1, 1)},
        {"start": dt.date(2026, 2, 1), "end": dt.date(2026, 1, 1)},
        {"start": dt.date(2026, 1, 1), "end": dt.date(2026, 2, 1), "responses": 10},
        {"start": dt.date(2026, 1, 1), "end": dt.date(2026, 2, 1), "nps_end": 80},
    ],
)
def test_a_bad_range_or_trend_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="FakeTypeform"):
        FakeTypeform(**kwargs)


def test_since_and_until_are_inclusive_in_any_offset_and_a_fraction_of_a_second_counts() -> None:
    server = FakeTypeform(seed=3, start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 10))
    with server:
        rows = sorted(server.responses.values(), key=lambda r: r["submitted_at"])
        assert "2026-02-28T23" <= rows[0]["submitted_at"] and rows[-1]["submitted_at"] < "2026-03-10T23"  # Oslo days
        at = dt.datetime.fromisoformat(rows[5]["submitted_at"].replace("Z", "+00:00"))
        headers = {"Authorization": f"Bearer {server.token}"}

        def listed(**query: str) -> set[str]:
            body = httpx.get(
                f"{server.url}/forms/{FORM}/responses", params={"page_size": "1000", **query}, headers=headers
            )
            return {r["token"] for r in body.json()["items"]}

        oslo = at.astimezone(OSLO).isoformat()  # 2026-03-0xT..+01:00: the same instant
        assert listed(since=oslo) == {r["token"] for r in rows if r["submitted_at"] >= rows[5]["submitted_at"]}
        assert listed(until=oslo) == {r["token"] for r in rows if r["submitted_at"] <= rows[5]["submitted_at"]}
        later = (at + dt.timedelta(milliseconds=300)).isoformat()
        assert listed(since=later) == {r["token"] for r in rows if r["submitted_at"] > rows[5]["submitted_at"]}
        server.respond(2)  # after the range: the next sync's since meets them
        assert listed(since=rows[-1]["submitted_at"]) - {rows[-1]["token"]} == set(server.responses) - {
            r["token"] for r in rows
        }
