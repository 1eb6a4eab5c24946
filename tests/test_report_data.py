"""kpihub.report.data: what the HTML report gathers besides the scorecard (freshness, breakdowns, CLV bins)."""

from __future__ import annotations

import datetime as dt

from kpihub.kpis.spec import KPI, Measure
from kpihub.report.data import breakdown_dimensions, clv_distribution, source_freshness


def test_freshness_per_source_from_sync_state():
    state = {
        "ga4.traffic_daily": {"synced_at": "2026-07-01T06:00:00+00:00", "cursor": "2026-06-30", "cursor_type": "date",
                              "status": "ok"},
        "hubspot.contacts": {"synced_at": "2026-07-01T05:00:00+00:00", "cursor": "2026-06-29T10:00:00+00:00",
                             "cursor_type": "timestamp", "status": "ok"},
        "hubspot.deals": {"synced_at": "2026-07-01T07:00:00", "cursor": "2026-06-30T01:00:00+00:00",
                          "cursor_type": "timestamp", "status": "incomplete"},
        "hubspot.pipelines": {"synced_at": "not a time", "status": "ok"},
        "broken": "not an entry",
    }  # fmt: skip
    ga4, hubspot = source_freshness(state)
    assert (ga4.source, ga4.streams, ga4.data_through, ga4.not_ok) == ("ga4", 1, "2026-06-30", ())
    assert hubspot.streams == 3 and hubspot.not_ok == ("deals: incomplete",)
    assert hubspot.synced_at == dt.datetime(2026, 7, 1, 7, tzinfo=dt.timezone.utc)  # naive read as UTC
    assert hubspot.data_through == "2026-06-30T01:00:00+00:00"


def test_breakdowns_only_where_every_table_has_the_dimension():
    ads = Measure("ad_performance_daily", "sum", "date", expr="clicks")
    ctr = KPI("ctr", "CTR", "", "percent", "higher", "ratio", numerator=ads,
              denominator=Measure("ad_performance_daily", "sum", "date", expr="impressions"))  # fmt: skip
    # On ad tables channel and platform are one column: the breakdown is shown once.
    assert breakdown_dimensions(ctr) == ["channel", "campaign"]
    cac = KPI("cac", "CAC", "", "currency", "lower", "ratio", numerator=ads,
              denominator=Measure("orders", "count", "ordered_at"))  # fmt: skip
    assert breakdown_dimensions(cac) == []  # orders have no channel


def test_clv_histogram_counts_every_customer_and_keeps_the_tail_in_the_last_bar():
    values = [float(v) for v in range(100)] + [10_000.0]
    dist = clv_distribution(values, currency="EUR", as_of=dt.date(2026, 6, 30))
    assert sum(n for _, _, n in dist.bins) == 101 == dist.customers
    assert dist.bins[0][0] == 0.0 and dist.bins[-1][1] < 10_000  # the axis stops at the 99th percentile
    assert dist.bins[-1][2] >= 2  # the outlier is counted in the open last bar
    assert abs(dist.mean - sum(values) / 101) < 1e-9


def test_history_is_a_gap_before_the_first_and_after_the_last_row_never_a_zero():
    import duckdb

    from kpihub.default_plugins.crm_kpis import CRM_KPIS
    from kpihub.kpis.engine import KPIEngine
    from kpihub.kpis.periods import Period
    from kpihub.kpis.scorecard import build_scorecard
    from kpihub.report.data import gather_report
    from tests.kpi_data import load, ts

    con = duckdb.connect()
    created = ["2024-01-05", "2024-01-20", "2024-02-10", "2024-02-28", "2024-04-02"]
    load(con, "crm_contacts", [{"contact_id": f"c{i}", "created_at": ts(d), "became_lead_at": ts(d)}
                               for i, d in enumerate(created)])  # fmt: skip
    kpis = {k.id: k for k in CRM_KPIS}
    eng = KPIEngine(con, timezone="UTC").with_catalog(kpis)
    card = build_scorecard(eng, kpis, period=Period.parse("2024-04"), only=["leads"], today=dt.date(2024, 6, 1))
    (leads,) = gather_report(eng, kpis, card, history=6).kpis
    # Contacts exist from Jan 5 2024: the months before have no rows at all, so their sum over no
    # rows is not a count of zero leads; March has contacts before and after it: no lead is a 0.
    assert [(p.label, p.value) for p in leads.history] == [
        ("2023-11", None), ("2023-12", None), ("2024-01", 2.0), ("2024-02", 2.0), ("2024-03", 0.0), ("2024-04", 1.0),
    ]  # fmt: skip
