"""KPI definitions: a :class:`KPI` made of :class:`Measure` s over canonical tables.

Kinds (after dbt MetricFlow):

* ``simple`` — one measure;
* ``ratio`` — Σnumerator ÷ Σdenominator at the requested grain, each measure
  aggregated to the grain on its own (so the two may come from different
  tables/sources) before they are joined on the time spine; a zero
  denominator gives null;
* ``derived`` — an SQL expression over other KPIs' values, each optionally
  offset in time (:class:`Input`: the previous period, the same period last
  year), and named numbers the project sets (:class:`Parameter`: a gross
  margin); a division by zero gives null;
* ``cumulative`` — a simple or ratio KPI over a trailing ``window`` ("3
  months", "28 days") or from the start of the ``to_date`` period (month-,
  quarter-, year-to-date) up to the end of each period; with neither, since
  the beginning of the data;
* ``conversion`` — of the entities with a ``base`` event in the period, the
  share with a ``conversion`` event within ``window`` after it;
* ``cohort`` — retention of customers by acquisition period
  (:mod:`kpihub.kpis.cohorts`); the KPI's value is the retention at ``age``;
* ``model`` — a statistical model fitted on the data (:mod:`kpihub.models`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kpihub.kpis.periods import GRAINS, Grain

__all__ = [
    "KPI",
    "Additivity",
    "Aggregation",
    "Direction",
    "Input",
    "Kind",
    "Measure",
    "Parameter",
    "Unit",
    "Window",
]

Aggregation = Literal["count", "sum", "count_distinct", "count_before", "max", "min"]
Additivity = Literal["additive", "distinct", "snapshot"]
OverTime = Literal["sum", "first", "last", "average"]
Unit = Literal["count", "ratio", "percent", "score", "currency", "days", "hours", "months", "seconds", "milliseconds"]
Direction = Literal["higher", "lower"]
Kind = Literal["simple", "ratio", "derived", "cumulative", "conversion", "cohort", "model"]
Stage = Literal["Reach", "Engage", "Act", "Nurture"]
#: The reference of KPIs defined as in the marketing KPI handbooks this project grew from.
GUIDES = "Nordic KPI guides"
#: Names a derived expression may use that kpihub sets per period (see kpihub.kpis.compiler).
DERIVED_VARIABLES = ("periods_per_year", "days_in_period", "months_in_period")
KINDS: tuple[str, ...] = ("simple", "ratio", "derived", "cumulative", "conversion", "cohort", "model")


@dataclass(frozen=True)
class Window:
    """A length of time: ``Window(3, "month")``; parsed from ``"3 months"``."""

    n: int
    unit: Grain

    @classmethod
    def parse(cls, text: str | Window) -> Window:
        if isinstance(text, Window):
            return text
        m = re.fullmatch(r"\s*(\d+)\s*(day|week|month|quarter|year)s?\s*", str(text).lower())
        if not m or int(m[1]) < 1:
            raise ValueError(f"{text!r} is not a window (use e.g. '28 days', '3 months', '1 year')")
        return cls(int(m[1]), m[2])  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.n} {self.unit}{'s' if self.n != 1 else ''}"


@dataclass(frozen=True)
class Input:
    """Another KPI used by a ``derived`` KPI, optionally offset in time.

    ``offset`` counts periods of the requested grain (``-1``: the previous
    period) or, with ``unit``, calendar units (``offset=-1, unit="year"``: the
    same period last year, at any grain).
    """

    kpi: str
    offset: int = 0
    unit: Grain | None = None


@dataclass(frozen=True)
class Measure:
    """An aggregate of one canonical table, placed in time by ``time``.

    :param table: canonical table name (``crm_contacts`` …).
    :param agg: ``count`` (rows), ``sum`` (of ``expr``), ``count_distinct`` (of ``expr``),
        ``count_before``: the running total of rows placed before each period starts (a stock, e.g.
        customers at the start of the month), or ``max`` / ``min`` (of ``expr``: the slowest page's
        p75 of each one's latest snapshot, with ``entity``).
    :param time: column that puts a row into a period (timestamp or date).
    :param expr: SQL expression over the table's columns (``sum``/``count_distinct``).
    :param filter: SQL condition rows must meet.
    :param currency: column holding the ISO currency of ``expr`` when it is money;
        the engine refuses to add amounts in different currencies.
    :param per: ``count_distinct`` only: count distinct (``expr``, ``per`` period of the row's local time)
        pairs — with ``per="month"``, each month's distinct customers added up over the months of a longer
        period (customer-months). Such a count adds up over periods made of whole ``per`` periods, and is
        refused at a finer grain.
    :param entity: with ``over_time`` ``first`` or ``last``: the columns naming what a row is a snapshot
        of (a page and device, an account). Each entity's first or last row in the period (by ``time``)
        is taken — rows that ``filter`` keeps — and ``agg`` goes over those rows: the period's value is
        each entity's latest snapshot, never a sum over the period's days. With the time column the
        entity columns should identify a row (the table's key), or the latest row of a tie is arbitrary.
    """

    table: str
    agg: Aggregation
    time: str
    expr: str | None = None
    filter: str | None = None
    currency: str | None = None
    #: The coarsest grain at which summing rows is meaningful (daily user counts: ``day``).
    max_grain: str | None = None
    #: ``count_before`` only: a column that takes rows out of the stock once it is before the
    #: period start (``ended_at``: subscriptions active at the start of each period).
    until: str | None = None
    #: How a snapshot adds up over time: daily totals are taken and the period's value is the
    #: ``first``, ``last`` or ``average`` day (followers, MRR); ``sum`` (default) adds rows up.
    over_time: OverTime = "sum"
    per: Grain | None = None
    entity: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity", tuple(self.entity))
        if self.agg in ("max", "min") and not self.expr:
            raise ValueError(f"measure of {self.table}: {self.agg} needs an expr")
        if self.entity and (self.over_time not in ("first", "last") or self.agg == "count_before"):
            raise ValueError(f"measure of {self.table}: entity is for over_time 'first' or 'last' snapshots of rows")
        if self.per is None:
            return
        if self.per not in GRAINS:
            raise ValueError(f"measure of {self.table}: per {self.per!r} is not a grain ({', '.join(GRAINS)})")
        if self.agg != "count_distinct" or not self.expr:
            raise ValueError(f"measure of {self.table}: per is for count_distinct measures with an expr")
        if self.max_grain is not None or self.over_time != "sum":
            raise ValueError(f"measure of {self.table}: per and max_grain / over_time do not go together")

    @property
    def additivity(self) -> Additivity:
        """How the measure adds up over time: counts and sums add, distinct counts and snapshots do not
        (a distinct count ``per`` month adds up over months: it is the sum of the months' counts)."""
        if self.max_grain is not None or self.agg in ("count_before", "max", "min") or self.over_time != "sum":
            return "snapshot"
        return "distinct" if self.agg == "count_distinct" and self.per is None else "additive"


@dataclass(frozen=True)
class Parameter:
    """A number a ``derived`` KPI's expression uses by name (``gross_margin``), which the project can set.

    :param default: the value while the project does not set it.
    :param unset_note: said next to the KPI's value while the default is used (the scorecard's note),
        when the default is a choice the reader should know about ("gross margin not set: revenue payback").
    :param value: the project's value (:func:`kpihub.kpis.project.apply_parameters`); None: not set.
    """

    default: float
    unset_note: str = ""
    value: float | None = None

    @property
    def current(self) -> float:
        """The number the expression uses: the project's value, else the default."""
        return self.default if self.value is None else self.value


@dataclass(frozen=True)
class KPI:
    """A KPI: what it is, which way is good, and how it is computed.

    :param id: unique id (``win_rate``); the name used in targets and the CLI.
    :param unit: ``count``, ``ratio``, ``percent`` (a ratio shown ×100), ``score`` (a value on its own
        scale, shown as it is: NPS from −100 to +100), ``currency``, ``days``, ``hours``, ``months``, ``seconds``,
        ``milliseconds`` (web vitals, as the Chrome UX Report gives them).
    :param direction: ``higher`` or ``lower`` is better.
    :param kind: see the module docstring; ``simple`` and ``cumulative`` use ``measure`` (or, for
        a cumulative ratio, ``numerator``/``denominator``), ``ratio`` uses ``numerator`` /
        ``denominator``, ``derived`` uses ``expr`` over ``inputs`` (alias → :class:`Input`; a
        bare KPI id in ``expr`` is an input without offset), ``conversion`` uses ``base`` and
        ``conversion`` measures (``expr`` = the entity key) and ``window``, ``cohort`` uses
        ``measure`` (``expr`` = the customer key) and ``age``, ``model`` names a ``model`` with
        its ``options``.
    :param stage: funnel stage (Reach, Engage, Act, Nurture) for grouping.
    :param filter: SQL condition applied to every measure (all of them must have its columns).
    :param reference: where the definition comes from (a guide, a standard, a paper).
    :param parameters: ``derived`` only: name → :class:`Parameter` (or a number, its default) of the
        numbers ``expr`` uses besides other KPIs.
    """

    id: str
    title: str
    description: str
    unit: Unit
    direction: Direction
    kind: Kind
    measure: Measure | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    stage: Stage | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    filter: str | None = None
    expr: str | None = None
    inputs: Mapping[str, Input] = field(default_factory=dict)
    window: Window | str | None = None
    to_date: Grain | None = None
    base: Measure | None = None
    conversion: Measure | None = None
    age: int = 1
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""
    parameters: Mapping[str, Parameter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(ok: object, what: str) -> None:
            if not ok:
                raise ValueError(f"KPI {self.id!r}: a {self.kind} KPI needs {what}")

        if self.kind not in KINDS:
            raise ValueError(f"KPI {self.id!r}: unknown kind {self.kind!r} (choose from {', '.join(KINDS)})")
        if self.window is not None:
            object.__setattr__(self, "window", Window.parse(self.window))
        if self.to_date is not None and self.to_date not in GRAINS:
            raise ValueError(f"KPI {self.id!r}: to_date {self.to_date!r} is not a grain ({', '.join(GRAINS)})")
        if self.kind in ("simple", "cohort"):
            need(self.measure, "a measure")
        elif self.kind == "ratio":
            need(self.numerator and self.denominator, "a numerator and a denominator")
        elif self.kind == "derived":
            need(self.expr, "an expr over other KPIs")
        elif self.kind == "cumulative":
            need(self.measure or (self.numerator and self.denominator), "a measure (or a numerator and denominator)")
            if self.window is not None and self.to_date is not None:
                raise ValueError(f"KPI {self.id!r}: give a cumulative KPI a window or to_date, not both")
        elif self.kind == "conversion":
            need(self.base and self.conversion and self.window, "base and conversion measures and a window")
        elif self.kind == "model":
            need(self.model, "a model name")
        if self.kind == "cohort" and self.age < 0:
            raise ValueError(f"KPI {self.id!r}: cohort age must be 0 or more")
        inputs = {k: (v if isinstance(v, Input) else Input(**v)) for k, v in dict(self.inputs).items()}
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "parameters", self._checked_parameters())

    def _checked_parameters(self) -> dict[str, Parameter]:
        params = {k: v if isinstance(v, Parameter) else Parameter(float(v)) for k, v in dict(self.parameters).items()}
        if params and self.kind != "derived":
            raise ValueError(f"KPI {self.id!r}: parameters are for derived KPIs, not {self.kind}")
        for name in params:
            if not name.isidentifier():
                raise ValueError(f"KPI {self.id!r}: parameter {name!r} is not a name")
            if name in DERIVED_VARIABLES:
                raise ValueError(f"KPI {self.id!r}: parameter {name!r} is a variable kpihub sets per period")
            if name in self.inputs:
                raise ValueError(f"KPI {self.id!r}: {name!r} is both an input and a parameter")
        return params

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reader of the KPI's value should know: the notes of parameters left at their default."""
        return tuple(p.unset_note for p in self.parameters.values() if p.value is None and p.unset_note)

    @property
    def measures(self) -> dict[str, Measure]:
        """This KPI's own measures by role (none for ``derived`` and ``model``: see their inputs)."""
        roles = {
            "value": self.measure,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "base": self.base,
            "conversion": self.conversion,
        }
        out = {role: m for role, m in roles.items() if m is not None}
        if self.filter:
            out = {role: _with_filter(m, self.filter) for role, m in out.items()}
        return out

    @property
    def tables(self) -> tuple[str, ...]:
        """The canonical tables the KPI's measures read, each once, in the order first used."""
        return tuple(dict.fromkeys(m.table for m in self.measures.values()))

    @property
    def additive(self) -> bool:
        """True when the value over a period is the sum of its sub-periods (counts, sums)."""
        return self.kind == "simple" and self.measures["value"].additivity == "additive"

    @property
    def additivity(self) -> str:
        """How the KPI's value over a period relates to its sub-periods' (shown in the catalogue)."""
        if self.kind == "simple":
            return self.measures["value"].additivity
        if self.kind == "ratio" and any(m.entity for m in self.measures.values()):
            return "ratio of each entity's latest snapshot in the period (never summed over it)"
        if self.kind in ("ratio", "conversion"):
            return "ratio of additive parts (re-aggregated, never averaged)"
        if self.kind == "cumulative":
            window = (
                f"trailing {self.window}" if self.window else f"{self.to_date}-to-date" if self.to_date else "all time"
            )
            return f"cumulative ({window})"
        if self.kind == "derived":
            return "derived (computed from its inputs per period)"
        if self.kind == "cohort":
            return f"cohort retention at age {self.age}"
        return f"model ({self.model}), refitted per period"

    def __hash__(self) -> int:
        return hash(self.id)


def _with_filter(measure: Measure, condition: str) -> Measure:
    from dataclasses import replace

    both = f"({measure.filter}) AND ({condition})" if measure.filter else condition
    return replace(measure, filter=both)
