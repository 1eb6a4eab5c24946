"""Which insights metric feeds each ``social_daily`` column, by platform, API version and date.

Meta retires insights metrics on a date for *every* API version — from then on the metric is
answered with the invalid-metric error ``(#100)`` — and sometimes for new versions first:

* Facebook Pages (developers.facebook.com/documentation/pages-api/platforminsights/page/
  deprecated-metrics; the Pages API changelog; blog 2025-08-15 "Page Insights API Updates"):
  ``page_engaged_users`` and ``page_consumptions`` went on 2024-03-14; on 2025-11-15 every
  impressions metric went (``page_impressions`` → ``page_media_view``, "replaced by the views
  metric on all API versions") and ``page_fans`` → ``page_follows``; ``page_impressions_unique``
  → ``page_total_media_view_unique`` "by June 15, 2026" (the Page Insights reference; the v25.0
  changelog says "when v26.0 is released", 2026-07-29; the deprecated-metrics page dates the
  same list "June 15, 2025", which reads as a typo: we take the reference's 2026-06-15).
* Instagram accounts (developers.facebook.com/docs/instagram-platform/api-reference/
  instagram-user/insights): ``impressions`` "deprecated for v22.0 and ... for all versions on
  April 21, 2025", replaced by ``views`` with ``metric_type=total_value``.

The metric chosen is the first of a column's chain that is not retired for the configured version
on the day of the sync; users may name another per column (``facebook_metrics`` /
``instagram_metrics``), and a metric Meta refuses is reported with its replacement.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = ["FACEBOOK", "INSTAGRAM", "RETIRED", "Metric", "choose", "refusal", "version_number"]


@dataclass(frozen=True)
class Metric:
    """An insights metric and when Meta stops answering it."""

    name: str
    #: Refused on every API version from this day on.
    gone_on: dt.date | None = None
    #: Refused from this major API version on, before ``gone_on``.
    gone_from_version: int | None = None
    #: What Meta names as its alternative (``None``: none).
    replacement: str | None = None

    def retired(self, version: int, today: dt.date) -> bool:
        """Meta refuses this metric for ``version`` on ``today``."""
        by_date = self.gone_on is not None and today >= self.gone_on
        by_version = self.gone_from_version is not None and version >= self.gone_from_version
        return by_date or by_version


FB_VIEWS_DAY = dt.date(2025, 11, 15)
#: Per ``social_daily`` column, the Page metrics in the order they were current.
FACEBOOK: dict[str, tuple[Metric, ...]] = {
    "impressions": (Metric("page_impressions", FB_VIEWS_DAY, None, "page_media_view"), Metric("page_media_view")),
    "reach": (
        Metric("page_impressions_unique", dt.date(2026, 6, 15), None, "page_total_media_view_unique"),
        Metric("page_total_media_view_unique"),
    ),
    "engagements": (Metric("page_post_engagements"),),
    "followers": (Metric("page_fans", FB_VIEWS_DAY, None, "page_follows"), Metric("page_follows")),
}
#: Per column, the Instagram account metrics; ``followers`` has none (see the README: the API
#: gives a total only for the moment of the request, and daily gains).
INSTAGRAM: dict[str, tuple[Metric, ...]] = {
    "impressions": (Metric("impressions", dt.date(2025, 4, 21), 22, "views"), Metric("views")),
    "reach": (Metric("reach"),),
    "engagements": (Metric("total_interactions"),),
}
#: Every retired metric we know, by name: what the chains hold and what users might still name.
RETIRED: dict[str, Metric] = {
    m.name: m
    for m in (
        *(m for chain in (*FACEBOOK.values(), *INSTAGRAM.values()) for m in chain if m.replacement),
        Metric("page_engaged_users", dt.date(2024, 3, 14), None, None),
        Metric("page_consumptions", dt.date(2024, 3, 14), None, None),
        Metric("page_impressions_paid", FB_VIEWS_DAY, None, "page_media_view"),
        Metric("page_fan_adds", FB_VIEWS_DAY, None, None),
        Metric("page_fan_removes", FB_VIEWS_DAY, None, None),
        Metric("plays", dt.date(2025, 4, 21), 22, "views"),
    )
}


def version_number(version: str) -> int:
    """``v25.0`` → 25; :class:`ValueError` for anything else."""
    m = re.fullmatch(r"v(\d+)\.0", version)
    if m is None:
        raise ValueError(f"api_version {version!r} is not a Graph API version like 'v25.0'")
    return int(m.group(1))


def choose(
    chains: dict[str, tuple[Metric, ...]], overrides: dict[str, str], version: int, today: dt.date
) -> dict[str, str]:
    """The metric name per column: an override, else the first of its chain still answered."""
    chosen = {}
    for column, chain in chains.items():
        live = [m for m in chain if not m.retired(version, today)]
        chosen[column] = overrides.get(column) or (live or chain[-1:])[0].name
    return chosen


def refusal(where: str, requested: dict[str, str], error: str, setting: str) -> str:
    """The one-line message for Meta's ``(#100)`` refusal of ``requested`` (column → metric)."""
    named = [(c, m) for c, m in requested.items() if re.search(rf"\b{re.escape(m)}\b", error)]
    known = [(c, m) for c, m in requested.items() if m in RETIRED]
    for column, metric in named + known:
        if metric not in RETIRED:
            continue
        gone = RETIRED[metric]
        when = f" (retired {gone.gone_on.isoformat()} for all API versions)" if gone.gone_on else ""
        instead = (
            f"use {gone.replacement!r} instead ({setting}.{column} = {gone.replacement!r}, or leave it unset)"
            if gone.replacement
            else f"Meta names no replacement: leave {setting}.{column} unset"
        )
        return f"{where}: Meta refuses insights metric {metric!r} for {column}{when}; {instead}"
    metrics = ", ".join(repr(m) for c, m in named or list(requested.items()))
    return f"{where}: Meta refuses insights metric(s) {metrics} as invalid (#100); check {setting}: {error}"
