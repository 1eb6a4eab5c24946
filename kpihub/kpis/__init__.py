"""The KPI engine: specs, the SQL compiler, periods, targets and scorecards."""

from kpihub.kpis.engine import KPIEngine, KPISeries
from kpihub.kpis.periods import Period
from kpihub.kpis.spec import KPI, Measure

__all__ = ["KPI", "KPIEngine", "KPISeries", "Measure", "Period"]
