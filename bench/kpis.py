"""KPI engine vs hand-written DuckDB SQL over the same data, same run (issue 14, point 3).

    python bench/kpis.py [--rows 10000000] [--rounds 3] [--demo-scale 1]

Setup (once): ``--rows`` ``ad_performance_daily`` rows (24 months, 3 platforms × 4 accounts ×
50 campaigns, one currency), generated column-wise with numpy/pyarrow in the canonical schema
(kpihub.model) and written through kpihub's destinations into a DuckDB file and a Parquet lake;
and the demo business (``kpihub demo``: fake APIs on 127.0.0.1 → DuckDB).

Then ``--rounds`` interleaved rounds; each contender is a separate process:

* ``kpihub-duckdb`` / ``kpihub-parquet``: CTR, CPC, CPA and ROAS per campaign per month over the
  24 months through ``KPIEngine.series(kpi, grain="month", by="campaign")`` (the engine
  ``kpihub kpis --by campaign`` uses), on the DuckDB file / the Parquet lake;
* ``kpihub-duckdb-many`` / ``kpihub-parquet-many``: the same through ``KPIEngine.series_many``
  (one scan of the table for the four KPIs);
* ``sql-duckdb`` / ``sql-parquet``: one hand-written DuckDB query doing the same — Σ÷Σ per campaign
  per month, a spine of every month × every campaign seen (0 sums, null rates where the
  denominator is 0), ``(not set)`` for a null campaign name — with no currency check;
  ``sql-duckdb-per-kpi`` / ``sql-parquet-per-kpi``: one such query per KPI;
* ``card-kpihub``: the demo's whole scorecard (``compute_scorecard``, as ``kpihub kpis`` does: its
  32 targets' KPIs, and the catalogue's other KPIs with values, "not targeted", which it computes
  too but which the comparison leaves out);
* ``card-sql``: one hand-written query per KPI of it (:data:`CARD_SQL`) returning the period's
  actual, the previous period's and last year's.

Each process reports the time of its work (after imports and kpihub's plugin loading; opening the
data included, and turning the results into the rows the comparison reads, keyed with Arrow compute
by every contender); the parent
reports wall time and peak RSS (``wait4``), ratios paired within a round, and checks that kpihub's
and the hand-written results are equal (every KPI, period and campaign). ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REGISTRY: Any = None  # a contender process's kpihub Registry, loaded before its timer starts
AD_KPIS = ("ctr", "cpc", "cpa", "roas")
START, END = "2024-01-01", "2026-01-01"  # 24 months
TZ = "Europe/Oslo"
AS_OF = "2026-07-01"  # the demo business's data ends in June 2026: the scorecard scores 2026-Q2
PERIODS = {  # the demo targets' period, the one before it and the same one a year back
    "actual": ("2026-04-01", "2026-07-01"),
    "previous": ("2026-01-01", "2026-04-01"),
    "last_year": ("2025-04-01", "2025-07-01"),
}

# -- data ----------------------------------------------------------------------------------------


def generate(rows: int, chunk: int = 1_000_000) -> Any:
    """``rows`` canonical ad_performance_daily rows in Arrow tables of ``chunk`` rows (column-wise)."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa

    from kpihub.model import CANONICAL_TABLES

    schema = CANONICAL_TABLES["ad_performance_daily"].schema
    first = dt.date.fromisoformat(START)
    days = (dt.date.fromisoformat(END) - first).days
    platforms = pa.array(["google_ads", "meta_ads", "linkedin_ads"])
    n_campaigns = 600  # 3 platforms × 4 accounts × 50 campaigns
    campaign_ids = pa.array([f"c{c:04d}" for c in range(n_campaigns)])
    # One campaign in 50 has no name: the engine shows it as "(not set)".
    campaign_names = pa.array([None if c % 50 == 49 else f"Campaign {c:04d}" for c in range(n_campaigns)])
    accounts = pa.array([f"acct-{c // 50:02d}" for c in range(n_campaigns)])
    rng = np.random.default_rng(14)
    offset = (first - dt.date(1970, 1, 1)).days
    for lo in range(0, rows, chunk):
        i = np.arange(lo, min(rows, lo + chunk), dtype=np.int64)
        n = len(i)
        day = i % days  # every key (date, campaign, ad) unique: ad index = i // days
        combo = i // days
        campaign = combo % n_campaigns
        ad = pa.array(combo // n_campaigns).cast(pa.string())
        impressions = rng.integers(0, 5_000, n)
        clicks = (impressions * rng.uniform(0, 0.05, n)).astype(np.int64)
        spend_cents = clicks * rng.integers(20, 300, n)
        conversions = np.round(clicks * rng.uniform(0, 0.2, n), 2)
        value_cents = (conversions * rng.integers(500, 20_000, n)).astype(np.int64)
        cols = {
            "source_id": pa.array(np.full(n, "ads")),
            # date32 counts days from 1970-01-01.
            "date": pa.array(day.astype("int32") + offset, pa.int32()).cast(pa.date32()),
            "time_zone": pa.nulls(n, pa.string()),
            "platform": platforms.take(pa.array(campaign // 200)),
            "account_id": accounts.take(pa.array(campaign)),
            "campaign_id": campaign_ids.take(pa.array(campaign)),
            "campaign_name": campaign_names.take(pa.array(campaign)),
            "ad_group_id": ad,
            "ad_id": ad,
            "impressions": pa.array(impressions),
            "clicks": pa.array(clicks),
            "spend": _money(spend_cents),
            "conversions": pa.array(conversions),
            "conversion_value": _money(value_cents),
            "currency": pa.array(np.full(n, "EUR")),
            "_loaded_at": pa.array(np.full(n, 1_700_000_000_000_000), pa.timestamp("us", "UTC")),
        }
        yield pa.table(cols).cast(schema)


def _money(cents: Any) -> Any:
    import pyarrow as pa

    # Arrow rounds a double to the decimal's scale: cents ÷ 100 arrive exact.
    return pa.array(cents / 100).cast(pa.decimal128(38, 9))


def write_data(root: Path, rows: int) -> dict[str, str]:
    """The rows into a DuckDB file and a Parquet lake through kpihub's destinations; their URIs."""
    from kpihub.destinations.base import TableWrite
    from kpihub.plugins import Registry

    reg = Registry()
    uris = {"duckdb": f"duckdb:///{root / 'ads.duckdb'}", "parquet": f"parquet:///{root / 'lake'}"}
    for uri in uris.values():
        with reg.destination_for(uri).open(uri) as session:
            for table in generate(rows):
                session.commit([TableWrite("ad_performance_daily", table, "append")], {})
    return uris


def make_demo(root: Path, scale: int) -> Path:
    """The demo business synced into DuckDB (``kpihub demo``); its project directory."""
    where = root / "demo"
    kpihub = Path(sys.executable).with_name("kpihub")
    cmd = [str(kpihub) if kpihub.exists() else sys.executable, *([] if kpihub.exists() else ["-m", "kpihub"])]
    subprocess.run([*cmd, "demo", "--dir", str(where), "--scale", str(scale)], check=True, stdout=subprocess.DEVNULL)
    return where


# -- contenders (each run in its own process: ``bench/kpis.py _run NAME ARG OUT``) -----------------


#: Each ad KPI's Σ÷Σ (kpihub/default_plugins/ads_kpis.py).
AD_RATIOS = {
    "ctr": ("clicks", "impressions"),
    "cpc": ("spend", "clicks"),
    "cpa": ("spend", "conversions"),
    "roas": ("conversion_value", "spend"),
}


def ad_sql(table: str, kpis: tuple[str, ...] = AD_KPIS) -> str:
    """``kpis`` per campaign per month, by hand: one scan, Σ÷Σ, the engine's spine (every month ×
    every campaign seen; a null rate where the denominator is 0)."""
    columns = sorted({c for k in kpis for c in AD_RATIOS[k]})
    sums = ", ".join(f"SUM({c}) AS {c}" for c in columns)
    rates = ", ".join(
        f"CASE WHEN COALESCE(a.{d}, 0) = 0 THEN NULL "
        f"ELSE CAST(COALESCE(a.{n}, 0) AS DOUBLE) / CAST(a.{d} AS DOUBLE) END AS {k}"
        for k in kpis
        for n, d in [AD_RATIOS[k]]
    )
    return f"""
    WITH a AS (
      SELECT CAST(DATE_TRUNC('month', date) AS DATE) AS period,
             COALESCE(CAST(campaign_name AS VARCHAR), '(not set)') AS campaign, {sums}
      FROM {table} WHERE date >= DATE '{START}' AND date < DATE '{END}' GROUP BY 1, 2),
    spine AS (SELECT CAST(range AS DATE) AS period FROM range(DATE '{START}', DATE '{END}', INTERVAL 1 MONTH)),
    campaigns AS (SELECT DISTINCT campaign FROM a)
    SELECT spine.period, campaigns.campaign, {rates}
    FROM spine CROSS JOIN campaigns LEFT JOIN a ON a.period = spine.period AND a.campaign = campaigns.campaign
    ORDER BY 1, 2"""


def _ads_table(uri: str) -> tuple[Any, str]:
    import duckdb

    path = uri.split(":///", 1)[1]
    con = duckdb.connect(path, read_only=True) if uri.startswith("duckdb:") else duckdb.connect()
    table = "ad_performance_daily"
    if uri.startswith("parquet:"):
        listing = json.loads((Path(path) / "_kpihub" / "state.json").read_text())  # the live files only
        files = [str(Path(path) / f) for f in _live_files(listing, table)]
        table = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"
    con.execute(f"SET TimeZone = '{TZ}'")
    return con, table


def _keyed(rows: dict[str, Any], kpi: str, period: Any, campaign: Any, value: Any) -> None:
    """``rows["<kpi>|<period>|<campaign>"] = value`` for Arrow columns: the keys built by Arrow compute,
    as both kpihub's and the hand-written contenders build them (the comparison reads these rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = pc.binary_join_element_wise(kpi, pc.cast(period, pa.string()), campaign, "|")
    rows.update(zip(keys.to_pylist(), value.to_pylist(), strict=True))


def run_sql_ads_per_kpi(uri: str, out: str) -> int:
    con, table = _ads_table(uri)
    rows: dict[str, Any] = {}
    n = 0
    for kpi in AD_KPIS:
        result = con.sql(ad_sql(table, (kpi,))).to_arrow_table()
        n = max(n, result.num_rows)
        _keyed(rows, kpi, result["period"], result["campaign"], result[kpi])
    Path(out).write_text(json.dumps(rows))
    return n


def run_sql_ads(uri: str, out: str) -> int:
    con, table = _ads_table(uri)
    result = con.sql(ad_sql(table)).to_arrow_table()
    rows: dict[str, Any] = {}
    for kpi in AD_KPIS:
        _keyed(rows, kpi, result["period"], result["campaign"], result[kpi])
    Path(out).write_text(json.dumps(rows))
    return result.num_rows


def _live_files(state: dict[str, Any], table: str) -> list[str]:
    """The files the Parquet destination's state lists for ``table`` (what its readers read)."""
    entry = state["tables"][table]
    return list(entry["files"])


def run_kpihub_ads_many(uri: str, out: str) -> int:
    return run_kpihub_ads(uri, out, many=True)


def run_kpihub_ads(uri: str, out: str, many: bool = False) -> int:
    import datetime as dt

    from kpihub.kpis.engine import KPIEngine

    reg = REGISTRY
    start, end = dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    rows: dict[str, Any] = {}
    with reg.destination_for(uri).open(uri, read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone=TZ, catalog=reg.kpis)
        n = 0
        if many:  # one scan for the four KPIs
            done = engine.series_many([reg.kpi(k) for k in AD_KPIS], grain="month", start=start, end=end, by="campaign")
        for kpi_id in AD_KPIS:
            if many:
                got = done[kpi_id]
                if isinstance(got, Exception):
                    raise got
                series = got
            else:
                series = engine.series(reg.kpi(kpi_id), grain="month", start=start, end=end, by="campaign")
            t = series.table
            n = max(n, t.num_rows)
            _keyed(rows, kpi_id, t["period"], t["campaign"], t["value"])
    Path(out).write_text(json.dumps(rows))
    return n


def _local(column: str) -> str:
    return f"({column} AT TIME ZONE '{TZ}')"


def _sums(table: str, column: str, exprs: dict[str, str | tuple[str, str]], timestamp: bool = False) -> str:
    """Each expression over each of :data:`PERIODS` (local calendar days), one scan: a plain one summed,
    an ``(aggregate, condition)`` pair aggregated over the rows that meet the condition."""
    t = _local(column) if timestamp else f"CAST({column} AS TIMESTAMP)"
    lo, hi = min(p[0] for p in PERIODS.values()), max(p[1] for p in PERIODS.values())
    cols = []
    for name, expr in exprs.items():
        agg, cond = (f"SUM({expr})", "") if isinstance(expr, str) else (expr[0], f" AND ({expr[1]})")
        cols += [
            f"{agg} FILTER (WHERE {t} >= TIMESTAMP '{a}' AND {t} < TIMESTAMP '{b}'{cond}) AS {name}_{p}"
            for p, (a, b) in PERIODS.items()
        ]
    return f"SELECT {', '.join(cols)} FROM {table} WHERE {t} >= TIMESTAMP '{lo}' AND {t} < TIMESTAMP '{hi}'"


def _counts(table: str, column: str) -> str:
    return _sums(table, column, {"n": ("COUNT(*)", "TRUE")}, timestamp=True)


#: The demo scorecard's KPIs written by hand: SQL whose one row gives ``<name>_<period>`` columns,
#: and how a value is made of them (Σ÷Σ rates, null where the denominator is 0).
CARD_SQL: dict[str, tuple[str, Any]] = {}


def _card(kpi: str, sql: str, value: Any) -> None:
    CARD_SQL[kpi] = (sql, value)


def _ratio(n: str, d: str) -> Any:
    return lambda r, p: None if not r[f"{d}_{p}"] else float(r[f"{n}_{p}"] or 0) / float(r[f"{d}_{p}"])


def _total(r: dict[str, Any], p: str) -> float:
    return float(r[f"s_{p}"] or 0)


def _two(numerator: str, denominator: str) -> str:
    """A ratio of two tables' one-row queries (``n_*`` and ``d_*`` columns) as one row."""
    return f"SELECT * FROM ({numerator}) AS n, ({denominator}) AS d"


_ADS = "ad_performance_daily"
_card("ad_spend", _sums(_ADS, "date", {"s": "spend"}), _total)
_card("ctr", _sums(_ADS, "date", {"n": "clicks", "d": "impressions"}), _ratio("n", "d"))
_card("cpc", _sums(_ADS, "date", {"n": "spend", "d": "clicks"}), _ratio("n", "d"))
_card("cpm", _sums(_ADS, "date", {"n": "spend * 1000", "d": "impressions"}), _ratio("n", "d"))
_card("cpa", _sums(_ADS, "date", {"n": "spend", "d": "conversions"}), _ratio("n", "d"))
_card("roas", _sums(_ADS, "date", {"n": "conversion_value", "d": "spend"}), _ratio("n", "d"))
_WEB = "web_traffic_daily"
_card("sessions", _sums(_WEB, "date", {"s": "sessions"}), _total)
_card("engagement_rate", _sums(_WEB, "date", {"n": "engaged_sessions", "d": "sessions"}), _ratio("n", "d"))
_card("web_conversion_rate", _sums(_WEB, "date", {"n": "key_events", "d": "sessions"}), _ratio("n", "d"))
for _kpi, _col in (("leads", "lead"), ("mqls", "mql"), ("sqls", "sql"), ("new_customers", "customer")):
    _card(_kpi, _counts("crm_contacts", f"became_{_col}_at"), lambda r, p: float(r[f"n_{p}"] or 0))
_card(
    "traffic_to_lead",
    _two(_counts("crm_contacts", "became_lead_at"), _sums(_WEB, "date", {"d": "sessions"})),
    _ratio("n", "d"),
)
_COUNT = "COUNT(*)"
_card(
    "mql_to_sql_rate",
    _sums(
        "crm_contacts",
        "became_mql_at",
        {"n": (_COUNT, "became_sql_at IS NOT NULL"), "d": (_COUNT, "TRUE")},
        timestamp=True,
    ),
    _ratio("n", "d"),
)
_ACQUIRING = "'marketing', 'sales', 'advertising', 'agency'"  # an agency's fees are marketing costs
_card(
    "cac",
    _two(
        _sums(
            "costs",
            "period_start",
            {"n": ("SUM(amount)", "category IN ('marketing', 'sales', 'advertising', 'agency')")},
        ),
        _sums("crm_contacts", "became_customer_at", {"d": (_COUNT, "TRUE")}, timestamp=True),
    ),
    _ratio("n", "d"),
)
_DEALS = {
    "win_rate": {"n": (_COUNT, "is_won"), "d": (_COUNT, "is_closed")},
    "avg_deal_size": {"n": ("SUM(amount)", "is_won"), "d": (_COUNT, "is_won AND amount IS NOT NULL")},
    "sales_cycle_days": {"n": ("SUM(DATE_DIFF('day', created_at, closed_at))", "is_won"), "d": (_COUNT, "is_won")},
}
for _kpi, _exprs in _DEALS.items():
    _card(_kpi, _sums("crm_deals", "closed_at", _exprs, timestamp=True), _ratio("n", "d"))  # type: ignore[arg-type]
_card("won_revenue", _sums("crm_deals", "closed_at", {"s": ("SUM(amount)", "is_won")}, timestamp=True), _total)
_PAID = "kind = 'charge' AND status = 'succeeded'"
_ORDERS = {
    "aov": {"n": ("SUM(gross_amount)", _PAID), "d": (_COUNT, _PAID)},
    "arpu": {"n": "net_amount", "d": ("COUNT(DISTINCT customer_id)", _PAID)},
    "refund_rate": {"n": "refunded_amount", "d": "gross_amount"},
}
for _kpi, _exprs in _ORDERS.items():
    _card(_kpi, _sums("orders", "ordered_at", _exprs, timestamp=True), _ratio("n", "d"))  # type: ignore[arg-type]
_card("sales", _sums("orders", "ordered_at", {"s": "net_amount"}, timestamp=True), _total)
_card("new_subscriptions", _counts("subscriptions", "started_at"), lambda r, p: float(r[f"n_{p}"] or 0))
_TICKETS = "support_tickets"
_NOT_DELETED = "status IS DISTINCT FROM 'deleted'"  # Zendesk exports deleted tickets as status "deleted"
_card(
    "first_contact_resolution",
    _sums(
        _TICKETS,
        "resolved_at",
        {
            "n": (_COUNT, f"agent_replies <= 1 AND COALESCE(reopens, 0) = 0 AND {_NOT_DELETED}"),
            "d": (_COUNT, _NOT_DELETED),
        },
        timestamp=True,
    ),
    _ratio("n", "d"),
)
_RESPONDED = f"first_response_at IS NOT NULL AND {_NOT_DELETED}"
_card(
    "first_response_hours",
    _sums(
        _TICKETS,
        "created_at",
        {
            "n": ("SUM(DATE_DIFF('second', created_at, first_response_at) / 3600.0)", _RESPONDED),
            "d": (_COUNT, _RESPONDED),
        },
        timestamp=True,
    ),
    _ratio("n", "d"),
)
_NPS = "SUM(CASE WHEN score >= 9 THEN 100 WHEN score <= 6 THEN -100 ELSE 0 END)"  # a score: -100 … +100
_card(
    "nps",
    _sums("survey_responses", "responded_at", {"n": (_NPS, "item = 'nps'"), "d": (_COUNT, "item = 'nps'")}, True),
    _ratio("n", "d"),
)
# CSAT: answers in the top two boxes of a scale of five points or more, the top box of a shorter one.
_TOP = "score >= scale_max - CASE WHEN scale_max - scale_min >= 4 THEN 1 ELSE 0 END"
_CSAT, _NKI = "item = 'csat'", "item = 'nki'"
_card(
    "csat",
    _sums("survey_responses", "responded_at", {"n": (_COUNT, f"{_CSAT} AND {_TOP}"), "d": (_COUNT, _CSAT)}, True),
    _ratio("n", "d"),
)
_card(
    "nki",
    _sums(
        "survey_responses",
        "responded_at",
        {"n": ("SUM(100.0 * (score - scale_min) / (scale_max - scale_min))", _NKI), "d": (_COUNT, _NKI)},
        True,
    ),
    _ratio("n", "d"),
)
_card(
    "social_engagement_rate", _sums("social_daily", "date", {"n": "engagements", "d": "impressions"}), _ratio("n", "d")
)
_card(
    "avg_page_load_seconds",
    _sums("page_performance_daily", "date", {"n": "load_time_ms_total / 1000.0", "d": "page_loads"}),
    _ratio("n", "d"),
)


def _latest_windows(exprs: dict[str, str]) -> str:
    """Core Web Vitals by hand: each CrUX target's (origin/URL x device) latest window ending in each
    of :data:`PERIODS`, then ``exprs`` aggregated over the targets; one ``<name>_<period>`` row."""
    target = "source_id, target_type, target, form_factor"
    parts = []
    for p, (a, b) in PERIODS.items():
        cols = ", ".join(f"{agg} AS {name}_{p}" for name, agg in exprs.items())
        parts.append(
            f"(SELECT {cols} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {target} ORDER BY period_end DESC) AS k"
            f" FROM page_experience WHERE period_end >= DATE '{a}' AND period_end < DATE '{b}') WHERE k = 1) AS {p}"
        )
    return f"SELECT * FROM {', '.join(parts)}"


def _last_followers() -> str:
    """Social followers by hand: each account's latest row with a count in each of :data:`PERIODS`, summed."""
    account = "source_id, platform, account_id"
    parts = []
    for p, (a, b) in PERIODS.items():
        latest = (
            f"SELECT followers, ROW_NUMBER() OVER (PARTITION BY {account} ORDER BY date DESC) AS k FROM social_daily"
            f" WHERE date >= DATE '{a}' AND date < DATE '{b}' AND followers IS NOT NULL"
        )
        parts.append(f"(SELECT SUM(followers) AS v_{p} FROM ({latest}) WHERE k = 1) AS {p}")
    return f"SELECT * FROM {', '.join(parts)}"


_card("social_followers", _last_followers(), lambda r, p: None if r[f"v_{p}"] is None else float(r[f"v_{p}"]))
_PASSES = "p75_lcp_ms <= 2500 AND p75_cls <= 0.1 AND (p75_inp_ms IS NULL OR p75_inp_ms <= 200)"
_card("lcp_p75", _latest_windows({"v": "MAX(p75_lcp_ms)"}), lambda r, p: r[f"v_{p}"])
_card(
    "core_web_vitals_pass_rate",
    _latest_windows(
        {
            "n": f"SUM(CASE WHEN {_PASSES} THEN 1 ELSE 0 END)",
            "d": "SUM(CASE WHEN p75_lcp_ms IS NOT NULL AND p75_cls IS NOT NULL THEN 1 ELSE 0 END)",
        }
    ),  # fmt: skip
    _ratio("n", "d"),
)


def run_sql_card(project_dir: str, out: str) -> int:
    import duckdb

    con = duckdb.connect(str(Path(project_dir) / "kpihub.duckdb"), read_only=True)
    con.execute(f"SET TimeZone = '{TZ}'")
    rows: dict[str, Any] = {}
    for kpi, (sql, value) in CARD_SQL.items():
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        r = dict(zip(names, cur.fetchone(), strict=True))
        for p in PERIODS:
            rows[f"{kpi}|{p}"] = value(r, p)
    Path(out).write_text(json.dumps(rows))
    return len(CARD_SQL)


def run_kpihub_card(project_dir: str, out: str) -> int:
    import datetime as dt

    from kpihub.cli.kpis import compute_scorecard
    from kpihub.config import load_project

    proj = load_project(Path(project_dir) / "kpihub.toml")
    reg = REGISTRY.for_project(proj)
    card = compute_scorecard(proj, reg, today=dt.date.fromisoformat(AS_OF))
    # The work includes the KPIs with no target that ``kpihub kpis`` lists under "not targeted";
    # the comparison reads the targets' rows, which the hand-written queries compute.
    card = [r for r in card if r.status != "not targeted"]
    rows = {}
    for r in card:
        rows[f"{r.kpi}|actual"], rows[f"{r.kpi}|previous"], rows[f"{r.kpi}|last_year"] = (
            r.actual,
            r.previous,
            r.last_year,
        )
    Path(out).write_text(json.dumps(rows))
    return len(card)


CONTENDERS = {
    "kpihub-duckdb": ("duckdb", run_kpihub_ads),
    "kpihub-duckdb-many": ("duckdb", run_kpihub_ads_many),
    "sql-duckdb": ("duckdb", run_sql_ads),
    "sql-duckdb-per-kpi": ("duckdb", run_sql_ads_per_kpi),
    "kpihub-parquet": ("parquet", run_kpihub_ads),
    "kpihub-parquet-many": ("parquet", run_kpihub_ads_many),
    "sql-parquet": ("parquet", run_sql_ads),
    "sql-parquet-per-kpi": ("parquet", run_sql_ads_per_kpi),
    "card-kpihub": ("demo", run_kpihub_card),
    "card-sql": ("demo", run_sql_card),
}
#: Each kpihub contender and the hand-written one it is compared with.
PAIRS = [
    ("kpihub-duckdb", "sql-duckdb"),
    ("kpihub-duckdb", "sql-duckdb-per-kpi"),
    ("kpihub-duckdb-many", "sql-duckdb"),
    ("kpihub-parquet", "sql-parquet"),
    ("kpihub-parquet", "sql-parquet-per-kpi"),
    ("kpihub-parquet-many", "sql-parquet"),
    ("card-kpihub", "card-sql"),
]


def _child(name: str, arg: str, out: str) -> None:
    # Imports and plugin loading are not the work compared (the wall time, measured outside, has them).
    import datetime as dt

    import duckdb  # noqa: F401
    import pyarrow as pa

    # Every contender keys its rows with Arrow compute, whose first call imports more (pandas): done here.
    _keyed({}, "warm", pa.array([dt.date(2024, 1, 1)]), pa.array(["c"]), pa.array([1.0]))

    if name.startswith(("kpihub", "card-kpihub")):
        global REGISTRY
        import kpihub.cli.kpis  # noqa: F401
        import kpihub.kpis.engine  # noqa: F401
        from kpihub.plugins import Registry

        REGISTRY = Registry()
    started = time.perf_counter()
    n = CONTENDERS[name][1](arg, out)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": n}))


def run_one(name: str, arg: str, out: Path) -> dict[str, Any]:
    """One contender in a fresh process: its work time, wall time, peak RSS and row count."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "_run", name, arg, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    return {**report, "wall": wall, "rss_mb": usage.ru_maxrss / 1024}


def compare(got: dict[str, Any], want: dict[str, Any], what: str) -> list[str]:
    """Keys or values that differ (values equal up to float summation order)."""
    problems = []
    if got.keys() != want.keys():
        extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
        problems.append(f"{what}: keys differ (only kpihub: {extra[:3]}, only by hand: {missing[:3]})")
    for key in sorted(got.keys() & want.keys()):
        a, b = got[key], want[key]
        if (a is None) != (b is None) or (a is not None and not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)):
            problems.append(f"{what}: {key}: kpihub {a} != by hand {b}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--demo-scale", type=int, default=1)
    parser.add_argument("--dir", help="Keep the data here (default: a temporary directory, removed).")
    parser.add_argument("--only", help="Comma-separated contenders (default: all).")
    parser.add_argument("--json", help="Write every measurement and the summary to this file.")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONTENDERS)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kpihub-bench-kpis-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        where: dict[str, str] = {}
        if any(CONTENDERS[n][0] != "demo" for n in names):
            if not (root / "ads.duckdb").exists():
                # In a process of its own: a child forked from a parent holding the rows would count them
                # in its peak RSS.
                subprocess.run([sys.executable, str(HERE), "_setup", str(root), str(args.rows)], check=True)
            where |= {"duckdb": f"duckdb:///{root / 'ads.duckdb'}", "parquet": f"parquet:///{root / 'lake'}"}
        if any(CONTENDERS[n][0] == "demo" for n in names):
            where["demo"] = str(root / "demo") if (root / "demo").exists() else str(make_demo(root, args.demo_scale))
        took = time.perf_counter() - t0
        print(f"setup: {args.rows:,} ad rows, demo scale {args.demo_scale}: {took:.1f}s", flush=True)
        runs: list[dict[str, Any]] = []
        problems: list[str] = []
        for rnd in range(args.rounds):
            results: dict[str, Any] = {}
            for name in names:
                out = root / f"{name}.json"
                m = run_one(name, where[CONTENDERS[name][0]], out)
                results[name] = json.loads(out.read_text())
                runs.append({"round": rnd, "contender": name, **m})
                print(
                    f"round {rnd} {name:16} work {m['seconds']:7.3f}s  wall {m['wall']:7.3f}s  "
                    f"rss {m['rss_mb']:6.0f} MB  rows {m['rows']}",
                    flush=True,
                )
            for mine, hand in PAIRS:
                if mine in results and hand in results:
                    kpis = _kpis_of(hand, results)  # the KPIs written by hand
                    problems += compare(
                        {k: v for k, v in results[mine].items() if k.split("|")[0] in kpis},
                        results[hand],
                        f"round {rnd} {mine} vs {hand}",
                    )
        summary = summarize(runs, names)
        for line in summary["lines"]:
            print(line)
        if args.json:
            Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary["ratios"]}, indent=2))
        for p in problems[:20]:
            print("MISMATCH", p)
        print("results equal" if not problems else f"{len(problems)} mismatches")
        return 0 if not problems else 1
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


def _kpis_of(hand: str, results: dict[str, Any]) -> set[str]:
    return {k.split("|")[0] for k in results[hand]}


def summarize(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Median work/wall time per contender and median of each round's ratio kpihub ÷ by hand."""
    lines, ratios = [], {}
    by = {n: [r for r in runs if r["contender"] == n] for n in names}
    for n, rs in by.items():
        if rs:
            lines.append(
                f"{n:16} median work {statistics.median(r['seconds'] for r in rs):7.3f}s  "
                f"wall {statistics.median(r['wall'] for r in rs):7.3f}s  "
                f"peak RSS {max(r['rss_mb'] for r in rs):6.0f} MB"
            )
    for mine, hand in PAIRS:
        if by.get(mine) and by.get(hand):
            work = [a["seconds"] / b["seconds"] for a, b in zip(by[mine], by[hand], strict=True)]
            wall = [a["wall"] / b["wall"] for a, b in zip(by[mine], by[hand], strict=True)]
            ratios[f"{mine}/{hand}"] = {"work": statistics.median(work), "wall": statistics.median(wall)}
            lines.append(
                f"{mine} ÷ {hand}: work ×{statistics.median(work):.2f} "
                f"(rounds {', '.join(f'{w:.2f}' for w in work)}),"
                f" wall ×{statistics.median(wall):.2f}"
            )
    if by.get("card-kpihub"):
        lines.append(
            f"whole demo scorecard: median work {statistics.median(r['seconds'] for r in by['card-kpihub']):.3f}s for "
            f"{by['card-kpihub'][0]['rows']} rows ({len(CARD_SQL)} KPIs written by hand)"
        )
    return {"lines": lines, "ratios": ratios}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_run":
        _child(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_setup":
        write_data(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main())
