"""Property: a ratio KPI over a period equals Σ numerators ÷ Σ denominators of any partition of its rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kpihub.default_plugins.ads_kpis import ADS_KPIS
from kpihub.kpis.engine import KPIEngine
from kpihub.model import CANONICAL_TABLES

KPIS = {k.id: k for k in ADS_KPIS}
START, END = dt.date(2024, 1, 1), dt.date(2024, 4, 1)

row = st.tuples(
    st.dates(min_value=START, max_value=END - dt.timedelta(days=1)),
    st.sampled_from(["a1", "a2", "a3"]),  # the account each row belongs to: the partition key
    st.integers(min_value=0, max_value=10_000),  # impressions
    st.integers(min_value=0, max_value=500),  # clicks
    st.integers(min_value=0, max_value=100_000),  # spend in cents
)


def engine(rows: list[tuple]) -> KPIEngine:
    schema = CANONICAL_TABLES["ad_performance_daily"].schema
    table = pa.Table.from_pylist(
        [
            {f.name: None for f in schema}
            | {
                "source_id": "s",
                "date": d,
                "platform": "p",
                "account_id": a,
                "campaign_id": f"c{i}",
                "ad_group_id": "",
                "ad_id": "",
                "impressions": imp,
                "clicks": clk,
                "spend": Decimal(cents) / 100,
                "conversions": 0.0,
                "conversion_value": Decimal(0),
                "currency": "EUR",
            }
            for i, (d, a, imp, clk, cents) in enumerate(rows)
        ],
        schema=schema,
    )
    con = duckdb.connect()
    con.register("_t", table)
    con.execute("CREATE TABLE ad_performance_daily AS SELECT * FROM _t")
    return KPIEngine(con)


@settings(max_examples=30, deadline=None)
@example(rows=[(START, "a1", 0, 0, 1), (START, "a2", 0, 0, 9293)], kpi="cpc", grain="week")  # 0.01 + 92.93
@given(
    rows=st.lists(row, min_size=1, max_size=40),
    kpi=st.sampled_from(["ctr", "cpc", "cpm"]),
    grain=st.sampled_from(["week", "month", "quarter"]),
)
def test_ratio_of_the_whole_is_ratio_of_summed_parts(rows, kpi, grain):
    whole = engine(rows).series(KPIS[kpi], grain=grain, start=START, end=END).table.to_pylist()
    parts = [
        engine(part).series(KPIS[kpi], grain=grain, start=START, end=END).table.to_pylist()
        for account in ("a1", "a2", "a3")
        if (part := [r for r in rows if r[1] == account])
    ]
    for i, period in enumerate(whole):
        # Components add exactly (decimals and integers); only the final division is floating point.
        numerator = sum(Decimal(str(p[i]["numerator"])) for p in parts)
        denominator = sum(Decimal(str(p[i]["denominator"])) for p in parts)
        assert Decimal(str(period["numerator"])) == numerator and Decimal(str(period["denominator"])) == denominator
        expected = None if denominator == 0 else float(numerator) / float(denominator)
        if expected is None:
            assert period["value"] is None
        else:
            assert abs(period["value"] - expected) <= 1e-9 * max(1.0, abs(expected))
