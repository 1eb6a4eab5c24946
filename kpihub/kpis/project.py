"""KPIs defined in ``kpihub.toml`` — no Python — compiled like every other KPI::

    [kpis.enterprise_win_rate]
    title = "Enterprise win rate"
    unit = "percent"
    direction = "higher"
    kind = "ratio"
    stage = "Act"
    numerator = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_won AND amount >= 50000" }
    denominator = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_closed AND amount >= 50000" }

A wrong definition (unknown field, table or column, SQL that does not parse,
an id a plugin already uses) is a one-line error naming the KPI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kpihub.config import Project
from kpihub.errors import ConfigError, KPIError
from kpihub.kpis.compiler import compile_kpi
from kpihub.kpis.spec import KPI, Measure

__all__ = ["project_kpis", "register_project_kpis"]


class _MeasureModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str
    agg: Literal["count", "sum", "count_distinct", "count_before"]
    time: str
    expr: str | None = None
    filter: str | None = None
    currency: str | None = None


class _KPIModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    description: str = ""
    unit: Literal["count", "ratio", "percent", "currency", "days"]
    direction: Literal["higher", "lower"]
    kind: Literal["simple", "ratio"]
    stage: Literal["Reach", "Engage", "Act", "Nurture"] | None = None
    measure: _MeasureModel | None = None
    numerator: _MeasureModel | None = None
    denominator: _MeasureModel | None = None


def _measure(m: _MeasureModel | None) -> Measure | None:
    return None if m is None else Measure(m.table, m.agg, m.time, m.expr, m.filter, m.currency)


def project_kpis(project: Project) -> list[KPI]:
    """The project's ``[kpis.<id>]`` definitions, validated and test-compiled."""
    where = project.path.name if project.path else "kpihub.toml"
    out = []
    for kpi_id, table in project.kpis.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [kpis.{kpi_id}] must be a table")
        try:
            model = _KPIModel.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            msg = (
                "is required"
                if err["type"] == "missing"
                else "is not a known field"
                if err["type"] == "extra_forbidden"
                else err["msg"]
            )
            raise ConfigError(f"{where}: [kpis.{kpi_id}] {loc!r} {msg}") from None
        try:
            kpi = KPI(
                id=kpi_id,
                title=model.title,
                description=model.description,
                unit=model.unit,
                direction=model.direction,
                kind=model.kind,
                stage=model.stage,
                measure=_measure(model.measure),
                numerator=_measure(model.numerator),
                denominator=_measure(model.denominator),
                tags=("project",),
            )
            compile_kpi(kpi, grain="month", start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 1))
        except (ValueError, KPIError) as exc:
            raise ConfigError(f"{where}: [kpis.{kpi_id}]: {exc}") from None
        out.append(kpi)
    return out


def register_project_kpis(kpis: dict[str, Any], project: Project) -> None:
    """Add the project's KPIs to ``kpis`` (a registry's table); an id already taken is an error."""
    for kpi in project_kpis(project):
        if kpi.id in kpis and "project" not in kpis[kpi.id].tags:
            raise ConfigError(f"[kpis.{kpi.id}] in kpihub.toml: a plugin already defines KPI {kpi.id!r}")
        kpis[kpi.id] = kpi
