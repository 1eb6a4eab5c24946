"""KPIs defined in ``kpihub.toml`` — no Python — compiled like every other KPI::

    [kpis.enterprise_win_rate]
    title = "Enterprise win rate"
    unit = "percent"
    direction = "higher"
    kind = "ratio"
    stage = "Act"
    numerator = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_won AND amount >= 50000" }
    denominator = { table = "crm_deals", agg = "count", time = "closed_at", filter = "is_closed AND amount >= 50000" }

    [kpis.gross_margin]                  # derived: an expression over other KPIs
    title = "Gross margin"
    unit = "percent"
    direction = "higher"
    kind = "derived"
    expr = "(sales - cogs) / sales"
    inputs = { cogs = { kpi = "total_costs" } }

    [kpis.sales_vs_last_year]            # an input offset in time
    kind = "derived"
    expr = "sales / sales_ly"
    inputs = { sales_ly = { kpi = "sales", offset = -1, unit = "year" } }

    [kpis.payer_months]                  # customers counted once per month, added up over months
    kind = "simple"
    measure = { table = "orders", agg = "count_distinct", time = "ordered_at", expr = "customer_id", per = "month" }

    [kpis.ltv_to_cac]                    # a parameter: [project] gross_margin sets it, else the default
    kind = "derived"
    expr = "clv_simple * gross_margin / cac"
    parameters = { gross_margin = 1.0 }

Every kind of :mod:`kpihub.kpis.spec` can be declared (``cumulative`` with
``window = "3 months"`` or ``to_date = "year"``; ``conversion`` with ``base``,
``conversion`` and ``window``; ``cohort`` with ``age``).

A wrong definition (unknown field, table or column, SQL that does not parse,
an unknown KPI in a derived expression, derived KPIs that refer to each other
in a cycle, an id a plugin already uses) is a one-line error naming the KPI.

The project's KPI parameters (``[project] gross_margin``) are given to every KPI, a plugin's or the
project's, that declares a parameter of that name (:func:`apply_parameters`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kpihub.config import Project
from kpihub.errors import ConfigError, KPIError
from kpihub.kpis.compiler import GrainError, compile_kpi, rfm_sql
from kpihub.kpis.periods import GRAINS
from kpihub.kpis.spec import KINDS, KPI, Aggregation, Input, Kind, Measure, Parameter, Unit

__all__ = ["apply_parameters", "project_kpis", "register_project_kpis"]


class _MeasureModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str
    agg: Aggregation  # the spec's own literals: a new aggregation or unit is accepted here too
    time: str
    expr: str | None = None
    filter: str | None = None
    currency: str | None = None
    max_grain: Literal["day", "week", "month", "quarter", "year"] | None = None
    until: str | None = None
    over_time: Literal["sum", "first", "last", "average"] = "sum"
    per: Literal["day", "week", "month", "quarter", "year"] | None = None
    entity: tuple[str, ...] = ()


class _InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kpi: str
    offset: int = 0
    unit: Literal["day", "week", "month", "quarter", "year"] | None = None


class _KPIModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    description: str = ""
    unit: Unit
    direction: Literal["higher", "lower"]
    kind: Kind
    stage: Literal["Reach", "Engage", "Act", "Nurture"] | None = None
    reference: str = ""
    filter: str | None = None
    measure: _MeasureModel | None = None
    numerator: _MeasureModel | None = None
    denominator: _MeasureModel | None = None
    expr: str | None = None
    inputs: dict[str, _InputModel] = {}
    window: str | None = None
    to_date: Literal["day", "week", "month", "quarter", "year"] | None = None
    base: _MeasureModel | None = None
    conversion: _MeasureModel | None = None
    age: int = 1
    model: str | None = None
    options: dict[str, Any] = {}
    parameters: dict[str, float] = {}


assert set(KINDS) == set(_KPIModel.model_fields["kind"].annotation.__args__)  # type: ignore[union-attr]


def _measure(m: _MeasureModel | None) -> Measure | None:
    return None if m is None else Measure(**m.model_dump())


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
            roles = ("measure", "numerator", "denominator", "base", "conversion")
            fields: dict[str, Any] = model.model_dump(exclude={*roles, "inputs", "parameters"})
            fields["parameters"] = {name: Parameter(v) for name, v in model.parameters.items()}
            fields.update({role: _measure(getattr(model, role)) for role in roles})
            fields["inputs"] = {alias: Input(**i.model_dump()) for alias, i in model.inputs.items()}
            kpi = KPI(id=kpi_id, tags=("project",), **fields)
            if kpi.kind != "derived":  # derived KPIs are checked once every KPI is known
                _test_compile(kpi, {})
        except (ValueError, KPIError) as exc:
            raise ConfigError(f"{where}: [kpis.{kpi_id}]: {exc}") from None
        out.append(kpi)
    return out


def _test_compile(kpi: KPI, catalog: Mapping[str, KPI]) -> None:
    if kpi.kind == "model":
        rfm_sql(kpi, as_of=dt.date(2024, 1, 31))
        return
    first: GrainError | None = None
    # At the first grain the KPI is defined at: a day (most), a month (customer-months) ...
    for grain in GRAINS:
        try:
            compile_kpi(kpi, grain=grain, start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 2), catalog=catalog)
            return
        except GrainError as exc:
            first = first or exc
    assert first is not None
    raise first


def register_project_kpis(kpis: dict[str, Any], project: Project) -> None:
    """Add the project's KPIs to ``kpis`` (a registry's table); an id already taken is an error.

    Derived KPIs are compiled against the whole catalogue, so a reference to an unknown KPI or a
    cycle is reported here, naming the KPI.
    """
    where = project.path.name if project.path else "kpihub.toml"
    mine = project_kpis(project)
    for kpi in mine:
        if kpi.id in kpis and "project" not in kpis[kpi.id].tags:
            raise ConfigError(f"[kpis.{kpi.id}] in {where}: a plugin already defines KPI {kpi.id!r}")
        kpis[kpi.id] = kpi
    apply_parameters(kpis, project.settings.kpi_parameters())
    mine = [kpis[kpi.id] for kpi in mine]
    for kpi in mine:
        if kpi.kind == "derived":
            try:
                _test_compile(kpi, kpis)
            except KPIError as exc:
                raise ConfigError(f"{where}: [kpis.{kpi.id}]: {exc}") from None


def apply_parameters(kpis: MutableMapping[str, KPI], values: Mapping[str, float]) -> None:
    """Set each KPI parameter named in ``values`` (the project's ``gross_margin`` …) in ``kpis``, in place."""
    for kpi_id, kpi in list(kpis.items()):
        given = {name: p for name, p in kpi.parameters.items() if name in values}
        if given:
            params = {**kpi.parameters, **{name: replace(p, value=values[name]) for name, p in given.items()}}
            kpis[kpi_id] = replace(kpi, parameters=params)
