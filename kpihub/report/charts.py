"""Vega-Lite chart specs (altair) for the report: one function per chart, data in, spec out.

Colours are Okabe-Ito (distinguishable with the common colour-vision deficiencies); axes and
tooltips format numbers by the KPI's unit (d3-format strings, the currency in the axis title).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpihub.report.data import KPIReport

__all__ = ["OKABE_ITO", "axis_format", "kpi_chart", "tooltip_format", "unit_title"]

#: Okabe & Ito (2008): black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
LINE, BASELINE, TARGET = OKABE_ITO[5], OKABE_ITO[2], OKABE_ITO[6]


def axis_format(unit: str) -> str:
    """A compact d3 format for an axis of ``unit``: ``40%``, ``12k``, ``1.5``."""
    return {"percent": ".0%", "ratio": ".2f", "score": "+.0f"}.get(unit, ".1f" if unit in _DURATIONS else ",.3~s")


def tooltip_format(unit: str) -> str:
    """The d3 format of one value of ``unit`` in a tooltip: as exact as the scorecard's."""
    return {"percent": ".1%", "currency": ",.2f", "ratio": ".2f", "score": "+.1f"}.get(
        unit, ".1f" if unit in _DURATIONS else ",.2~f"
    )


_DURATIONS = ("days", "hours", "months", "seconds")


def unit_title(unit: str, currency: str | None) -> str:
    """The y-axis title: the currency, ``%``, ``days`` …"""
    if unit == "currency":
        return currency or "amount"
    return {"percent": "%", "score": "score (−100 … +100)", "count": "count"}.get(unit, unit)


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
