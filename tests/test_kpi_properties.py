"""Properties: a ratio KPI over a period equals Σ numerators ÷ Σ denominators of any partition of its rows;
the columns an expression reads are the same whether the compiler reads them itself or asks sqlglot."""

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


# -- the columns of an expression, read without sqlglot ------------------------------------------------

_words = st.one_of(
    st.sampled_from(sorted({n for t in CANONICAL_TABLES.values() for n in t.schema.names})),
    st.sampled_from(["null", "TRUE", "date", "interval", "current_date", "force", "Clicks", "x1", "_a", "e5"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
)
_operands = st.one_of(_words, st.sampled_from(["1000", "1.5", ".5", "3.", "1e5", "0x10"]))
_expressions = st.builds(
    lambda first, rest, gap: first + "".join(f"{gap}{op}{gap}{w}" for op, w in rest),
    _operands,
    st.lists(st.tuples(st.sampled_from(["+", "-", "*", "/", "//", "**", "%", "||", "("]), _operands), max_size=4),
    st.sampled_from(["", " ", "  "]),
)


def _sqlglot_columns(sql: str) -> set[str] | None:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        return {c.name for c in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Column)}
    except ParseError:
        return None


@settings(max_examples=400)
@given(_expressions)
@example("spend * 1000")
@example("sessions - engaged_sessions")
@example("load_time_ms_total / 1000.0")
@example("clicks + null")
@example("1e5 * spend")
def test_plain_columns_are_the_columns_sqlglot_reads(sql):
    from kpihub.kpis.compiler import plain_columns

    got = plain_columns(sql)
    if got is not None:  # else sqlglot is asked: nothing to compare
        assert set(got) == _sqlglot_columns(sql), sql


def test_plain_columns_know_every_keyword_of_sqlglots_duckdb_dialect():
    from sqlglot.dialects.duckdb import DuckDB
    from sqlglot.tokens import Tokenizer

    from kpihub.kpis.compiler import DUCKDB_KEYWORDS

    extra = {w for w in set(DuckDB.Tokenizer.KEYWORDS) - set(Tokenizer.KEYWORDS) if w.isidentifier()}
    assert extra <= DUCKDB_KEYWORDS
    # The catalogue's plain expressions skip sqlglot; the others (CASE, DATE_DIFF …) still go through it.
    from kpihub.kpis.compiler import plain_columns
    from kpihub.plugins import Registry

    exprs = {m.expr for k in Registry().kpis.values() for m in k.measures.values() if m.expr}
    plain = {e for e in exprs if plain_columns(e) is not None}
    assert {"spend * 1000", "clicks", "sessions - engaged_sessions"} <= plain and "CASE" not in " ".join(plain)
    for e in plain:
        assert set(plain_columns(e)) == _sqlglot_columns(e), e
