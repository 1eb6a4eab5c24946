"""kpihub.report.html: the self-contained page (structure, escaping, sparklines, trends; no browser)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import duckdb
import pytest

from kpihub.default_plugins.crm_kpis import CRM_KPIS
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.periods import Period
from kpihub.kpis.scorecard import build_scorecard
from kpihub.kpis.targets import Target
from kpihub.report.data import gather_report
from kpihub.report.html import render_html, sparkline_svg, trend
from tests.kpi_data import load, ts

BUNDLE = "/* a stand-in for the Vega bundle */"
HOSTILE = "Leads <b>&</b> </script><script>alert(1)</script>"


def _engine() -> KPIEngine:
    con = duckdb.connect()
    days = ["2024-01-05", "2024-01-20", "2024-02-10", "2024-02-28", "2024-03-02", "2024-03-09", "2024-03-20"]
    load(con, "crm_contacts", [{"contact_id": f"c{i}", "created_at": ts(d), "became_lead_at": ts(d)}
                               for i, d in enumerate(days)])  # fmt: skip
    return KPIEngine(con, timezone="Europe/Oslo")


def _page(kpis=None, targets=()) -> tuple[str, list]:
    kpis = kpis or {k.id: k for k in CRM_KPIS}
    eng = _engine().with_catalog(kpis)
    card = build_scorecard(eng, kpis, targets=targets, period=Period.parse("2024-03"), today=dt.date(2024, 6, 1))
    data = gather_report(eng, kpis, card, history=3, now=dt.datetime(2024, 6, 1, 8, tzinfo=dt.timezone.utc))
    return render_html(data, bundle=BUNDLE), data.kpis


def _specs(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="kpihub-specs">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))


def test_every_scorecard_kpi_has_a_row_a_card_and_a_chart_or_the_reason_why():
    page, reports = _page(targets=[Target("leads", Period.parse("2024-03"), baseline=2, target=4, direction="higher")])
    specs = _specs(page)
    assert 'id="kpi-leads' in page and 'href="#kpi-leads' in page
    for report in reports:
        card = re.search(rf'<article class="card" id="kpi-{re.escape(report.key)}".*?</article>', page, re.S)
        assert card, report.key
        if report.history:
            assert f'data-chart="kpi-{report.key}"' in card.group(0) and f"kpi-{report.key}" in specs
        else:
            assert "No chart: " in card.group(0)
    leads = next(r for r in reports if r.row.kpi == "leads")
    assert [p.value for p in leads.history] == [2.0, 2.0, 3.0]  # Jan, Feb, Mar 2024
    assert "✓ on track" not in page and "at risk" in page  # 3 of 2 -> 4: half way
    assert "not targeted" in page and '<details id="no-data">' not in page
    assert "Period <b>2024-03</b>" in page and "Time zone <b>Europe/Oslo</b>" in page
    assert "Generated <b>2024-06-01 10:00 Europe/Oslo</b>" in page


def test_kpis_without_data_are_one_list_by_reason_not_a_row_each():
    page, reports = _page()
    empty = [r for r in reports if r.row.status == "no data"]
    assert len(empty) == 4  # the deal KPIs: there is no crm_deals table
    no_data = re.search(r'<details id="no-data">.*?</details>', page, re.S)
    assert no_data and f"{len(empty)} KPIs without data" in no_data.group(0)
    assert no_data.group(0).count("table crm_deals not synced") == 1
    scorecard = page[page.index('<section id="scorecard">') : page.index('<details id="no-data">')]
    assert all(f'id="row-{r.key}"' not in scorecard for r in empty)


def test_data_is_escaped_in_the_markup_and_cannot_end_the_specs_script():
    leads = next(k for k in CRM_KPIS if k.id == "leads")
    kpi = dataclasses.replace(leads, title=HOSTILE, description=HOSTILE)
    page, _ = _page({"leads": kpi})
    assert "<script>alert(1)" not in page and "<b>&</b>" not in page
    assert "Leads &lt;b&gt;&amp;&lt;/b&gt;" in page
    # Three script elements of the page's own, and only those.
    assert page.count("<script") == 3 and page.count("</script>") == 3
    # In the JSON the text is data for Vega (which escapes it when drawing), with "<" as \u003c.
    assert HOSTILE in json.dumps(_specs(page)["kpi-leads-2024-03"]) and "</script><script>" not in page


def test_the_page_needs_no_network():
    page, _ = _page()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)
    assert "@import" not in page and "url(" not in page


def test_a_bundle_that_would_end_its_script_early_is_refused():
    eng = _engine()
    kpis = {k.id: k for k in CRM_KPIS}
    card = build_scorecard(eng.with_catalog(kpis), kpis, period=Period.parse("2024-03"), only=["leads"])
    with pytest.raises(ValueError, match="</script"):
        render_html(gather_report(eng.with_catalog(kpis), kpis, card), bundle="x = '</SCRIPT>'")


def test_sparkline_breaks_at_gaps_and_dots_a_lone_point():
    svg = sparkline_svg([1.0, 2.0, None, 3.0, None, 4.0, 5.0], width=64, height=24, label="a <b>")
    assert svg.count("<polyline") == 2 and svg.count('r="1.6"') == 1  # 3.0 stands alone
    assert 'aria-label="a &lt;b&gt;"' in svg
    assert svg.count('r="2.4"') == 1  # the last period marked
    assert sparkline_svg([None, None]) == "" and sparkline_svg([3.0]) == ""


@pytest.mark.parametrize(
    ("change", "direction", "arrow", "cls"),
    [
        (0.1, "higher", "▲", "good"),
        (0.1, "lower", "▲", "bad"),
        (-0.2, "lower", "▼", "good"),
        (0.0, "higher", "▶", "flat"),
    ],
)
def test_trend_arrow_and_whether_it_is_good(change, direction, arrow, cls):
    page, reports = _page()
    row = dataclasses.replace(reports[0].row, change=change)
    got = trend(row, direction)
    assert (got.arrow, got.cls) == (arrow, cls) and got.text == f"{change * 100:+.1f} %"


def test_the_banner_tells_a_failed_sync_from_an_ok_one_with_notes_on_the_data():
    from kpihub.kpis.scorecard import Scorecard, StreamQuality
    from kpihub.report.html import quality_warnings

    ok_with_notes = StreamQuality("ga4.traffic_daily", "ok", ("thresholding applied",))
    incomplete = StreamQuality("hubspot.deals", "incomplete", ("3 of 10 records",))
    assert quality_warnings(Scorecard([], [ok_with_notes])) == [
        "1 stream synced ok with notes on the data: see Data quality"
    ]
    assert quality_warnings(Scorecard([], [incomplete, ok_with_notes, incomplete])) == [
        "2 streams did not end the last sync ok: see Data quality",
        "1 stream synced ok with notes on the data: see Data quality",
    ]
    assert quality_warnings(Scorecard([], [])) == []


def test_a_score_trend_reads_in_points_in_its_tooltip_too():
    _, reports = _page()
    row = dataclasses.replace(reports[0].row, unit="score", change=-25.0, previous=25.0)
    got = trend(row, "higher")
    assert (got.text, got.cls) == ("-25.0 pts", "bad") and got.title.startswith("-25.0 pts on the previous period")
