"""Demo files for ``kpihub demo``: the demo business's costs, surveys, tickets, social and page timings.

Seeded and deterministic, monthly/daily over the demo business's dates, with
gentle trends so the scorecard has something to say.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from typing import Any

from kpihub.testing import DEMO_BUSINESS


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, d = [], start.replace(day=1)
    while d <= end:
        out.append(d)
        d = (d + dt.timedelta(days=32)).replace(day=1)
    return out


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def demo_files(*, seed: int = 7, scale: int = 1) -> dict[str, str]:
    """File name → CSV text for each table the file source feeds."""
    rng = random.Random(seed)
    b = DEMO_BUSINESS
    months = _months(b.start, b.end)
    days = _days(b.start, b.end)
    cur = b.currency

    costs = []
    for i, m in enumerate(months):
        last = (m + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        for category, base, growth in (("marketing", 9000, 150), ("sales", 14000, 200), ("salaries", 30000, 300)):
            amount = (base + growth * i) * scale * rng.uniform(0.95, 1.05)
            costs.append([m, last, category, f"{amount:.2f}", cur])
        costs.append([m, last, "cogs", f"{18000 * scale * (1 + i / 40) * rng.uniform(0.95, 1.05):.2f}", cur])

    social = []
    # LinkedIn only: the demo's Facebook Page and Instagram account come from kpihub-meta-pages'
    # fake API (rows for them here too would count the same platforms twice).
    followers = {"linkedin": 3000}
    for d in days:
        for platform, base in (("linkedin", 1500),):
            impressions = int(base * scale * rng.uniform(0.6, 1.4))
            engagements = int(impressions * rng.uniform(0.02, 0.06))
            followers[platform] += rng.randint(-5, 25) * scale
            social.append(
                [
                    d,
                    platform,
                    f"nordlys-{platform}",
                    impressions,
                    int(impressions * 0.7),
                    engagements,
                    followers[platform],
                ]
            )

    pages = []
    for i, d in enumerate(days):
        for page, loads, ms in (
            ("/", 900, 1900),
            ("/shop", 700, 2600),
            ("/product", 1200, 2300),
            ("/checkout", 150, 3100),
        ):
            n = int(loads * scale * rng.uniform(0.8, 1.2))
            per = ms * (1 - i / 3000) * rng.uniform(0.9, 1.1)  # the site gets a little faster
            pages.append([d, page, n, f"{n * per:.1f}"])

    return {
        "costs.csv": _csv(["period_start", "period_end", "category", "amount", "currency"], costs),
        "social_daily.csv": _csv(
            ["date", "platform", "account_id", "impressions", "reach", "engagements", "followers"], social
        ),
        "page_performance_daily.csv": _csv(["date", "page", "page_loads", "load_time_ms_total"], pages),
    }


#: Sample targets for ``kpihub demo``: Q2 2026 against a Q1 baseline.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "cac", "period": "2026-Q2", "baseline": 310, "target": 280},
    {"kpi": "social_engagement_rate", "period": "2026-Q2", "baseline": 3.9, "target": 4.2},
    {"kpi": "avg_page_load_seconds", "period": "2026-Q2", "baseline": 2.0, "target": 1.85},
]
