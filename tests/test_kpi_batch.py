"""KPIs computed together (KPIEngine.series_batch, the scorecard in one pass) give exactly what each KPI
computed alone gives: values, types, currencies and errors, on the demo business's data — also with money
in two currencies or without one in some periods only."""

from __future__ import annotations

import datetime as dt
import gc
import os
import shutil
import subprocess
import sys
import weakref

import duckdb
import pytest

from kpihub.errors import KpihubError
from kpihub.kpis.engine import KPIEngine, SeriesRequest
from kpihub.kpis.periods import Period
from kpihub.kpis.scorecard import build_scorecard
from kpihub.kpis.targets import load_targets
from kpihub.plugins import Registry
from tests.test_demo import PLUGINS

TZ = "Europe/Oslo"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    """The demo business synced into DuckDB (``kpihub demo``): its project directory."""
    for name in PLUGINS:
        pytest.importorskip(name)
    where = tmp_path_factory.mktemp("batch")
    # A process of its own: what earlier tests left in this worker (registries, servers) cannot shape it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIHUB_")}
    done = subprocess.run(
        [sys.executable, "-m", "kpihub", "demo", "--dir", "demo"], cwd=where, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    con = duckdb.connect(str(where / "demo" / "kpihub.duckdb"), read_only=True)
    tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert {"orders", "ad_performance_daily", "crm_deals", "crm_contacts"} <= tables, (sorted(tables), done.stdout)
    return where / "demo"


def _engine(demo_dir, tmp_path, damage: str = "") -> KPIEngine:
    """An engine over a copy of the demo's DuckDB file, after the ``damage`` SQL."""
    path = tmp_path / "kpihub.duckdb"
    shutil.copy(demo_dir / "kpihub.duckdb", path)
    con = duckdb.connect(str(path))
    if damage:
        con.execute(damage)
    return KPIEngine(con, timezone=TZ, catalog=Registry().kpis)


def _ids(engine: KPIEngine) -> list[str]:
    return [kpi.id for kpi in _kpis(engine)]


def _kpis(engine: KPIEngine) -> list:
    """The catalogue but its model KPIs: a batch passes them to series as they are (and CLV's fit takes seconds)."""
    return [kpi for kpi in engine.catalog.values() if kpi.kind != "model"]


def _one_by_one(engine: KPIEngine, requests, *, grain, tables=None):
    """series_batch as each KPI's own series call (the scorecard before it was built in one pass)."""
    out = []
    for r in requests:
        try:
            out.append(engine.series(r.kpi, grain=grain, start=r.start, end=r.end))
        except KpihubError as exc:
            out.append(exc)
    return out


def _same(got, want, what) -> None:
    if isinstance(want, Exception):
        assert type(got) is type(want) and str(got) == str(want), what
    else:
        assert not isinstance(got, Exception), (what, got)
        assert got.table.equals(want.table), (what, got.table, want.table)  # values, types, order
        assert got.table.schema == want.table.schema, what
        assert got.currency == want.currency, what


#: Ad money in a second currency on a day of 2025-Q2 only (a year before 2026-Q2), order amounts without
#: a currency among others on two days of 2026-Q1 only, and deals in two currencies in every period.
DAMAGE = [
    "",
    "UPDATE ad_performance_daily SET currency = 'USD' WHERE date = DATE '2025-05-02'; "
    "UPDATE orders SET currency = NULL WHERE ordered_at >= TIMESTAMPTZ '2026-02-01' "
    "AND ordered_at < TIMESTAMPTZ '2026-02-03'; "
    "UPDATE crm_deals SET currency = 'USD' WHERE hash(deal_id) % 3 = 0",
]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("period", ["2026-Q2", "2026-05", "2026-W20", "2026", "2026-06-10"])
def test_series_batch_equals_series_kpi_by_kpi(demo_file, tmp_path, damage, period):
    engine = _engine(demo_file, tmp_path, damage)
    p = Period.parse(period)
    ly = p.same_last_year()
    requests = [
        SeriesRequest(kpi, start, end)
        for kpi in _kpis(engine)
        for start, end in ((p.previous().start, p.end), (ly.start, ly.end), (p.start, p.start))  # and an empty one
    ]
    got = engine.series_batch(requests, grain=p.grain)
    want = _one_by_one(engine, requests, grain=p.grain)
    assert len(got) == len(want) == len(requests)
    for r, g, w in zip(requests, got, want, strict=True):
        _same(g, w, (r.kpi.id, r.start, r.end))
    # Every kind of result is compared: values, refusals (two currencies) and questions (a day-only KPI).
    assert sum(not isinstance(w, Exception) for w in want) > len(requests) / 2
    if damage:
        refused = {(r.kpi.id, r.start) for r, w in zip(requests, want, strict=True) if "currenc" in str(w)}
        assert ("won_revenue", p.previous().start) in refused
        if period == "2026-Q2":
            assert {("cpc", ly.start), ("sales", p.previous().start)} <= refused


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("by", ["campaign", "channel", "pipeline"])
def test_series_many_by_a_dimension_equals_series_kpi_by_kpi(demo_file, tmp_path, damage, by):
    engine = _engine(demo_file, tmp_path, damage)
    kpis = _kpis(engine)
    start, end = dt.date(2025, 1, 1), dt.date(2026, 7, 1)
    many = engine.series_many(kpis, grain="month", start=start, end=end, by=by)
    for kpi in kpis:
        try:
            alone = engine.series(kpi, grain="month", start=start, end=end, by=by)
        except KpihubError as exc:
            alone = exc
        _same(many[kpi.id], alone, (kpi.id, by))


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("today", ["2026-06-10"])
def test_the_scorecard_in_one_pass_has_the_rows_kpi_by_kpi_gave(demo_file, tmp_path, monkeypatch, damage, today):
    engine = _engine(demo_file, tmp_path, damage)
    targets = load_targets(demo_file / "targets.toml", engine.catalog)
    only = _ids(engine)
    cards = {}
    for how in ("batch", "alone"):
        with monkeypatch.context() as mp:
            if how == "alone":
                mp.setattr(KPIEngine, "series_batch", _one_by_one)
            for grain, period in (("month", None), ("week", None), ("quarter", Period.parse("2026-Q2"))):
                for with_targets in (targets, []):
                    cards[(grain, bool(with_targets), how)] = build_scorecard(
                        engine, engine.catalog, targets=with_targets, period=period, grain=grain,
                        today=dt.date.fromisoformat(today), only=only,
                    )  # fmt: skip
    for (grain, with_targets, how), card in cards.items():
        if how == "batch":
            alone = cards[(grain, with_targets, "alone")]
            assert [r.as_dict() for r in card] == [r.as_dict() for r in alone], (grain, with_targets)
            assert len(card) > (10 if with_targets else 50)
    if damage:
        q2 = cards[("quarter", False, "batch")]
        assert {r.kpi for r in q2 if r.refused} >= {"sales", "won_revenue"}
        assert any("no value for 2025-Q2" in n for r in q2 if r.kpi == "cpc" for n in r.notes)


def test_the_ad_kpis_of_a_scorecard_are_one_scan_and_one_query_of_currency_checks(demo_file, tmp_path):
    """Six ad KPIs, each over its quarter, the one before and a year back: one scan of the table, and the
    currency checks of their money (spend, spend × 1000, conversion value; two ranges each) in one query."""
    engine = _engine(demo_file, tmp_path)
    sent = []
    query = engine.backend.query
    engine.backend.query = lambda sql: sent.append(sql) or query(sql)  # type: ignore[method-assign]
    ads = ("ad_spend", "ctr", "cpc", "cpm", "cpa", "roas")
    card = build_scorecard(engine, engine.catalog, only=ads, period=Period.parse("2026-Q2"))
    assert sorted(r.kpi for r in card) == sorted(ads)
    assert all(r.actual is not None and r.last_year is not None and r.previous is not None for r in card)
    assert len(sent) == 2 and sent[0].count('FROM "ad_performance_daily"') == 1
    assert sent[1].count("UNION ALL") == 3 * 2 - 1


def test_an_engine_is_freed_once_its_scorecard_is_built(demo_file, tmp_path):
    """A refusal kept as a result holds no frame, so no reference cycle keeps the connection (and the
    database file) open until the garbage collector runs."""
    engine = _engine(demo_file, tmp_path, DAMAGE[1])
    gc.disable()
    try:
        card = build_scorecard(engine, engine.catalog, period=Period.parse("2026-05"), only=_ids(engine))
        assert any(r.refused for r in card) and any(r.status == "n/a" for r in card)
        gone = weakref.ref(engine)
        del engine
        assert gone() is None
    finally:
        gc.enable()


def test_kpis_over_a_read_only_duckdb_destination_read_its_own_connection(demo_file, tmp_path):
    """A cursor of the destination's read-only connection: the reporting zone is the cursor's, the
    destination's connection keeps UTC (its timestamps), and the KPIs are those of a second attached instance."""
    from kpihub.destinations.duckdb import DuckDBDestination, DuckDBSession

    path = tmp_path / "kpihub.duckdb"
    shutil.copy(demo_file / "kpihub.duckdb", path)
    uri = f"duckdb:///{path}"
    kpis = Registry().kpis
    q2 = Period.parse("2026-Q2")
    with DuckDBDestination().open(uri, read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone=TZ, catalog=kpis)
        assert engine.con is not None and engine.con is not session.con
        zone = "SELECT current_setting('TimeZone')"
        assert engine.con.execute(zone).fetchone() == (TZ,) and session.con.execute(zone).fetchone() == ("UTC",)
        got = build_scorecard(engine, kpis, period=q2, only=["leads", "ctr", "sales", "win_rate"])
    attached = KPIEngine(duckdb.connect(), timezone=TZ, catalog=kpis)
    with DuckDBSession(path, read_only=True) as other:
        other.attach(attached.con)
        want = build_scorecard(attached, kpis, period=q2, only=["leads", "ctr", "sales", "win_rate"])
    assert [r.as_dict() for r in got] == [r.as_dict() for r in want] and all(r.actual is not None for r in got)
