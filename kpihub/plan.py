"""What the next sync would read and send, worked out before anything runs (``kpihub plan``).

For each source and stream: the window it reads (from its state, ``start_date`` and its lookback),
the requests it expects to send (:meth:`kpihub.source.Stream.estimate`), what they spend of the
source's limits (:meth:`kpihub.source.Source.plan_limits`, and a flat ``requests_per_second``) and
how long the budget makes that take. A rolling window of ``limit`` per ``seconds`` lets the first
``limit`` through at once and then ``limit`` per ``seconds``; a window longer than the run's
longest wait (``max_retry_after``: a daily cap, GA4's tokens per hour) stops the run with status
``quota`` instead, so what exceeds it takes that many runs, one per window.

Pure: a project, its sources and the state in, a :class:`Plan` out. No request is sent and no
destination is opened here (the CLI reads the state).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kpihub.config import Project
from kpihub.errors import ConfigError
from kpihub.http.quota import Limit
from kpihub.plugins import Registry
from kpihub.source import Estimate, PlanContext, Requests
from kpihub.state import state_key
from kpihub.sync import Pipeline, select_streams

__all__ = ["Plan", "SourcePlan", "Spend", "StreamPlan", "make_plan", "spend"]

#: The limit a flat ``requests_per_second`` setting is shown as.
FLAT_LIMIT = "requests_per_second"


@dataclass(frozen=True)
class Spend:
    """What planned requests spend of one limit's window, and the time the budget makes that take.

    :param size: the limit (``None``: learnt from the platform's responses at run time).
    :param wait: seconds spent waiting for the window (``None``: the size is unknown).
    :param runs: syncs it takes: more than one when it exceeds a window the run does not wait out.
    """

    limit: str
    key: str
    units: float
    size: float | None
    seconds: float
    wait: float | None
    runs: int = 1


def spend(requests: Iterable[Requests], limits: Sequence[Limit], *, max_wait: float) -> list[Spend]:
    """Each limit window's share of ``requests`` (matched as the rate budget matches a request)."""
    units: dict[tuple[str, str], float] = defaultdict(float)
    for r in requests:
        for limit in limits:
            key = limit.key(r.method, r.path)
            if key is not None and r.count:
                units[(limit.name, key)] += r.count * r.cost_in(limit.name)
    specs = {limit.name: limit for limit in limits}
    out = []
    for (name, key), used in units.items():
        limit = specs[name]
        wait, runs = _budget(used, limit.limit, limit.seconds, max_wait)
        out.append(Spend(name, key, used, limit.limit, limit.seconds, wait, runs))
    return out


def _budget(units: float, size: float | None, seconds: float, max_wait: float) -> tuple[float | None, int]:
    """``(wait, runs)`` for ``units`` through a rolling window of ``size`` per ``seconds``."""
    if size is None or size <= 0:
        return None, 1
    if units <= size:
        return 0.0, 1
    if seconds > max_wait:  # the budget refuses to wait this long: the sync stops on quota
        runs = math.ceil(units / size)
        return (runs - 1) * seconds, runs
    return (units - size) / size * seconds, 1


@dataclass(frozen=True)
class StreamPlan:
    """One stream's estimate and what it spends of the source's limits on its own."""

    source_id: str
    stream: str
    estimate: Estimate
    spend: tuple[Spend, ...]

    @property
    def key(self) -> str:
        return state_key(self.source_id, self.stream)


@dataclass(frozen=True)
class SourcePlan:
    """A source's streams, and what they spend together (they share one budget)."""

    source_id: str
    source_type: str
    streams: tuple[StreamPlan, ...]
    spend: tuple[Spend, ...]
    limits: tuple[Limit, ...]


@dataclass(frozen=True)
class Plan:
    """Every planned source; :meth:`rows` is what ``kpihub plan --format json`` prints."""

    sources: tuple[SourcePlan, ...]

    def rows(self) -> list[dict[str, Any]]:
        """One row per stream, then one per source (``stream`` null) with its streams together."""
        out = []
        for s in self.sources:
            for p in s.streams:
                e = p.estimate
                out.append(
                    _row(s, p.stream, e.mode, e.since, e.until, e.records, e.request_count, e.at_least, p.spend)
                    | {"basis": e.basis}
                )
            records = [p.estimate.records for p in s.streams]
            total = _row(
                s,
                None,
                None,
                None,
                None,
                None if None in records else sum(r or 0 for r in records),
                sum(p.estimate.request_count for p in s.streams),
                any(p.estimate.at_least for p in s.streams),
                s.spend,
            )
            out.append(total | {"basis": "all streams together: they share the source's budget"})
        return out


def _row(
    s: SourcePlan,
    stream: str | None,
    mode: str | None,
    since: Any,
    until: Any,
    records: int | None,
    requests: int,
    at_least: bool,
    spent: Sequence[Spend],
) -> dict[str, Any]:
    seconds, runs = budget_time(spent)
    return {
        "source": s.source_id,
        "type": s.source_type,
        "stream": stream,
        "mode": mode,
        "since": _text(since),
        "until": _text(until),
        "records": records,
        "requests": requests,
        "requests_at_least": at_least,
        "quota": [
            {
                "limit": x.limit,
                "key": x.key,
                "units": x.units,
                "limit_size": x.size,
                "per_seconds": x.seconds,
                "wait_seconds": x.wait,
                "runs": x.runs,
            }
            for x in spent
        ],
        "budget_seconds": seconds,
        "runs": runs,
    }


def budget_time(spent: Sequence[Spend]) -> tuple[float | None, int]:
    """The time the budget makes these spends take (the slowest window binds; ``None``: unknown) and
    the runs they need. Windows whose size is unknown count as unknown only when none is known."""
    known = [x.wait for x in spent if x.wait is not None]
    runs = max((x.runs for x in spent), default=1)
    if not known:
        return (None if spent else 0.0), runs
    return max(known), runs


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def make_plan(
    project: Project,
    registry: Registry,
    state: Mapping[str, Mapping[str, Any]],
    *,
    sources: Sequence[str] | None = None,
    streams: Sequence[str] | None = None,
    full_refresh: bool = False,
    now: dt.datetime | None = None,
) -> Plan:
    """The plan of ``kpihub sync [sources] --streams ... [--full-refresh]`` against ``state``."""
    pipeline = Pipeline(project, registry=registry)
    source_ids = list(sources or pipeline.source_ids())
    if not source_ids:
        raise ConfigError("no sources configured: add a [sources.<id>] table to kpihub.toml")
    now = now or dt.datetime.now(dt.timezone.utc)
    planned = []
    for source_id in source_ids:
        source, settings = pipeline.resolve_source(source_id)
        limits = list(source.plan_limits(settings))
        if settings.requests_per_second:
            limits.append(Limit(FLAT_LIMIT, settings.requests_per_second, 1.0))
        wait = settings.max_retry_after
        stream_plans = []
        for stream in select_streams(source_id, source.streams(settings), streams):
            ctx = PlanContext(
                source_id=source_id,
                stream=stream.name,
                settings=settings,
                state=state.get(state_key(source_id, stream.name)),
                full_refresh=full_refresh,
                now=now,
            )
            estimate = stream.estimate(ctx)
            spent = tuple(spend(estimate.requests, limits, max_wait=wait))
            stream_plans.append(StreamPlan(source_id, stream.name, estimate, spent))
        together = [r for p in stream_plans for r in p.estimate.requests]
        planned.append(
            SourcePlan(
                source_id,
                source.name,
                tuple(stream_plans),
                tuple(spend(together, limits, max_wait=wait)),
                tuple(limits),
            )
        )
    return Plan(tuple(planned))
