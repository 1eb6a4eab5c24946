"""The HTML report: one self-contained page (styles, scripts and chart data inlined; no network).

:func:`render_html` turns a :class:`~kpihub.report.data.ReportData` into the page: a header with the
period, currency, time zone and data freshness per source; the scorecard by funnel stage (status as
colour *and* text, a trend arrow, an SVG sparkline); a Vega-Lite chart per KPI with its baseline and
target and its breakdowns; the cohort heat map; the CLV distribution. The template is Jinja2 with
autoescaping (every value from the data is escaped); only the page's own CSS, JS, the Vega bundle,
the sparklines built here and the JSON of the specs go in unescaped.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from kpihub.kpis.catalog import STAGE_ORDER
from kpihub.kpis.scorecard import NOT_TARGETED, Scorecard, ScorecardRow
from kpihub.report import charts
from kpihub.report.data import KPIReport, ReportData, SourceFreshness
from kpihub.report.scorecard import data_quality_lines, format_change, format_value

__all__ = ["STAGES", "by_stage", "quality_warnings", "render_html", "sparkline_svg", "trend"]

#: The funnel stages in the order the guides walk them (the catalogue's); KPIs of other stages follow.
STAGES = tuple(STAGE_ORDER)
#: Status → (CSS class, a sign that reads without colour).
STATUS = {
    "on track": ("good", "✓"),
    "at risk": ("warn", "!"),
    "off track": ("bad", "✗"),
    "refused": ("bad", "⊘"),
    NOT_TARGETED: ("plain", ""),
}
#: Rows without a value: shown once, grouped by reason, under the scorecard.
EMPTY = ("no data", "n/a")


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("kpihub.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name in the template fails, never renders blank
    )


def _asset(name: str) -> str:
    return resources.files("kpihub.report").joinpath("templates", name).read_text(encoding="utf-8")


def render_html(data: ReportData, *, title: str = "KPI report", bundle: str | None = None) -> str:
    """The whole page. ``bundle``: the Vega JavaScript (default: :func:`kpihub.report.vega.javascript_bundle`)."""
    from markupsafe import Markup

    from kpihub import __version__

    if bundle is None:
        from kpihub.report.vega import javascript_bundle

        bundle = javascript_bundle()
    if "</script" in bundle.lower():  # would end the inline script early: never inline such a bundle
        raise ValueError("the Vega bundle contains '</script' and cannot be inlined")
    specs: dict[str, dict[str, Any]] = {}
    context = _header(data) | _scorecard(data) | _chart_cards(data, specs) | _cohorts_and_clv(data, specs)
    spec_json = json.dumps(specs, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            version=__version__,
            css=Markup(_asset("report.css")),
            script=Markup(_asset("report.js")),
            bundle=Markup(bundle),
            specs=Markup(spec_json),
            notes=data.notes,
            **context,
        )
    )
    return str(page)


def _local(stamp: dt.datetime | None, timezone: str) -> str:
    return stamp.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if stamp else "never"


def _header(data: ReportData) -> dict[str, Any]:
    card = data.scorecard
    warnings = quality_warnings(card)
    return {
        "periods": ", ".join(data.periods) or "—",
        "currency": data.currency,
        "timezone": data.timezone,
        "generated": f"{_local(data.generated_at, data.timezone)} {data.timezone}",
        "data_end": card.data_end.isoformat() if card.data_end else None,
        "warnings": warnings,
        "freshness": [_freshness_row(f, data.timezone) for f in data.freshness],
        "quality": data_quality_lines(card),
        "history": max((len(r.history) for r in data.kpis), default=0) or "",
    }


def quality_warnings(card: Scorecard) -> list[str]:
    """The banner's lines: streams whose last sync was not ok, and ok ones whose connector noted
    something about the data (GA4 thresholding, days with no insights); the list below names them."""
    bad = sum(q.status != "ok" for q in card.data_quality)
    noted = len(card.data_quality) - bad
    out = [f"{bad} stream{'s' if bad > 1 else ''} did not end the last sync ok: see Data quality"] if bad else []
    if noted:
        out.append(f"{noted} stream{'s' if noted > 1 else ''} synced ok with notes on the data: see Data quality")
    return out


def _freshness_row(f: SourceFreshness, timezone: str) -> dict[str, Any]:
    return {
        "source": f.source,
        "streams": f.streams,
        "synced": _local(f.synced_at, timezone),
        "through": (f.data_through or "—")[:10],
        "not_ok": f.not_ok,
    }


@dataclass(frozen=True)
class _Trend:
    arrow: str
    text: str
    cls: str
    title: str


def trend(row: ScorecardRow, direction: str) -> _Trend:
    """The change on the previous period as an arrow, its size, and whether it is good for this KPI."""
    if row.change is None:
        return _Trend("", "—", "flat", "no previous period to compare")
    arrow = "▲" if row.change > 0 else "▼" if row.change < 0 else "▶"
    better = (row.change > 0) == (direction == "higher")
    cls = "flat" if row.change == 0 else "good" if better else "bad"
    change = format_change(row.change, row.unit)
    title = f"{change} on the previous period ({format_value(row.previous, row.unit, row.currency)})"
    return _Trend(arrow, change, cls, title)


def sparkline_svg(values: Sequence[float | None], *, width: int = 96, height: int = 24, label: str = "") -> str:
    """A small line of ``values`` (gaps where None), the last point dotted; an inline SVG string."""
    from markupsafe import escape

    known = [v for v in values if v is not None]
    if len(values) < 2 or not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = (width - 4) / (len(values) - 1)

    def xy(i: int, v: float) -> tuple[str, str]:
        return f"{2 + i * step:.1f}", f"{height - 3 - (v - low) / span * (height - 6):.1f}"

    runs: list[list[tuple[str, str]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(xy(i, v))
    lines = "".join(f'<polyline points="{" ".join(f"{x},{y}" for x, y in r)}"/>' for r in runs if len(r) > 1)
    # A point with no neighbour has no line: it is drawn as a dot so it does not vanish.
    dots = "".join(f'<circle cx="{x}" cy="{y}" r="1.6"/>' for r in runs if len(r) == 1 for x, y in r)
    last = values[-1]
    end = (
        f'<circle cx="{xy(len(values) - 1, last)[0]}" cy="{xy(len(values) - 1, last)[1]}" r="2.4"/>'
        if last is not None
        else ""
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{escape(label)}"><g fill="none" stroke="{charts.LINE}" stroke-width="1.5">{lines}</g>'
        f'<g fill="{charts.LINE}">{dots}{end}</g></svg>'
    )


def _row_view(report: KPIReport) -> dict[str, Any]:
    from markupsafe import Markup

    row = report.row
    cls, icon = STATUS.get(row.status, ("none", "–"))
    spark = sparkline_svg([p.value for p in report.history], label=f"{row.title}, last {len(report.history)} periods")

    return {
        "key": report.key,
        "kpi": row.kpi,
        "title": row.title,
        "period": row.period,
        "actual": format_value(row.actual, row.unit, row.currency),
        "baseline": format_value(row.baseline, row.unit, row.currency),
        "target": format_value(row.target, row.unit, row.currency),
        "attainment": "—" if row.attainment is None else f"{row.attainment * 100:.0f} %",
        "status": row.status,
        "status_cls": cls,
        "status_icon": icon,
        "trend": trend(row, report.kpi.direction),
        "sparkline": Markup(spark),
        "notes": list(dict.fromkeys(row.notes)),
    }


def by_stage(items: Sequence[KPIReport]) -> list[tuple[str, list[KPIReport]]]:
    groups: dict[str, list[KPIReport]] = {}
    for item in items:
        groups.setdefault(item.row.stage or "Other", []).append(item)
    order = [s for s in STAGES if s in groups] + sorted(s for s in groups if s not in STAGES)
    return [(stage, groups[stage]) for stage in order]


def _scorecard(data: ReportData) -> dict[str, Any]:
    shown = [r for r in data.kpis if r.row.status not in EMPTY]
    empty = [r for r in data.kpis if r.row.status in EMPTY]
    reasons: dict[str, list[str]] = {}
    for r in empty:
        reasons.setdefault(r.row.notes[0] if r.row.notes else r.row.status, []).append(r.row.title)
    return {
        "stages": [{"name": s, "rows": [_row_view(r) for r in rows]} for s, rows in by_stage(shown)],
        "empty": empty,
        "empty_reasons": sorted(reasons.items(), key=lambda kv: -len(kv[1])),
        "multi_period": len(data.periods) > 1,
    }


def _chart_cards(data: ReportData, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    stages = []
    for stage, reports in by_stage(data.kpis):
        cards = []
        for report in reports:
            view = _row_view(report)
            view["description"] = report.kpi.description
            view["note"] = report.note or "no history"
            view["chart"] = None
            if report.history:
                view["chart"] = f"kpi-{report.key}"
                specs[view["chart"]] = charts.kpi_chart(report)
            view["breakdowns"] = []
            for b in report.breakdowns:
                name = f"by-{b.dimension}-{report.key}"
                specs[name] = charts.breakdown_chart(b, report.row)
                view["breakdowns"].append(
                    {
                        "dimension": b.dimension,
                        "chart": name,
                        "shown": len(b.values),
                        "total": b.total,
                        "more": b.total > len(b.values),
                    }  # fmt: skip
                )
            cards.append(view)
        stages.append({"name": stage, "cards": cards})
    return {"chart_stages": stages}


def _cohorts_and_clv(data: ReportData, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"cohort_chart": None, "clv_chart": None, "cohort_title": data.cohort_title}
    if data.cohorts:
        specs["cohorts"] = charts.cohort_chart(data.cohorts)
        out["cohort_chart"] = "cohorts"
    out["cohort_note"] = _left_out(data, "cohort") or "No cohort KPI in the catalogue."
    if data.clv is not None:
        specs["clv"] = charts.clv_chart(data.clv)
        out["clv_chart"] = "clv"
        mean = format_value(data.clv.mean, "currency", data.clv.currency)
        out["clv_text"] = (
            f"{data.clv.customers:,} customers, mean {mean}; BG/NBD + Gamma-Gamma fitted on the data up to "
            f"{data.clv.as_of.isoformat()} (the last band holds the top 1 %)."
        )
    out["clv_note"] = _left_out(data, "CLV") or "No CLV model KPI in the catalogue."
    return out


def _left_out(data: ReportData, what: str) -> str | None:
    return next((n for n in data.notes if what in n), None)
