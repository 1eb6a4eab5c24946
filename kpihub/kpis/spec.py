"""KPI definitions: a :class:`KPI` made of :class:`Measure` s over canonical tables.

Kinds (after dbt MetricFlow): ``simple`` — one measure; ``ratio`` —
Σnumerator ÷ Σdenominator at the requested grain, each measure aggregated to
the grain on its own (so the two may come from different tables/sources)
before they are joined on the time spine. A zero denominator gives null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["KPI", "Additivity", "Aggregation", "Direction", "Kind", "Measure", "Unit"]

Aggregation = Literal["count", "sum", "count_distinct", "count_before"]
Additivity = Literal["additive", "distinct", "snapshot"]
Unit = Literal["count", "ratio", "percent", "currency", "days"]
Direction = Literal["higher", "lower"]
Kind = Literal["simple", "ratio"]
Stage = Literal["Reach", "Engage", "Act", "Nurture"]


@dataclass(frozen=True)
class Measure:
    """An aggregate of one canonical table, placed in time by ``time``.

    :param table: canonical table name (``crm_contacts`` …).
    :param agg: ``count`` (rows), ``sum`` (of ``expr``), ``count_distinct`` (of ``expr``), or
        ``count_before``: the running total of rows placed before each period starts (a stock, e.g.
        customers at the start of the month).
    :param time: column that puts a row into a period (timestamp or date).
    :param expr: SQL expression over the table's columns (``sum``/``count_distinct``).
    :param filter: SQL condition rows must meet.
    :param currency: column holding the ISO currency of ``expr`` when it is money;
        the engine refuses to add amounts in different currencies.
    """

    table: str
    agg: Aggregation
    time: str
    expr: str | None = None
    filter: str | None = None
    currency: str | None = None
    #: The coarsest grain at which summing rows is meaningful (daily user counts: ``day``).
    max_grain: str | None = None

    @property
    def additivity(self) -> Additivity:
        """How the measure adds up over time: counts and sums add, distinct counts do not."""
        if self.max_grain is not None or self.agg == "count_before":
            return "snapshot"
        return "distinct" if self.agg == "count_distinct" else "additive"


@dataclass(frozen=True)
class KPI:
    """A KPI: what it is, which way is good, and how it is computed.

    :param id: unique id (``win_rate``); the name used in targets and the CLI.
    :param unit: ``count``, ``ratio``, ``percent`` (a ratio shown ×100), ``currency``, ``days``.
    :param direction: ``higher`` or ``lower`` is better.
    :param kind: ``simple`` (``measure``) or ``ratio`` (``numerator`` / ``denominator``).
    :param stage: funnel stage (Reach, Engage, Act, Nurture) for grouping.
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

    def __post_init__(self) -> None:
        if self.kind == "simple" and self.measure is None:
            raise ValueError(f"KPI {self.id!r}: a simple KPI needs a measure")
        if self.kind == "ratio" and (self.numerator is None or self.denominator is None):
            raise ValueError(f"KPI {self.id!r}: a ratio KPI needs a numerator and a denominator")

    @property
    def measures(self) -> dict[str, Measure]:
        if self.kind == "simple":
            assert self.measure is not None
            return {"value": self.measure}
        assert self.numerator is not None and self.denominator is not None
        return {"numerator": self.numerator, "denominator": self.denominator}

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.table for m in self.measures.values()))

    @property
    def additive(self) -> bool:
        """True when the value over a period is the sum of its sub-periods (counts, sums)."""
        return self.kind == "simple" and self.measures["value"].additivity == "additive"
