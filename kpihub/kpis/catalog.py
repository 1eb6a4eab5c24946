"""The KPI catalogue as rows and as Markdown (``kpihub kpis --list``; docs/kpis.md is generated from it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kpihub.kpis.spec import KPI

__all__ = ["STAGE_ORDER", "catalog_markdown", "catalog_rows", "computed_from"]

STAGE_ORDER = {"Reach": 0, "Engage": 1, "Act": 2, "Nurture": 3}


def computed_from(kpi: KPI) -> str:
    """What a KPI reads: its tables, its expression over other KPIs, or its model."""
    if kpi.kind == "derived":
        inputs = "".join(
            f"; {alias} = {i.kpi} offset {i.offset} {i.unit or 'period'}" for alias, i in kpi.inputs.items()
        )
        return f"= {kpi.expr}{inputs}"
    if kpi.kind == "model":
        return f"{kpi.model} model over {', '.join(kpi.tables)}"
    return ", ".join(kpi.tables)


def catalog_rows(kpis: Iterable[KPI]) -> list[dict[str, Any]]:
    """One dict per KPI, by funnel stage (Reach, Engage, Act, Nurture, unstaged) then id."""
    ordered = sorted(kpis, key=lambda k: (STAGE_ORDER.get(k.stage or "", 4), k.id))
    return [
        {
            "stage": k.stage,
            "kpi": k.id,
            "title": k.title,
            "description": k.description,
            "unit": k.unit,
            "direction": k.direction,
            "kind": k.kind,
            "additivity": k.additivity,
            "computed_from": computed_from(k),
            "reference": k.reference,
        }
        for k in ordered
    ]


def catalog_markdown(kpis: Iterable[KPI]) -> str:
    """A Markdown section per funnel stage: id, formula (description), inputs, additivity, unit, source."""
    out: list[str] = []
    stage: object = object()
    for row in catalog_rows(kpis):
        if row["stage"] != stage:
            stage = row["stage"]
            out += ["", f"### {stage or 'Other'}", ""]
            out += ["| KPI | formula | computed from | adds up | unit (better) | source |", "|---|---|---|---|---|---|"]
        cells = [
            f"`{row['kpi']}` {row['title']}",
            row["description"],
            f"`{row['computed_from']}`" if row["kind"] == "derived" else row["computed_from"],
            row["additivity"],
            f"{row['unit']} ({row['direction']})",
            row["reference"],
        ]
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out).strip() + "\n"
