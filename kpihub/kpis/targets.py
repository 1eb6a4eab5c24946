"""KPI targets: baseline, target, period, direction — from a TOML or CSV file.

TOML::

    [[target]]
    kpi = "mqls"
    period = "2026-Q2"     # 2026, 2026-Q2, 2026-06, 2026-W23, 2026-06-14
    baseline = 1200        # where we started (usually the previous period)
    target = 1400          # where we want to be by the end of the period
    # direction = "higher" # defaults to the KPI's

CSV: a header ``kpi,period,baseline,target[,direction]`` and one row per target.
A target is SMART-checked: one without a baseline or a period is flagged.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpihub.errors import ConfigError
from kpihub.kpis.periods import Period
from kpihub.kpis.spec import KPI

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Target", "load_targets"]


@dataclass(frozen=True)
class Target:
    """One KPI target; ``issues`` lists what makes it less than SMART."""

    kpi: str
    period: Period | None
    baseline: float | None
    target: float
    direction: str
    at_risk_from: float = 0.5

    @property
    def issues(self) -> list[str]:
        out = []
        if self.period is None:
            out.append("no period (not time-bound)")
        if self.baseline is None:
            out.append("no baseline")
        elif self.baseline == self.target:
            out.append("target equals baseline")
        elif (self.target > self.baseline) != (self.direction == "higher"):
            out.append(f"target moves against the KPI's direction ({self.direction} is better)")
        return out


def load_targets(path: str | Path, kpis: Mapping[str, KPI]) -> list[Target]:
    """Read targets from ``path`` (.toml or .csv); one-line errors name file, row and field."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"targets file {str(file)!r} does not exist")
    if file.suffix.lower() == ".csv":
        with open(file, newline="", encoding="utf-8") as fh:
            rows: list[dict[str, Any]] = [dict(r) for r in csv.DictReader(fh)]
    else:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        rows = data.get("target", [])
        if not isinstance(rows, list):
            raise ConfigError(f"{file}: 'target' must be an array of tables ([[target]])")
    return [_target(file, i + 1, row, kpis) for i, row in enumerate(rows)]


def _target(file: Path, n: int, row: Mapping[str, Any], kpis: Mapping[str, KPI]) -> Target:
    where = f"{file}: target #{n}"
    kpi_id = str(row.get("kpi") or "").strip()
    if not kpi_id:
        raise ConfigError(f"{where}: 'kpi' is required")
    if kpi_id not in kpis:
        raise ConfigError(f"{where}: unknown KPI {kpi_id!r} (see `kpihub kpis --list`)")
    kpi = kpis[kpi_id]
    unknown = set(row) - {"kpi", "period", "baseline", "target", "direction", "at_risk_from"}
    if unknown:
        raise ConfigError(f"{where} ({kpi_id}): unknown field {sorted(unknown)[0]!r}")
    period = None
    if row.get("period") not in (None, ""):
        try:
            period = Period.parse(str(row["period"]))
        except ValueError as exc:
            raise ConfigError(f"{where} ({kpi_id}): {exc}") from None
    values: dict[str, float | None] = {}
    for name in ("baseline", "target", "at_risk_from"):
        raw = row.get(name)
        if raw in (None, ""):
            values[name] = None
            continue
        try:
            values[name] = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} ({kpi_id}): {name} {raw!r} is not a number") from None
    if values["target"] is None:
        raise ConfigError(f"{where} ({kpi_id}): 'target' is required")
    direction = str(row.get("direction") or kpi.direction)
    if direction not in ("higher", "lower"):
        raise ConfigError(f"{where} ({kpi_id}): direction must be 'higher' or 'lower', not {direction!r}")
    scale = 100.0 if kpi.unit == "percent" else 1.0  # percent targets are written as 25 for 25 %
    return Target(
        kpi=kpi_id,
        period=period,
        baseline=None if values["baseline"] is None else values["baseline"] / scale,
        target=values["target"] / scale,  # type: ignore[operator]
        direction=direction,
        at_risk_from=values["at_risk_from"] if values["at_risk_from"] is not None else 0.5,
    )
