"""Reporting periods: day, week (ISO, Monday), month, quarter, year."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["GRAINS", "MAX_PERIODS", "Grain", "Period", "period_starts", "periods_between"]

Grain = Literal["day", "week", "month", "quarter", "year"]
GRAINS: tuple[Grain, ...] = ("day", "week", "month", "quarter", "year")


def truncate(day: dt.date, grain: Grain) -> dt.date:
    """The first day of the period of ``grain`` containing ``day``."""
    if grain == "day":
        return day
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return dt.date(day.year, 1, 1)


def shift(start: dt.date, grain: Grain, n: int) -> dt.date:
    """The start of the period ``n`` periods after the one starting at ``start``."""
    if grain == "day":
        return start + dt.timedelta(days=n)
    if grain == "week":
        return start + dt.timedelta(weeks=n)
    months = {"month": 1, "quarter": 3, "year": 12}[grain] * n
    index = start.year * 12 + start.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Period:
    """A calendar period: ``[start, end)`` at ``grain``, in the reporting time zone."""

    start: dt.date
    grain: Grain

    @property
    def end(self) -> dt.date:
        """First day after the period."""
        return shift(self.start, self.grain, 1)

    @classmethod
    def containing(cls, day: dt.date, grain: Grain) -> Period:
        return cls(truncate(day, grain), grain)

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2024`` · ``2024-Q2`` · ``2024-06`` · ``2024-W23`` · ``2024-06-14``."""
        s = text.strip().upper()
        if m := re.fullmatch(r"(\d{4})", s):
            return cls(dt.date(int(m[1]), 1, 1), "year")
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", s):
            return cls(dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1), "quarter")
        if m := re.fullmatch(r"(\d{4})-(\d{2})", s):
            if 1 <= int(m[2]) <= 12:
                return cls(dt.date(int(m[1]), int(m[2]), 1), "month")
        if m := re.fullmatch(r"(\d{4})-W(\d{2})", s):
            try:
                return cls(dt.date.fromisocalendar(int(m[1]), int(m[2]), 1), "week")
            except ValueError:
                pass
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            try:
                return cls(dt.date.fromisoformat(s), "day")
            except ValueError:
                pass
        raise ValueError(f"{text!r} is not a period (use 2024, 2024-Q2, 2024-06, 2024-W23 or 2024-06-14)")

    @property
    def label(self) -> str:
        if self.grain == "year":
            return f"{self.start.year}"
        if self.grain == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        if self.grain == "month":
            return self.start.strftime("%Y-%m")
        if self.grain == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.isoformat()

    def previous(self, n: int = 1) -> Period:
        return Period(shift(self.start, self.grain, -n), self.grain)

    def next(self, n: int = 1) -> Period:
        return Period(shift(self.start, self.grain, n), self.grain)

    def same_last_year(self) -> Period:
        if self.grain == "week":
            year, week, _ = self.start.isocalendar()
            try:
                return Period(dt.date.fromisocalendar(year - 1, week, 1), "week")
            except ValueError:
                return Period(dt.date.fromisocalendar(year - 1, 52, 1), "week")
        if self.grain == "day":
            try:
                return Period(self.start.replace(year=self.start.year - 1), "day")
            except ValueError:  # 29 February
                return Period(self.start.replace(year=self.start.year - 1, day=28), "day")
        return Period(self.start.replace(year=self.start.year - 1), self.grain)

    def elapsed(self, today: dt.date) -> float:
        """Fraction of the period elapsed on ``today`` (whole days; 1.0 once it has ended)."""
        total = (self.end - self.start).days
        done = (min(max(today, self.start), self.end) - self.start).days
        return done / total

    def __str__(self) -> str:
        return self.label


def period_starts(start: dt.date, end: dt.date, grain: Grain) -> list[dt.date]:
    """Starts of every period of ``grain`` overlapping ``[start, end)``: the time spine."""
    out = []
    current = truncate(start, grain)
    while current < end:
        out.append(current)
        current = shift(current, grain, 1)
    return out


#: The most periods one series call scores (ten years of days).
MAX_PERIODS = 3_660


def periods_between(first: Period, last: Period, grain: Grain) -> list[Period]:
    """Every period of ``grain`` from the one ``first`` starts in to the one ``last`` ends in.

    ``--from 2024-01 --to 2024-12 --grain month`` is twelve months; ``--from 2024-Q1 --to 2024-Q2
    --grain week`` the ISO weeks those quarters touch. ``ValueError`` for an empty or huge range.
    """
    if last.end <= first.start:
        raise ValueError(f"--to {last.label} ends before --from {first.label} starts")
    starts = period_starts(first.start, last.end, grain)
    if len(starts) > MAX_PERIODS:
        raise ValueError(f"{len(starts):,} {grain}s from {first.label} to {last.label}: at most {MAX_PERIODS:,}")
    return [Period(start, grain) for start in starts]
