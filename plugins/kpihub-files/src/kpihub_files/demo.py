"""Demo files for ``kpihub demo``: the demo business's costs, the one thing it has no API for.

Everything else the demo scores (surveys, tickets, social, page timings, Core Web Vitals) comes from
the other plugins' fake APIs. Seeded and deterministic, monthly over the demo business's dates, with
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


def demo_files(*, seed: int = 7, scale: int = 1) -> dict[str, str]:
    """File name → CSV text for each table the file source feeds."""
    rng = random.Random(seed)
    b = DEMO_BUSINESS
    months = _months(b.start, b.end)
    cur = b.currency

    costs = []
    for i, m in enumerate(months):
        last = (m + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        for category, base, growth in (("marketing", 9000, 150), ("sales", 14000, 200), ("salaries", 30000, 300)):
            amount = (base + growth * i) * scale * rng.uniform(0.95, 1.05)
            costs.append([m, last, category, f"{amount:.2f}", cur])
        costs.append([m, last, "cogs", f"{18000 * scale * (1 + i / 40) * rng.uniform(0.95, 1.05):.2f}", cur])
        # The ad agency's monthly retainer, plus campaign production in spring and autumn.
        production = 1500 if m.month in (3, 4, 9, 10) else 0
        costs.append([m, last, "agency", f"{(2400 + production) * scale:.2f}", cur])

    return {
        "costs.csv": _csv(["period_start", "period_end", "category", "amount", "currency"], costs),
    }


#: Sample targets for ``kpihub demo``: Q2 2026 against a Q1 baseline. The business's targets file holds
#: those of KPIs several of its sources feed: orders from Stripe and the Shopify shop, CAC from the
#: costs and the CRM (a plugin's demo targets only KPIs of its own tables).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "cac", "period": "2026-Q2", "baseline": 342, "target": 310},
    {"kpi": "sales", "period": "2026-Q2", "baseline": 166500, "target": 180000},
    {"kpi": "aov", "period": "2026-Q2", "baseline": 216, "target": 225},
    {"kpi": "arpu", "period": "2026-Q2", "baseline": 307, "target": 320},
    {"kpi": "refund_rate", "period": "2026-Q2", "baseline": 6.2, "target": 5.0},
]
