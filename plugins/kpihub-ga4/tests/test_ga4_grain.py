"""GA4 reports with a dimension the canonical table does not have (issue 13, finding 2).

Asking GA4 for one more dimension splits each row into several whose additive metrics sum
to the coarser row (the Data API returns one row per distinct combination of the requested
dimensions: https://developers.google.com/analytics/devguides/reporting/data/v1/basics).
Those rows share one ``web_traffic_daily`` key; they must add up, not overwrite each other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

import pytest
from click.testing import CliRunner
from kpihub_ga4.fake import FakeGA4

from kpihub.testing import cli

from . import test_ga4

LANDING_PAGES = ("/", "/pricing", "/blog/kpis")


class FakeGA4LandingPages(FakeGA4):
    """The fake GA4, with ``landingPage`` as a dimension that splits every row in three."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for prop, rows in self.rows.items():
            split = []
            for row in rows:
                sessions = row["sessions"]
                parts = [sessions // 3, sessions // 3, sessions - 2 * (sessions // 3)]
                for page, part in zip(LANDING_PAGES, parts):
                    if part:
                        split.append({**row, "landingPage": page, "sessions": part})
            self.rows[prop] = split


def sessions_by_day(p) -> dict[dt.date, int]:
    with p.open_destination(read_only=True) as session:
        rows = session.read_table("web_traffic_daily").to_pylist()
    out: dict[dt.date, int] = defaultdict(int)
    for r in rows:
        out[r["date"]] += r["sessions"]
    return dict(out)


def truth(server: FakeGA4, since: str) -> dict[dt.date, int]:
    out: dict[dt.date, int] = defaultdict(int)
    for rows in server.rows.values():
        for r in rows:
            day = dt.datetime.strptime(r["date"], "%Y%m%d").date()
            if day >= dt.date.fromisoformat(since):
                out[day] += r["sessions"]
    return dict(out)


@pytest.mark.parametrize("chunk_rows", [50_000, 7])
def test_rows_of_one_canonical_key_add_up_and_a_resync_keeps_the_totals(tmp_path, chunk_rows):
    c = test_ga4.TestGA4Conformance()
    with FakeGA4LandingPages(seed=6, start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 12)) as server:
        settings = {
            **c.settings(server),
            "dimensions": ["date", "sessionSource", "sessionMedium", "sessionCampaignName", "landingPage"],
        }
        p = c.pipeline(tmp_path, settings)
        p.project.settings.chunk_rows = chunk_rows
        first = p.sync()
        assert first.ok, [r.error for r in first.streams]
        want = truth(server, "2026-06-01")
        assert sessions_by_day(p) == want
        with p.open_destination(read_only=True) as session:
            raw = session.read_table("ga4_traffic_daily")
        assert raw.num_rows == sum(len(rows) for rows in server.rows.values())  # the raw table keeps every row
        again = p.sync()  # re-reads the lookback window
        assert again.ok, [r.error for r in again.streams]
        assert sessions_by_day(p) == want


def test_loaded_rows_are_reconciled_with_the_reports_totals(tmp_path):
    c = test_ga4.TestGA4Conformance()
    with FakeGA4(seed=6, start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 12)) as server:
        p = c.pipeline(tmp_path / "ok", c.settings(server))
        result = p.sync()
        assert result.ok and not any(s.reconciliation for s in result.streams)
        assert all("TOTAL" in r.json()["metricAggregations"] for r in server.requests if r.path.endswith(":runReport"))
        server.totals_bias = 3  # the report's totals hold 3 sessions (and views ...) its rows do not
        p = c.pipeline(tmp_path / "off", c.settings(server))
        streams = {s.stream: s for s in p.sync().streams}
    assert streams["landing_pages_daily"].status == "mismatch"  # the landing-page report is reconciled too
    stream = streams["traffic_daily"]
    assert stream.status == "mismatch"
    assert "sessions (property_id=312345678): loaded " in stream.error and "the platform says" in stream.error
    found = {(m["column"], m["scope"]): m for m in stream.reconciliation}
    m = found[("sessions", "property_id=312345678")]
    assert m["expected"] - m["loaded"] == 3
    assert ("totalUsers", "property_id=312345678") not in found  # a users total is not the rows' sum


def test_thresholding_sampling_and_other_row_are_noted(tmp_path):
    c = test_ga4.TestGA4Conformance()
    with FakeGA4(seed=6, start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 3)) as server:
        server.report_metadata = {
            "subjectToThresholding": True,
            "samplingMetadatas": [{"samplesReadCount": "250000", "samplingSpaceSize": "1000000"}],
            "dataLossFromOtherRow": True,
        }
        p = c.pipeline(tmp_path, {**c.settings(server), "landing_pages": False})
        (stream,) = p.sync().streams
        with p.open_destination(read_only=True) as session:
            notes = session.get_state("ga4.traffic_daily")["notes"]
    assert stream.status == "ok"
    assert "property 312345678: GA4 applied thresholding (rows with few users are withheld)" in notes
    assert "property 312345678: GA4 sampled the report (250000 of 1000000 events read)" in notes
    assert "property 398765432: GA4 rolled some dimension combinations into an '(other)' row" in notes


def test_the_scorecard_shows_gas_thresholding_note(tmp_path, monkeypatch):
    c = test_ga4.TestGA4Conformance()
    with FakeGA4(seed=6, start=dt.date(2026, 6, 1), end=dt.date(2026, 6, 3)) as server:
        server.report_metadata = {"subjectToThresholding": True}
        assert c.pipeline(tmp_path, c.settings(server)).sync().ok
    # What an analyst sees: the scorecard's data-quality facts, in kpihub kpis --format json.
    (tmp_path / "kpihub.toml").write_text('[project]\ndestination = "duckdb:///conformance.duckdb"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["kpis", "--kpi", "sessions", "--period", "2026-06", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    (q,) = row["data_quality"]
    assert q["stream"] == "ga4.traffic_daily" and q["status"] == "ok" and q["tables"] == ["web_traffic_daily"]
    assert "property 312345678: GA4 applied thresholding (rows with few users are withheld)" in q["notes"]
