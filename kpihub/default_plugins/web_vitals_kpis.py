"""Built-in Core Web Vitals KPIs over ``page_experience`` (the Chrome UX Report, kpihub-crux).

Each row of ``page_experience`` is a 28-day window of real Chrome users' page loads, and the
windows overlap (a daily snapshot, or a weekly collection period): adding them up, or averaging
them, over a month counts the same page loads again and again. So every KPI here takes each
target's (origin or URL × form factor) **latest** window in the period, and only then goes across
targets: the slowest target's p75 for LCP, INP and CLS, and the share of targets that pass.

Thresholds, on the 75th percentile (web.dev/articles/vitals; the same numbers as
``LCPThresholds``, ``INPThresholds``, ``CLSThresholds`` in GoogleChrome/web-vitals): LCP ≤ 2500 ms,
INP ≤ 200 ms, CLS ≤ 0.1 are "good". A target passes when LCP and CLS are good and INP is good
or has too little data to be reported, as the CrUX team counts origins passing
(GoogleChrome/CrUX ``sql/core-web-vitals-compliance-rates.sql``: "good LCP, INP (optional), and
CLS divided by origins with any LCP and CLS"); a target without LCP or CLS data is not assessed.
"""

from __future__ import annotations

from collections.abc import Callable

from kpihub.hookspecs import hookimpl
from kpihub.kpis.spec import KPI, Aggregation, Measure, Unit

P = "page_experience"
#: What one CrUX record is a snapshot of: a source's origin or URL on a device class.
TARGET = ("source_id", "target_type", "target", "form_factor")
#: "Good" at the 75th percentile (web.dev/articles/vitals).
GOOD_LCP_MS, GOOD_INP_MS, GOOD_CLS = 2500, 200, 0.1
ASSESSED = "p75_lcp_ms IS NOT NULL AND p75_cls IS NOT NULL"
PASSES = (
    f"p75_lcp_ms <= {GOOD_LCP_MS} AND p75_cls <= {GOOD_CLS} "
    f"AND (p75_inp_ms IS NULL OR p75_inp_ms <= {GOOD_INP_MS})"
)
REFERENCE = "web.dev/articles/vitals (Core Web Vitals thresholds); Chrome UX Report API"


def latest(expr: str, agg: Aggregation) -> Measure:
    """``agg`` of ``expr`` over each target's latest window ending in the period."""
    return Measure(P, agg, "period_end", expr=expr, over_time="last", entity=TARGET)


def _p75(kpi_id: str, title: str, column: str, unit: Unit, good: str) -> KPI:
    return KPI(
        id=kpi_id,
        title=title,
        description=f"75th percentile of real Chrome users' page loads (CrUX) in each target's latest 28-day "
        f"window of the period; with several origins, URLs or devices, the slowest target's (break it down by "
        f"target or form_factor). Good: {good}.",
        unit=unit,
        direction="lower",
        kind="simple",
        measure=latest(column, "max"),
        stage="Engage",
        reference=REFERENCE,
    )


WEB_VITALS_KPIS = (
    _p75("lcp_p75", "Largest Contentful Paint (p75)", "p75_lcp_ms", "milliseconds", f"≤ {GOOD_LCP_MS} ms"),
    _p75("inp_p75", "Interaction to Next Paint (p75)", "p75_inp_ms", "milliseconds", f"≤ {GOOD_INP_MS} ms"),
    _p75("cls_p75", "Cumulative Layout Shift (p75)", "p75_cls", "ratio", f"≤ {GOOD_CLS}"),
    KPI(
        id="core_web_vitals_pass_rate",
        title="Core Web Vitals pass rate",
        description=f"Targets (origin or URL × form factor) whose latest 28-day window in the period has p75 LCP ≤ "
        f"{GOOD_LCP_MS} ms, CLS ≤ {GOOD_CLS} and INP ≤ {GOOD_INP_MS} ms (or too little INP data) ÷ targets with "
        "LCP and CLS data in it (CrUX).",
        unit="percent",
        direction="higher",
        kind="ratio",
        numerator=latest(f"CASE WHEN {PASSES} THEN 1 ELSE 0 END", "sum"),
        denominator=latest(f"CASE WHEN {ASSESSED} THEN 1 ELSE 0 END", "sum"),
        stage="Engage",
        reference=REFERENCE + "; GoogleChrome/CrUX sql/core-web-vitals-compliance-rates.sql",
    ),
)


@hookimpl
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    for kpi in WEB_VITALS_KPIS:
        register(kpi)
