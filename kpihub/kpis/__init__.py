"""The KPI engine: specs, the SQL compiler, periods, targets and scorecards.

The compiler (sqlglot) and the engine (DuckDB) are imported from their
modules, so defining a KPI stays cheap: ``from kpihub.kpis.spec import KPI``.
"""

from kpihub.kpis.periods import Period
from kpihub.kpis.spec import KPI, Measure

__all__ = ["KPI", "Measure", "Period"]
