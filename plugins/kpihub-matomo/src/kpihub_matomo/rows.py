"""Matomo rows -> kpihub rows: the exact parts of an average page load time, and a day's visits.

Which columns give a correct average page load time (matomo-org/matomo, plugins/PagePerformance):

* A page view's load time is the sum of six timings the tracker sends (``pf_net``, ``pf_srv``,
  ``pf_tfr``, ``pf_dm1``, ``pf_dm2``, ``pf_onl``: js/piwik.js) and Matomo stores per action
  (``time_network``, ``time_server``, ``time_transfer``, ``time_dom_processing``,
  ``time_dom_completion``, ``time_on_load``, milliseconds, columns/Time*.php). A timing the browser
  could not measure is not sent, so a page view may carry some of them only.
* For each page URL the Actions archive keeps ``sum_time_<x>`` (``sum(ifnull(col, 0)) / 1000``,
  seconds) and ``nb_hits_with_time_<x>`` (page views carrying that timing), plus min and max
  (Metrics.php ``attachActionMetrics``). The report's ``avg_time_<x>`` is their quotient rounded to
  3 decimals (AveragePerformanceMetric.php), and its ``avg_page_load_time`` is the **sum of the six
  averages** (AveragePageLoadTime.php): an average of averages with different denominators as soon
  as a timing is missing on some page views, and not re-aggregable over days or pages.
* ``sum_time_<x>`` is a temporary metric: the API drops it unless asked for ``showRawMetrics=1``
  (core/API/DataTablePostProcessor.php ``applyRequestedColumnDeletion``). This connector asks.

So a row's ``load_time_ms_total`` is Σ over the six timings of ``sum_time_<x>`` × 1000 (exact: sums
of whole milliseconds) and its ``page_loads`` is the largest ``nb_hits_with_time_<x>`` — the page
views with timing (a page view with any timing has the network time: the tracker sends it whenever
the navigation timing exists). A timing missing on a page view counts as 0 ms, as in Matomo's
site-wide total (RecordBuilders/PerformanceTotals.php: ``ifnull(col, 0)`` summed over actions with
any timing, divided by their count). Where all six timings are on every timed page view — the usual
case — Σ ÷ page loads equals Matomo's own ``avg_page_load_time`` for the row.

A Matomo that leaves ``sum_time_<x>`` out (a proxy or an old version ignoring ``showRawMetrics``)
still sends ``avg_time_<x>``: the total is then ``avg_time_<x>`` × ``nb_hits_with_time_<x>`` × 1000,
off by at most 0.5 ms per page view and timing (the average's rounding), and the stream says so.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Mapping
from typing import Any

from kpihub_matomo.api import WireError, count, number

__all__ = ["TIMINGS", "page_of", "performance_row", "traffic_row"]

#: Matomo's six page timings, in the order of a page load.
TIMINGS = ("network", "server", "transfer", "dom_processing", "dom_completion", "on_load")


def page_of(url: Any, label: str) -> str:
    """The page path (and query) of a row: from its ``url``, else Matomo's label (``Others``)."""
    if isinstance(url, str) and url.strip():
        parts = urllib.parse.urlsplit(url.strip())
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return label


def _timing(row: Mapping[str, Any], timing: str) -> tuple[int, float, str]:
    """(page views with the timing, their Σ in ms, how the Σ was found: ``sum``, ``average`` or ``none``)."""
    hits = count(row, f"nb_hits_with_time_{timing}")
    total = number(row, f"sum_time_{timing}", default=None)
    if not hits:
        if total:
            raise WireError(f"sum_time_{timing} is {total} s over no page view with that timing")
        # Matomo deletes every timing column of a report without timing data (beforeCompute): 0 timed views.
        return 0, 0.0, "none"
    if total is not None:
        return hits, round(total * 1000.0, 3), "sum"
    average = number(row, f"avg_time_{timing}", default=None)
    if average is not None:
        return hits, round(average * hits * 1000.0, 3), "average"
    raise WireError(f"nb_hits_with_time_{timing} is {hits} but neither sum_time_{timing} nor avg_time_{timing} came")


def performance_row(day: dt.date, row: Any, time_zone: str) -> dict[str, Any]:
    """One page URL's day, with the exact parts of its average load time (see the module docstring)."""
    if not isinstance(row, dict) or not isinstance(row.get("label"), str):
        raise WireError(f"{day}: a row without a label: {str(row)[:80]}")
    label = row["label"]
    try:
        out: dict[str, Any] = {
            "date": day.isoformat(),
            "label": label,
            "url": row.get("url") if isinstance(row.get("url"), str) else None,
            "page": page_of(row.get("url"), label),
            "time_zone": time_zone,
            "page_views": count(row, "nb_hits"),
            "visits": count(row, "nb_visits"),
        }
        found = set()
        for timing in TIMINGS:
            hits, total, how = _timing(row, timing)
            out[f"{timing}_hits"], out[f"{timing}_ms_total"] = hits, total
            found.add(how)
        out["page_loads"] = max(out[f"{t}_hits"] for t in TIMINGS)
        out["load_time_ms_total"] = round(sum(out[f"{t}_ms_total"] for t in TIMINGS), 3)
        out["matomo_avg_page_load_s"] = number(row, "avg_page_load_time", default=None)
    except WireError as exc:
        raise WireError(f"{day}, page {label!r}: {exc}") from None
    out["load_time_from"] = "average" if "average" in found else ("sum" if "sum" in found else "none")
    return out


def traffic_row(day: dt.date, row: Any, site_id: int, time_zone: str, currency: str | None) -> dict[str, Any] | None:
    """A day of ``API.get`` (``[]`` for a day without visits: no row)."""
    if row == [] or row is None:
        return None
    if not isinstance(row, dict):
        raise WireError(f"{day}: expected the day's metrics as an object, got {str(row)[:80]}")
    try:
        visits = count(row, "nb_visits")
        bounces = count(row, "bounce_count")
        if bounces > visits:
            raise WireError(f"bounce_count {bounces} is more than nb_visits {visits}")
        revenue = number(row, "revenue", default=None)
        return {
            "date": day.isoformat(),
            "site_id": str(site_id),
            "time_zone": time_zone,
            "visits": visits,
            "unique_visitors": count(row, "nb_uniq_visitors") if "nb_uniq_visitors" in row else None,
            "page_views": count(row, "nb_pageviews"),
            "bounces": bounces,
            "conversions": number(row, "nb_conversions", default=None),
            "revenue": None if revenue is None else f"{revenue:.2f}",
            "currency": currency,
        }
    except WireError as exc:
        raise WireError(f"{day}: {exc}") from None
