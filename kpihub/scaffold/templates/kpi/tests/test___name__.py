"""$title's KPIs against a fixture worked out by hand: kpihub's KPI conformance suite, and tests of your own."""

from __future__ import annotations

import $package
from kpihub.testing import Registry
from kpihub.testing.conformance import KPIConformance

KPI_ID = "${name}_engaged_conversion_rate"


def _day(date: str, source: str, sessions: int, engaged: int, key_events: float) -> dict:
    ids = {"property_id": "p1", "source": source, "medium": "organic", "campaign": "(none)"}
    return {"date": date, **ids, "sessions": sessions, "engaged_sessions": engaged, "key_events": key_events}


class Test${cls}KPIs(KPIConformance):
    """Every test of kpihub.testing.conformance.KPIConformance, for the pack's KPIs."""

    plugin = $package
    grain = "month"
    tables = {
        "web_traffic_daily": [
            _day("2024-01-10", "google", 120, 100, 5),
            _day("2024-01-20", "bing", 80, 60, 3),
            _day("2024-02-01", "google", 50, 40, 6),
        ]
    }
    expected = {
        # January: (5 + 3) / (100 + 60) = 0.05; February: 6 / 40 = 0.15; March: no sessions, null.
        # The quarter is (5 + 3 + 6) / (100 + 60 + 40) = 0.07, not the months' mean 0.10.
        KPI_ID: {"2024-01": 0.05, "2024-02": 0.15, "2024-03": None},
    }


def test_the_installed_entry_point_registers_the_kpis() -> None:
    registry = Registry()  # built-ins and every installed plugin, this one among them
    assert registry.kpi(KPI_ID).kind == "ratio"
    assert KPI_ID in registry.plugins["$name"].kpis
