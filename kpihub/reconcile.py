"""Reconciliation: what a sync loaded, compared with the platform's own totals.

Where a platform reports totals beside its rows (GA4's ``totals`` row for
``metricAggregations: ["TOTAL"]``, an ad platform's account-level report), a stream
says so with :meth:`StreamContext.expect_total
<kpihub.source.StreamContext.expect_total>`. The engine adds up every numeric column over
the rows it commits, per value of the stream's ``reconcile_by`` columns (an account, a
property), and compares the sums for each expectation's scope (after repeated records were dropped) and, at the
end of the stream, a difference beyond rounding makes the stream's status
``mismatch``: the summary names the column, the scope and both numbers, the state
keeps them for the scorecard's data-quality line, and ``kpihub sync`` exits non-zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Expectation", "Tally"]


@dataclass(frozen=True)
class Expectation:
    """The platform's total of ``column`` over the rows matching ``where``."""

    column: str
    expected: float | Decimal | int
    where: tuple[tuple[str, Any], ...] = ()
    #: Absolute difference allowed (rounding of per-row values), and relative to the total.
    tolerance: float = 0.01
    relative: float = 1e-6

    @property
    def scope(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.where) or "all rows"


class Tally:
    """Sums of every numeric column over committed rows, per value of the stream's ``reconcile_by``.

    Kept from the first commit on, so totals a platform reports at the end of a stream (or of an
    account) can still be compared with everything committed before.
    """

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self.keys = tuple(keys)
        self.sums: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))

    def add(self, table: pa.Table) -> None:
        """Count ``table`` (rows just committed)."""
        if not table.num_rows or not all(k in table.column_names for k in self.keys):
            return
        numeric = [
            f.name
            for f in table.schema
            if f.name not in self.keys
            and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type))
        ]
        if not numeric:
            return
        if self.keys:
            grouped = table.group_by(list(self.keys), use_threads=False).aggregate([(c, "sum") for c in numeric])
        else:
            grouped = pa.table({f"{c}_sum": [pc.sum(table[c]).as_py()] for c in numeric})
        for row in grouped.to_pylist():
            sums = self.sums[tuple(_plain(row[k]) for k in self.keys)]
            for c in numeric:
                if row[f"{c}_sum"] is not None:
                    sums[c] += row[f"{c}_sum"]

    def loaded(self, e: Expectation) -> Any:
        """The committed rows' sum of ``e.column`` over ``e.where`` (keys of ``reconcile_by``)."""
        where = {k: _plain(v) for k, v in e.where}
        total: Any = 0
        for scope, sums in self.sums.items():
            values = dict(zip(self.keys, scope))
            if all(values.get(k) == v for k, v in where.items()):
                total += sums.get(e.column, 0)
        return total

    def mismatches(self, expectations: Sequence[Expectation]) -> list[dict[str, Any]]:
        """The expectations the committed rows do not meet: column, scope, loaded, expected."""
        out = []
        for e in expectations:
            unknown = [k for k, _ in e.where if k not in self.keys]
            if unknown:
                raise ValueError(
                    f"expect_total(where={dict(e.where)}): {unknown[0]!r} is not in the stream's reconcile_by"
                )
            loaded = self.loaded(e)
            difference = abs(float(loaded) - float(e.expected))
            if difference > max(e.tolerance, e.relative * abs(float(e.expected))):
                out.append(
                    {"column": e.column, "scope": e.scope, "loaded": _number(loaded), "expected": _number(e.expected)}
                )
        return out


def expectation(column: str, expected: Any, where: Mapping[str, Any] | None, tolerance: float | None) -> Expectation:
    extra = {} if tolerance is None else {"tolerance": tolerance}
    return Expectation(column, expected, tuple(sorted((where or {}).items())), **extra)


def _plain(value: Any) -> Any:
    return str(value) if value is not None else None


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    return value
