"""The KPIs of $title, over kpihub's canonical tables (any source that feeds them feeds these).

A ratio is Σnumerator ÷ Σdenominator at the requested grain, each side aggregated on its own:
over a quarter it is the quarter's key events over its engaged sessions, never the mean of three
monthly rates; a period with no engaged sessions gives null. Replace this one with yours: the
kinds (simple, ratio, derived, cumulative, conversion, cohort) are in kpihub's docs/kpis.md.
"""

from __future__ import annotations

import kpihub

W = "web_traffic_daily"

KPIS = (
    kpihub.KPI(
        id="${name}_engaged_conversion_rate",
        title="Conversion rate of engaged sessions",
        description="Σ key events ÷ Σ engaged sessions: how often a visit that engaged converts.",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=kpihub.Measure(W, "sum", "date", expr="key_events"),
        denominator=kpihub.Measure(W, "sum", "date", expr="engaged_sessions"),
        stage="Act",
        reference="$title",
    ),
)
