"""The KPI engine: specs, the SQL compiler, periods, targets and scorecards.

The compiler (sqlglot) and the engine (DuckDB) are imported from their
modules, so defining a KPI stays cheap: ``from kpihub.kpis.spec import KPI``.
``Scorecard``, ``ScorecardRow`` and ``build_scorecard`` load the engine on first use.
"""

from __future__ import annotations

from typing import Any

from kpihub.kpis.periods import Period
from kpihub.kpis.spec import KPI, Measure

__all__ = ["KPI", "Measure", "Period", "Scorecard", "ScorecardRow", "build_scorecard"]

_SCORECARD = ("Scorecard", "ScorecardRow", "build_scorecard")


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing kpihub.kpis for a KPI spec does not load DuckDB and the compiler.
    if name in _SCORECARD:
        from kpihub.kpis import scorecard

        return getattr(scorecard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
