"""The KPI catalogue as rows and as Markdown (``kpihub kpis --list``; docs/kpis.md is generated from it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kpihub.errors import KpihubError
from kpihub.kpis.spec import KPI

if TYPE_CHECKING:
    from kpihub.source import Source

__all__ = ["STAGE_ORDER", "catalog_markdown", "catalog_rows", "computed_from", "fed_by", "table_feeds"]

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


def table_feeds(sources: Mapping[str, Source[Any]]) -> dict[str, list[str]]:
    """Canonical table → the sources that can write it: those whose streams (asked with default settings, as
    ``kpihub plugins`` lists them) feed it, then those whose streams come from their settings (the files
    source) and whose settings name the table. Sources in name order within each group; a source that feeds
    a table only through a stream it adds when a setting is switched on is ``hubspot (opt-in)``."""
    from kpihub.describe import describe_source, opt_in_streams
    from kpihub.model import CANONICAL_TABLES

    declared: dict[str, list[str]] = {}
    configured: dict[str, list[str]] = {}
    for name in sorted(sources):
        described = describe_source(sources[name])
        tables = [s["canonical_table"] for s in described["streams"] if s["canonical_table"]]
        if described["streams_from_settings"]:
            fields = sources[name].settings_class.model_fields
            tables, into = [t for t in CANONICAL_TABLES if t in fields], configured
        else:
            into = declared
        for table in dict.fromkeys(tables):
            into.setdefault(table, []).append(name)
        for table in dict.fromkeys(s.canonical_table for s in opt_in_streams(sources[name]) if s.canonical_table):
            if table not in tables:
                declared.setdefault(table, []).append(f"{name} (opt-in)")
    return {
        t: declared.get(t, []) + configured.get(t, []) for t in CANONICAL_TABLES if t in declared or t in configured
    }


def tables_read(kpi: KPI, catalog: Mapping[str, KPI]) -> tuple[str, ...]:
    """The canonical tables a KPI reads, through a derived KPI's inputs too, each once."""
    from kpihub.kpis.compiler import leaves

    try:
        found = leaves(kpi, grain="month", start=dt.date(2000, 1, 1), end=dt.date(2000, 2, 1), catalog=catalog)
    except KpihubError:  # an input that does not resolve: the KPI's own measures, as far as they go
        return kpi.tables
    return tuple(dict.fromkeys(leaf.measure.table for leaf in found))


def fed_by(kpi: KPI, catalog: Mapping[str, KPI], feeds: Mapping[str, list[str]]) -> str:
    """Which sources feed a KPI: ``stripe, shopify`` for one table, ``costs: files; crm_contacts: hubspot`` for
    several; a table no installed source writes is ``none installed``."""
    tables = tables_read(kpi, catalog)
    named = [(t, ", ".join(feeds.get(t, [])) or "none installed") for t in tables]
    if len(named) == 1:
        return named[0][1]
    return "; ".join(f"{t}: {who}" for t, who in named)


def catalog_rows(kpis: Iterable[KPI], sources: Mapping[str, Source[Any]] | None = None) -> list[dict[str, Any]]:
    """One dict per KPI, by funnel stage (Reach, Engage, Act, Nurture, unstaged) then id; with ``sources``
    (the registry's), ``fed_by`` says which of them feed it (:func:`fed_by`)."""
    ordered = sorted(kpis, key=lambda k: (STAGE_ORDER.get(k.stage or "", 4), k.id))
    catalog = {k.id: k for k in ordered}
    feeds = table_feeds(sources) if sources is not None else None
    rows = [
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
        | ({} if feeds is None else {"fed_by": fed_by(k, catalog, feeds)})
        for k in ordered
    ]
    return rows


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
