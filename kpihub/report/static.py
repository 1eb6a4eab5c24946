"""The report as one static image or document (PNG, SVG, PDF), drawn by vl-convert with no browser.

:func:`report_spec` composes one Vega-Lite spec: the header facts as its title, the scorecard as a
table of text marks (status as colour and text), every KPI's chart (three to a row), the cohort heat
map and the CLV distribution: the page's content, without its interactivity.
"""

from __future__ import annotations

from typing import Any

from kpihub.report import charts
from kpihub.report.data import KPIReport, ReportData
from kpihub.report.html import EMPTY, STATUS, by_stage, quality_warnings
from kpihub.report.scorecard import format_value

__all__ = ["STATIC_FORMATS", "report_spec", "static_bytes"]

STATIC_FORMATS = ("png", "svg", "pdf")
#: Status colours of the scorecard image (the page's CSS ones).
_STATUS_COLOURS = {"good": "#007a5a", "warn": "#8a5a00", "bad": "#b34700", "plain": "#5b6470", "none": "#5b6470"}
_PER_ROW = 3


def _bare(spec: dict[str, Any]) -> dict[str, Any]:
    """A chart's spec as a part of a composition (``$schema`` and ``config`` belong to the top)."""
    return {k: v for k, v in spec.items() if k not in ("$schema", "config")}


def _in_stage_order(reports: list[KPIReport]) -> list[KPIReport]:
    return [r for _, rows in by_stage(reports) for r in rows]


def _scorecard_spec(reports: list[KPIReport]) -> dict[str, Any]:
    rows = []
    for i, r in enumerate(_in_stage_order(reports)):
        cls, icon = STATUS.get(r.row.status, ("none", "–"))
        rows.append(
            {
                "i": i,
                "stage": r.row.stage or "Other",
                "kpi": r.row.title,
                "actual": format_value(r.row.actual, r.row.unit, r.row.currency),
                "target": format_value(r.row.target, r.row.unit, r.row.currency),
                "status": f"{icon} {r.row.status}".strip(),
                "colour": _STATUS_COLOURS[cls],
            }
        )
    columns = [("stage", 0, "left"), ("kpi", 80, "left"), ("actual", 470, "right"), ("target", 600, "right")]
    layers: list[dict[str, Any]] = [
        {
            "mark": {"type": "text", "align": align, "x": x, "fontWeight": "bold" if field == "stage" else "normal"},
            "encoding": {"y": {"field": "i", "type": "ordinal", "axis": None}, "text": {"field": field}},
        }
        for field, x, align in columns
    ]
    layers.append(
        {
            "mark": {"type": "text", "align": "left", "x": 630},
            "encoding": {
                "y": {"field": "i", "type": "ordinal", "axis": None},
                "text": {"field": "status"},
                "color": {"field": "colour", "type": "nominal", "scale": None},
            },
        }
    )
    return {
        "title": {"text": "Scorecard", "anchor": "start"},
        "data": {"values": rows},
        "width": 760,
        "height": 18 * max(len(rows), 1),
        "layer": layers,
    }


def _kpi_grid(reports: list[KPIReport]) -> list[dict[str, Any]]:
    cells = []
    for r in _in_stage_order(reports):
        if not r.history:
            continue
        spec = _bare(charts.kpi_chart(r, width=230, height=120))
        actual = format_value(r.row.actual, r.row.unit, r.row.currency)
        subtitle = f"{actual} · {r.row.period} · {r.row.status}"
        spec["title"] = {"text": r.row.title, "subtitle": subtitle, "anchor": "start"}
        cells.append(spec)
    return [{"hconcat": cells[i : i + _PER_ROW]} for i in range(0, len(cells), _PER_ROW)]


def report_spec(data: ReportData, *, title: str = "KPI report") -> dict[str, Any]:
    """The whole report as one Vega-Lite spec (scorecard, KPI charts, cohorts, CLV)."""
    shown = [r for r in data.kpis if r.row.status not in EMPTY]
    facts = [f"Period {', '.join(data.periods) or '—'}", f"currency {data.currency or 'not set'}"]
    facts.append(f"time zone {data.timezone}")
    if data.scorecard.data_end:
        facts.append(f"data through {data.scorecard.data_end.isoformat()}")
    facts.append(f"generated {data.generated_at:%Y-%m-%d %H:%M} UTC")
    subtitle = [" · ".join(facts)]
    subtitle += quality_warnings(data.scorecard)
    empty = len(data.kpis) - len(shown)
    if empty:
        subtitle.append(f"{empty} KPI(s) without data are left out")
    parts: list[dict[str, Any]] = [_scorecard_spec(shown), *_kpi_grid(shown)]
    if data.cohorts:
        cohorts = _bare(charts.cohort_chart(data.cohorts, width=600))
        parts.append(cohorts | {"title": {"text": data.cohort_title or "Cohort retention", "anchor": "start"}})
    if data.clv is not None:
        clv = _bare(charts.clv_chart(data.clv, width=600))
        parts.append(clv | {"title": {"text": "Customer lifetime value", "anchor": "start"}})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": title, "subtitle": subtitle, "anchor": "start", "fontSize": 20},
        "vconcat": parts,
        "spacing": 28,
        "config": {"view": {"stroke": None}, "font": "sans-serif"},
    }


def static_bytes(data: ReportData, fmt: str, *, title: str = "KPI report") -> bytes:
    """The report as a ``fmt`` (png, svg or pdf) file's bytes."""
    import vl_convert as vlc

    spec = report_spec(data, title=title)
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode("utf-8")
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=1.5)
    if fmt == "pdf":
        return vlc.vegalite_to_pdf(spec)
    raise ValueError(f"unknown static format {fmt!r} (known: {', '.join(STATIC_FORMATS)})")
