"""CrUX responses -> ``page_experience`` rows: one per 28-day window, checked against the wire format.

Daily (``records:queryRecord``, developer.chrome.com/docs/crux/api): ``record.metrics.<metric>`` has a
three-bin ``histogram`` (``start``/``end``/``density``, the last bin without ``end``) and
``percentiles.p75``; ``record.collectionPeriod`` has ``firstDate``/``lastDate`` as ``{year, month, day}``.
CLS values are strings ("0.05": "a double encoded as a string ... reported with 2 decimals"), the others
integers in milliseconds. A metric without enough data is absent.

History (``records:queryHistoryRecord``, developer.chrome.com/docs/crux/history-api): the same with
``histogramTimeseries[].densities[]``, ``percentilesTimeseries.p75s[]`` and ``record.collectionPeriods[]``,
oldest first; a week without eligible data is ``"NaN"`` in the densities and ``null`` in the p75s. Both
become null here, never 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["METRICS", "history_rows", "record_rows"]

#: CrUX metric -> (column prefix, the bins' edges between good / needs improvement / poor). The edges are
#: the Core Web Vitals thresholds (web.dev/articles/vitals); a response with other bins is refused, since
#: ``*_good_share`` would then mean something else.
METRICS: dict[str, tuple[str, tuple[Decimal, Decimal]]] = {
    "largest_contentful_paint": ("lcp", (Decimal(2500), Decimal(4000))),
    "interaction_to_next_paint": ("inp", (Decimal(200), Decimal(500))),
    "cumulative_layout_shift": ("cls", (Decimal("0.1"), Decimal("0.25"))),
}


class WireError(ValueError):
    """The response is not in the CrUX shape the connector reads (the stream names the target)."""


def _date(value: Any, what: str) -> dt.date:
    try:
        return dt.date(int(value["year"]), int(value["month"]), int(value["day"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"{what} is not a {{year, month, day}} date: {value!r}") from exc


def _number(value: Any, what: str) -> Decimal | None:
    """A p75 or a bin edge as the API sends it (an int, or a string for CLS); ``null``/``"NaN"`` -> None."""
    if value is None or value == "NaN":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise WireError(f"{what} is not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise WireError(f"{what} is not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise WireError(f"{what} is not a non-negative number: {value!r}")
    return number


def _density(value: Any, what: str) -> float | None:
    if value is None or value == "NaN":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or not 0 <= value <= 1:
        raise WireError(f"{what} is not a share between 0 and 1: {value!r}")
    return float(value)


def _check_bins(bins: Sequence[Mapping[str, Any]], metric: str) -> None:
    _, (good, poor) = METRICS[metric]
    if len(bins) != 3:
        raise WireError(f"{metric} has {len(bins)} histogram bins, not good / needs improvement / poor")
    edges = [_number(bins[0].get("end"), f"{metric} bin end"), _number(bins[1].get("end"), f"{metric} bin end")]
    if edges != [good, poor] or "end" in bins[2]:
        raise WireError(f"{metric} bins end at {edges}, not at the Core Web Vitals thresholds {good} and {poor}")


def _p75(metric: str, value: Any) -> Any:
    number = _number(value, f"{metric} p75")
    if number is None:
        return None
    if metric == "cumulative_layout_shift":
        return number
    if number != number.to_integral_value():
        raise WireError(f"{metric} p75 is not a whole number of milliseconds: {value!r}")
    return int(number)


def _key(record: Mapping[str, Any], form_factor: str) -> dict[str, str]:
    key = record.get("key")
    if not isinstance(key, Mapping):
        raise WireError("the record has no key")
    kinds = [k for k in ("origin", "url") if k in key]
    if len(kinds) != 1:
        raise WireError(f"the record key names neither an origin nor a URL: {key!r}")
    got = key.get("formFactor") or "ALL"
    if got != form_factor:
        raise WireError(f"asked for form factor {form_factor}, the record is for {got}")
    return {"target_type": kinds[0], "target": str(key[kinds[0]]), "form_factor": form_factor}


def record_rows(body: Mapping[str, Any], form_factor: str) -> list[dict[str, Any]]:
    """The one window of a ``queryRecord`` answer."""
    record = body.get("record")
    if not isinstance(record, Mapping):
        raise WireError("the answer has no record")
    period = record.get("collectionPeriod") or {}
    row: dict[str, Any] = {
        "period_start": _date(period.get("firstDate"), "collectionPeriod.firstDate"),
        "period_end": _date(period.get("lastDate"), "collectionPeriod.lastDate"),
        **_key(record, form_factor),
        "endpoint": "queryRecord",
    }
    metrics = record.get("metrics") or {}
    for metric, (prefix, _) in METRICS.items():
        data = metrics.get(metric)
        shares: list[float | None] = [None, None, None]
        p75 = None
        if data is not None:
            bins = data.get("histogram") or []
            _check_bins(bins, metric)
            shares = [_density(b.get("density"), f"{metric} density") for b in bins]
            p75 = _p75(metric, (data.get("percentiles") or {}).get("p75"))
        row.update(_columns(prefix, p75, shares))
    return [row]


def history_rows(body: Mapping[str, Any], form_factor: str) -> list[dict[str, Any]]:
    """One row per collection period of a ``queryHistoryRecord`` answer, oldest first."""
    record = body.get("record")
    if not isinstance(record, Mapping):
        raise WireError("the answer has no record")
    key = _key(record, form_factor)
    periods = record.get("collectionPeriods") or []
    rows = [
        {
            "period_start": _date(p.get("firstDate"), f"collectionPeriods[{i}].firstDate"),
            "period_end": _date(p.get("lastDate"), f"collectionPeriods[{i}].lastDate"),
            **key,
            "endpoint": "queryHistoryRecord",
        }
        for i, p in enumerate(periods)
    ]
    metrics = record.get("metrics") or {}
    for metric, (prefix, _) in METRICS.items():
        data = metrics.get(metric)
        if data is None:
            for row in rows:
                row.update(_columns(prefix, None, [None, None, None]))
            continue
        bins = data.get("histogramTimeseries") or []
        _check_bins(bins, metric)
        series = [b.get("densities") or [] for b in bins]
        p75s = (data.get("percentilesTimeseries") or {}).get("p75s") or []
        # Parallel arrays: one value per collection period, or the periods and values do not line up.
        if any(len(s) != len(rows) for s in (*series, p75s)):
            raise WireError(f"{metric} has {[len(s) for s in (*series, p75s)]} values for {len(rows)} periods")
        for i, row in enumerate(rows):
            shares = [_density(s[i], f"{metric} density {i}") for s in series]
            row.update(_columns(prefix, _p75(metric, p75s[i]), shares))
    return rows


def _columns(prefix: str, p75: Any, shares: Sequence[float | None]) -> dict[str, Any]:
    unit = "" if prefix == "cls" else "_ms"
    good, ni, poor = shares
    return {
        f"p75_{prefix}{unit}": p75,
        f"{prefix}_good_share": good,
        f"{prefix}_ni_share": ni,
        f"{prefix}_poor_share": poor,
    }
