"""Vega-Lite chart specs (altair) for the report: one function per chart, data in, spec out.

Colours are Okabe-Ito (distinguishable with the common colour-vision deficiencies); axes and
tooltips format numbers by the KPI's unit (d3-format strings, the currency in the axis title).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpihub.kpis.scorecard import ScorecardRow
    from kpihub.report.data import Breakdown, CLVDistribution, CohortCell, KPIReport

__all__ = [
    "OKABE_ITO",
    "axis_format",
    "breakdown_chart",
    "clv_chart",
    "cohort_chart",
    "kpi_chart",
    "tooltip_format",
    "unit_title",
]

#: Okabe & Ito (2008): black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
LINE, BASELINE, TARGET = OKABE_ITO[5], OKABE_ITO[2], OKABE_ITO[6]


def axis_format(unit: str) -> str:
    """A compact d3 format for an axis of ``unit``: ``40%``, ``12k``, ``1.5``."""
    return {"percent": ".0%", "ratio": ".2f", "score": "+.0f", "milliseconds": ",.0f"}.get(
        unit, ".1f" if unit in _DURATIONS else ",.3~s"
    )


def tooltip_format(unit: str) -> str:
    """The d3 format of one value of ``unit`` in a tooltip: as exact as the scorecard's."""
    return {"percent": ".1%", "currency": ",.2f", "ratio": ".2f", "score": "+.1f", "milliseconds": ",.0f"}.get(
        unit, ".1f" if unit in _DURATIONS else ",.2~f"
    )


_DURATIONS = ("days", "hours", "months", "seconds")


def unit_title(unit: str, currency: str | None) -> str:
    """The y-axis title: the currency, ``%``, ``days`` …"""
    if unit == "currency":
        return currency or "amount"
    return {"percent": "%", "score": "score (−100 … +100)", "count": "count", "milliseconds": "ms"}.get(unit, unit)


def kpi_chart(report: KPIReport, *, width: int | str = "container", height: int = 180) -> dict[str, Any]:
    """The KPI's value per period (the scored one marked), with its baseline and target as dashed rules."""
    import altair as alt

    row = report.row
    values = [{"period": p.label, "value": p.value, "scored": p.label == row.period} for p in report.history]
    order = [p.label for p in report.history]
    y = alt.Y("value:Q", title=unit_title(row.unit, row.currency), axis=alt.Axis(format=axis_format(row.unit)))
    y = y.scale(zero=False)
    tip = [alt.Tooltip("period:N"), alt.Tooltip("value:Q", format=tooltip_format(row.unit), title=row.title)]
    base = alt.Chart(alt.Data(values=values)).encode(x=alt.X("period:O", sort=order, title=None), y=y, tooltip=tip)
    layers: list[Any] = [
        base.mark_line(color=LINE),
        base.mark_point(filled=True, color=LINE).encode(
            size=alt.condition("datum.scored", alt.value(90), alt.value(25))
        ),
    ]
    lines = [
        {"line": name, "value": v} for name, v in (("baseline", row.baseline), ("target", row.target)) if v is not None
    ]
    if lines:
        colour = alt.Color("line:N", title=None, legend=alt.Legend(orient="bottom"))
        colour = colour.scale(domain=["baseline", "target"], range=[BASELINE, TARGET])
        rule = alt.Chart(alt.Data(values=lines)).mark_rule(strokeDash=[6, 4], strokeWidth=2)
        layers.append(rule.encode(y="value:Q", color=colour, tooltip=[alt.Tooltip("line:N"), alt.Tooltip(
            "value:Q", format=tooltip_format(row.unit))]))  # fmt: skip
    return alt.layer(*layers).properties(width=width, height=height).to_dict()


def breakdown_chart(breakdown: Breakdown, row: ScorecardRow, *, width: int | str = "container") -> dict[str, Any]:
    """The KPI in its scored period per channel / campaign / platform: horizontal bars, best first."""
    import altair as alt

    values = [{"key": k, "value": v} for k, v in breakdown.values]
    order = [k for k, _ in breakdown.values]
    fmt = tooltip_format(row.unit)
    x = alt.X("value:Q", title=unit_title(row.unit, row.currency), axis=alt.Axis(format=axis_format(row.unit)))
    chart = alt.Chart(alt.Data(values=values)).mark_bar(color=LINE)
    chart = chart.encode(
        x=x,
        y=alt.Y("key:N", sort=order, title=None, axis=alt.Axis(labelLimit=160)),
        tooltip=[alt.Tooltip("key:N", title=breakdown.dimension), alt.Tooltip("value:Q", format=fmt, title=row.title)],
    )
    return chart.properties(width=width, height=18 * len(values)).to_dict()


def cohort_chart(cells: Sequence[CohortCell], *, width: int | str = "container") -> dict[str, Any]:
    """The retention matrix as a heat map: cohort (rows) × months since acquisition, share active."""
    import altair as alt

    values = [
        {"cohort": f"{c.cohort} ({c.customers})", "age": c.age, "retention": c.retention}
        for c in cells
        if c.retention is not None
    ]
    order = list(dict.fromkeys(f"{c.cohort} ({c.customers})" for c in cells))
    base = alt.Chart(alt.Data(values=values)).encode(
        x=alt.X("age:O", title="months since first purchase"),
        y=alt.Y("cohort:O", sort=order, title="cohort (customers)"),
    )
    # viridis: ordered and readable with the common colour-vision deficiencies and in greyscale.
    colour = alt.Color("retention:Q", title="active", legend=alt.Legend(format=".0%"))
    rects = base.mark_rect().encode(
        color=colour.scale(scheme="viridis", domain=[0, 1]),
        tooltip=[alt.Tooltip("cohort:O"), alt.Tooltip("age:O"), alt.Tooltip("retention:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("retention:Q", format=".0%"),
        color=alt.condition("datum.retention > 0.5", alt.value("black"), alt.value("white")),
    )
    return alt.layer(rects, text).properties(width=width, height=22 * len(order)).to_dict()


def clv_chart(clv: CLVDistribution, *, width: int | str = "container", height: int = 200) -> dict[str, Any]:
    """Customers per CLV band (the last band also holds the top 1 %), the mean as a dashed rule."""
    import altair as alt

    last = len(clv.bins) - 1
    values = [
        {"low": low, "high": high, "customers": n, "band": f"{low:,.0f}–{high:,.0f}" + ("+" if i == last else "")}
        for i, (low, high, n) in enumerate(clv.bins)
    ]
    money = clv.currency or "amount"
    bars = (
        alt.Chart(alt.Data(values=values))
        .mark_bar(color=LINE, binSpacing=1)
        .encode(
            x=alt.X("low:Q", bin="binned", title=f"customer lifetime value ({money})", axis=alt.Axis(format=",.0f")),
            x2="high:Q",
            y=alt.Y("customers:Q", title="customers"),
            tooltip=[alt.Tooltip("band:N", title=money), alt.Tooltip("customers:Q", format=",")],
        )
    )
    mean = alt.Chart(alt.Data(values=[{"mean": clv.mean}])).mark_rule(color=TARGET, strokeDash=[6, 4], strokeWidth=2)
    mean = mean.encode(x="mean:Q", tooltip=[alt.Tooltip("mean:Q", format=",.2f", title=f"mean ({money})")])
    return alt.layer(bars, mean).properties(width=width, height=height).to_dict()
