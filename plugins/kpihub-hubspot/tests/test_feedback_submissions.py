"""HubSpot feedback submissions -> survey_responses, against the fake HubSpot (CRM v3 wire format)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from kpihub_hubspot import HubSpotSettings, HubSpotSource
from kpihub_hubspot.fake import FakeHubSpot, HubSpotData, Record, to_ms
from kpihub_hubspot.feedback import DEFAULT_ITEMS, FeedbackItem, survey_responses

from kpihub import Pipeline, Project
from kpihub.testing import KPIEngine, Normalizer, ProjectSettings, Registry, build_source_settings
from kpihub.testing.conformance import SourceConformance

FIXTURES = Path(__file__).parent / "fixtures"
UTC = dt.timezone.utc


class TestHubSpotFeedbackConformance(SourceConformance[FakeHubSpot]):
    """The whole suite with feedback submissions on (a small portal, so it runs in seconds)."""

    source = HubSpotSource()
    rate_limited_path = r"/feedback_submissions/search$"

    def make_server(self) -> FakeHubSpot:
        return FakeHubSpot(seed=5, data=HubSpotData(seed=5, contacts=200, feedback=300))

    def settings(self, server: FakeHubSpot) -> dict[str, Any]:
        return {
            "base_url": server.url,
            "token": server.token,
            "rate_budget": False,
            "search_lag_seconds": 0,
            "feedback_submissions": True,
        }

    def fault_settings(self, server: FakeHubSpot) -> dict[str, Any]:
        return {**self.settings(server), "page_size": 20}

    def change_data(self, server: FakeHubSpot) -> None:
        server.data.touch("feedback_submissions", 0.05, seed=4)
        server.data.new_feedback(12)
        server.data.touch("contacts", 0.05)

    def live_changes(self, server: FakeHubSpot):
        return server.live_changes(0.02, add=1, delete=1)


def _pipeline(tmp_path: Path, server: FakeHubSpot, **settings: Any) -> Pipeline:
    import kpihub_hubspot

    registry = Registry(load_entrypoints=False)
    registry.register_plugin(kpihub_hubspot, "hubspot", distribution="kpihub-hubspot")
    source = {
        "base_url": server.url,
        "token": server.token,
        "requests_per_second": None,
        "rate_budget": False,
        "search_lag_seconds": 0,
        "feedback_submissions": True,
        **settings,
    }
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/hs.duckdb"),
        sources={"hubspot": source},
    )
    return Pipeline(project, registry=registry)


def _submit(data: HubSpotData, rid: int, kind: str, value: str, when: dt.datetime, survey: str = "3") -> None:
    ms = to_ms(when)
    props = {
        "hs_survey_type": kind,
        "hs_survey_id": survey,
        "hs_value": value,
        "hs_contact_id": "101",
        "hs_submission_timestamp": ms,
        "hs_createdate": ms + 5_000,
        "hs_lastmodifieddate": ms + 5_000,
    }
    data.stores["feedback_submissions"].add(Record(rid, props, ms + 5_000, ms + 5_000))


def _rows(p: Pipeline, table: str) -> list[dict[str, Any]]:
    with p.open_destination(read_only=True) as session:
        return session.read_table(table).to_pylist()


def test_nps_from_feedback_submissions_computed_by_hand(tmp_path: Path) -> None:
    data = HubSpotData(seed=1, contacts=5)
    may = dt.datetime(2026, 5, 10, 9, tzinfo=UTC)
    # May's NPS answers 10, 9, 9, 8, 7, 6, 2: promoters 3 (9-10), detractors 2 (0-6), of 7 answers.
    for i, value in enumerate(["10", "9", "9", "8", "7", "6", "2"]):
        _submit(data, 600 + i, "NPS", value, may + dt.timedelta(hours=i))
    _submit(data, 700, "CSAT", "2", may)  # other surveys do not count towards NPS
    _submit(data, 701, "NPS", "0", dt.datetime(2026, 4, 30, 23, 59, tzinfo=UTC))  # April's
    data.stores["feedback_submissions"].reindex()
    with FakeHubSpot(data=data) as server:
        p = _pipeline(tmp_path, server)
        result = p.sync(streams=["feedback_submissions"])
    assert result.ok, result.streams[0].error
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)
        series = engine.series(catalog["nps"], grain="month", start=dt.date(2026, 4, 1), end=dt.date(2026, 6, 1))
    values = series.values()
    assert list(values.values()) == pytest.approx([-100.0, 100 * (3 - 2) / 7])  # April: one detractor


def test_each_survey_type_is_its_item_on_hubspots_scale(tmp_path: Path) -> None:
    data = HubSpotData(seed=2, contacts=20, feedback=120)
    with FakeHubSpot(data=data) as server:
        p = _pipeline(tmp_path, server)
        result = p.sync(streams=["feedback_submissions"])
        search = next(r for r in server.requests if r.path == "/crm/v3/objects/feedback_submissions/search")
    assert result.ok, result.streams[0].error
    body = search.json()
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert {"hs_survey_type", "hs_value", "hs_submission_timestamp", "hs_contact_id"} <= set(body["properties"])
    records = data.stores["feedback_submissions"].records
    rows = {r["response_id"]: r for r in _rows(p, "survey_responses")}
    assert len(rows) == len(records)
    scales = {"nps": (0.0, 10.0), "csat": (0.0, 2.0), "ces": (1.0, 7.0), "custom": (None, None)}
    for rid, record in records.items():
        row = rows[str(rid)]
        assert row["item"] == record.props["hs_survey_type"].lower()
        assert (row["scale_min"], row["scale_max"]) == scales[row["item"]]
        assert row["score"] == float(record.props["hs_value"])
        assert row["respondent_id"] == record.props["hs_contact_id"]
        assert row["responded_at"] == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(
            milliseconds=record.props["hs_submission_timestamp"]
        )
    custom = sum(r.props["hs_survey_type"] == "CUSTOM" for r in records.values())
    (stream,) = result.streams
    assert custom and f"kept under the type, no scale ({custom})" in str(stream.drift)


def test_a_custom_survey_can_be_mapped_by_its_id(tmp_path: Path) -> None:
    data = HubSpotData(seed=3, contacts=5)
    when = dt.datetime(2026, 6, 1, tzinfo=UTC)
    _submit(data, 900, "CUSTOM", "9", when, survey="13")
    _submit(data, 901, "CUSTOM", "4", when, survey="14")
    data.stores["feedback_submissions"].reindex()
    items = {"custom:13": {"item": "nps", "scale_min": 0, "scale_max": 10}}  # keys are case-insensitive
    with FakeHubSpot(data=data) as server:
        p = _pipeline(tmp_path, server, feedback_items={**DEFAULT_ITEMS, **items})
        assert p.sync(streams=["feedback_submissions"]).ok
    rows = {r["response_id"]: r for r in _rows(p, "survey_responses")}
    assert (rows["900"]["item"], rows["900"]["scale_max"]) == ("nps", 10.0)
    assert (rows["901"]["item"], rows["901"]["scale_max"]) == ("custom", None)


def test_a_score_outside_the_configured_scale_fails_naming_the_submission(tmp_path: Path) -> None:
    data = HubSpotData(seed=4, contacts=5)
    _submit(data, 950, "CSAT", "0", dt.datetime(2026, 6, 2, tzinfo=UTC))  # HubSpot's CSAT runs 0..2
    data.stores["feedback_submissions"].reindex()
    with FakeHubSpot(data=data) as server:
        p = _pipeline(tmp_path, server, feedback_items={"CSAT": {"item": "csat", "scale_min": 1, "scale_max": 5}})
        (stream,) = p.sync(streams=["feedback_submissions"]).streams
    assert stream.status != "ok"
    assert "record id='950', field 'hs_value': '0' of a CSAT survey lies outside the item's scale 1..5" in stream.error


def test_the_fixture_page_maps_hubspots_example_submission() -> None:
    page = json.loads((FIXTURES / "feedback_submissions_search_page.json").read_text())
    settings = build_source_settings("hubspot", HubSpotSettings, {"token": "pat-x", "feedback_submissions": True})
    stream = next(s for s in HubSpotSource().streams(settings) if s.name == "feedback_submissions")
    normalizer = Normalizer(stream.name, stream.schema, primary_key=("id",), wire_strings=True)
    rows, unmapped = survey_responses(normalizer.to_batch(page["results"]), DEFAULT_ITEMS)
    csat, nps = rows.to_pylist()
    assert unmapped == 0 and page["total"] == 2
    assert (csat["response_id"], csat["item"], csat["score"], csat["scale_max"]) == ("512", "csat", 2.0, 2.0)
    # No hs_submission_timestamp on the record: hs_createdate (when it was written) stands in.
    assert csat["responded_at"] == dt.datetime(2019, 10, 30, 3, 30, 17, 883000, tzinfo=UTC)
    assert (nps["item"], nps["score"], nps["respondent_id"]) == ("nps", 6.0, "951")


def test_off_by_default_and_the_scope_is_checked_only_when_on(tmp_path: Path) -> None:
    with FakeHubSpot(contacts=5) as server:
        off = build_source_settings("hubspot", HubSpotSettings, {"token": server.token})
        assert "feedback_submissions" not in [s.name for s in HubSpotSource().streams(off)]
        server.scopes.remove("crm.objects.feedback_submissions.read")
        p = _pipeline(tmp_path, server, token="pat-na1-fake-token")
        source, settings = p.resolve_source("hubspot")
        with p.requester("hubspot", source, settings) as http:
            (on,) = source.diagnose(settings, http)
            (quiet,) = source.diagnose(settings.model_copy(update={"feedback_submissions": False}), http)
    assert on.level == "error" and "crm.objects.feedback_submissions.read (for feedback_submissions)" in on.message
    assert quiet.level == "ok"


def test_a_scale_must_run_upwards() -> None:
    with pytest.raises(ValueError, match="scale_min 5.0 must be below scale_max 1.0"):
        FeedbackItem(item="csat", scale_min=5, scale_max=1)
