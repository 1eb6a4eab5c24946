"""The file source: CSV and Parquet into canonical tables, typed, with errors naming file, row and column."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from kpihub import Pipeline, Project
from kpihub.testing import ProjectSettings, Registry


def pipeline(tmp_path, **files) -> Pipeline:
    import kpihub_files

    registry = Registry(load_entrypoints=False)
    registry.register_plugin(kpihub_files, "files", distribution="kpihub-files")
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/f.duckdb"),
        sources={"files": {k: str(v) for k, v in files.items()}},
    )
    return Pipeline(project, registry=registry)


def test_csv_and_parquet_files_become_canonical_tables(tmp_path):
    fx = tmp_path / "fx.csv"
    fx.write_text("date,base_currency,quote_currency,rate\n2024-02-15,JPY,EUR,0.0062\n2024-02-16,JPY,EUR,0.0070\n")
    costs = tmp_path / "costs.csv"
    costs.write_text("period_start,period_end,category,amount,currency\n2024-01-01,2024-01-31,salaries, 1500.50 ,EUR\n")
    surveys = tmp_path / "nps.parquet"
    pq.write_table(
        pa.table(
            {
                "response_id": ["r1", "r2"],
                "item": ["nps", "nps"],
                "score": [9.0, 4.0],
                "scale_min": [0.0, 0.0],
                "scale_max": [10.0, 10.0],
                "responded_at": pa.array(
                    [dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        surveys,
    )
    p = pipeline(tmp_path, fx_rates_daily=fx, costs=costs, survey_responses=surveys)
    result = p.sync()
    assert result.ok, [r.error for r in result.streams]
    with p.open_destination(read_only=True) as s:
        rates = s.read_table("fx_rates_daily").to_pylist()
        cost = s.read_table("costs").to_pylist()
        nps = s.read_table("survey_responses").to_pylist()
    assert [(r["date"], r["rate"]) for r in rates] == [
        (dt.date(2024, 2, 15), Decimal("0.0062")),
        (dt.date(2024, 2, 16), Decimal("0.0070")),
    ]
    assert cost[0]["amount"] == Decimal("1500.50") and cost[0]["source_id"] == "files"
    assert [r["score"] for r in nps] == [9.0, 4.0]
    # A file is a snapshot: syncing a shorter one replaces the rows.
    fx.write_text("date,base_currency,quote_currency,rate\n2024-03-01,USD,EUR,0.92\n")
    assert p.sync().ok
    with p.open_destination(read_only=True) as s:
        assert s.read_table("fx_rates_daily").num_rows == 1


def test_bad_value_names_file_row_and_column(tmp_path):
    bad = tmp_path / "fx2.csv"
    bad.write_text("date,base_currency,quote_currency,rate\n2024-02-15,JPY,EUR,0.0062\n2024-02-16,JPY,EUR,n/a\n")
    result = pipeline(tmp_path, fx_rates_daily=bad).sync()
    assert result.streams[0].error == f"{bad}: row 3, column 'rate': cannot read 'n/a' as decimal128(38, 12)"


def test_missing_column_and_missing_file(tmp_path):
    costs = tmp_path / "costs.csv"
    costs.write_text("period_start,amount\n2024-01-01,10\n")
    result = pipeline(tmp_path, costs=costs).sync()
    assert result.streams[0].error == f"{costs}: column 'category' is missing (needed for costs)"
    gone = pipeline(tmp_path, costs=tmp_path / "nope.csv").sync()
    assert "costs file" in gone.streams[0].error and "does not exist" in gone.streams[0].error


def test_support_tickets_social_and_page_timings_feed_their_kpis(tmp_path):
    from kpihub.testing import KPIEngine

    tickets = tmp_path / "tickets.csv"
    tickets.write_text(
        "ticket_id,channel,status,created_at,first_response_at,resolved_at,agent_replies,reopens\n"
        "t1,email,solved,2024-03-04T09:00:00+01:00,2024-03-04T10:30:00+01:00,2024-03-05T12:00:00Z,1,0\n"
        "t2,chat,solved,2024-03-04T12:00:00Z,2024-03-04T12:30:00Z,2024-03-06T12:00:00Z,4,0\n"
        "t3,email,open,2024-03-20T12:00:00Z,,,0,\n"
    )
    social = tmp_path / "social.csv"
    social.write_text(
        "date,platform,account_id,impressions,reach,engagements,followers\n"
        "2024-03-01,instagram,ig1,2000,900,60,1500\n2024-03-31,instagram,ig1,3000,1100,90,1540\n"
    )
    pages = tmp_path / "pages.parquet"
    pq.write_table(
        pa.table(
            {
                "date": [dt.date(2024, 3, 1), dt.date(2024, 3, 2)],
                "page": ["/", "/pricing"],
                "page_loads": [10, 30],
                "load_time_ms_total": [12_000.0, 36_000.0],
            }
        ),
        pages,
    )
    p = pipeline(tmp_path, support_tickets=tickets, social_daily=social, page_performance_daily=pages)
    result = p.sync()
    assert result.ok, [r.error for r in result.streams]
    catalog = Registry(load_entrypoints=False).kpis
    with p.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, catalog=catalog)

        def march(kpi_id):
            return engine.series(catalog[kpi_id], grain="month", start=dt.date(2024, 3, 1), end=dt.date(2024, 4, 1))

        # t1 answered after 1.5 h (its +01:00 offset read correctly), t2 after 0.5 h; t3 unanswered.
        assert march("first_response_hours").values() == {dt.date(2024, 3, 1): 1.0}
        assert march("first_contact_resolution").values() == {dt.date(2024, 3, 1): 0.5}  # t1 of t1, t2
        assert march("social_engagement_rate").values() == {dt.date(2024, 3, 1): 150 / 5000}
        assert march("social_followers").values() == {dt.date(2024, 3, 1): 1540}  # the month's last day
        assert march("avg_page_load_seconds").values() == {dt.date(2024, 3, 1): 1.2}  # 48 s / 40 loads


def test_relative_paths_resolve_from_the_project_file_not_the_working_directory(tmp_path, monkeypatch):
    project_dir, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project_dir / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (project_dir / "data" / "costs.csv").write_text(
        "period_start,period_end,category,amount,currency\n2024-01-01,2024-01-31,tools,99,EUR\n"
    )
    monkeypatch.chdir(elsewhere)  # cron runs from $HOME, not from the project
    p = pipeline(project_dir, costs="data/costs.csv")
    assert p.sync().ok, [r.error for r in p.sync().streams]
    with p.open_destination(read_only=True) as s:
        assert [r["amount"] for r in s.read_table("costs").to_pylist()] == [Decimal("99")]
