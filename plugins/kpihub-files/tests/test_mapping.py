"""Mapped exports: rename, constants, formats, time zones, decimal comma; errors naming file, line and column."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpihub import ConfigError, Pipeline, Project
from kpihub.testing import ProjectSettings, Registry

UTC = dt.timezone.utc


def pipeline(tmp_path, chunk_rows: int = 50_000, **tables) -> Pipeline:
    import kpihub_files

    registry = Registry(load_entrypoints=False)
    registry.register_plugin(kpihub_files, "files", distribution="kpihub-files")
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/m.duckdb", chunk_rows=chunk_rows),
        sources={"files": tables},
    )
    return Pipeline(project, registry=registry)


def rows(p: Pipeline, table: str) -> list[dict]:
    with p.open_destination(read_only=True) as s:
        return s.read_table(table).to_pylist()


def synced(p: Pipeline) -> Pipeline:
    result = p.sync()
    assert result.ok, [r.error for r in result.streams]
    return p


def test_european_ad_export_with_decimal_comma_dates_and_constants(tmp_path):
    (tmp_path / "ads.csv").write_text(
        "Dag;Kampanj-ID;Kampanj;Visningar;Klick;Kostnad\n"
        "01.03.2024;c1;Vår;1.200;30;1.234,50\n"
        "02.03.2024;c1;Vår;800;20;99,95\n"
    )
    ads = {
        "path": "ads.csv",
        "delimiter": ";",
        "decimal_comma": True,
        "thousands": ".",
        "date_format": "%d.%m.%Y",
        "timezone": "Europe/Stockholm",
        "rename": {"Dag": "date", "Kampanj-ID": "campaign_id", "Kampanj": "campaign_name"}
        | {"Visningar": "impressions", "Klick": "clicks", "Kostnad": "spend"},
        "constants": {"platform": "linkedin_ads", "account_id": "a1", "currency": "sek"},
    }
    got = rows(synced(pipeline(tmp_path, ad_performance_daily=ads)), "ad_performance_daily")
    assert [(r["date"], r["impressions"], r["spend"], r["currency"]) for r in got] == [
        (dt.date(2024, 3, 1), 1200, Decimal("1234.50"), "SEK"),
        (dt.date(2024, 3, 2), 800, Decimal("99.95"), "SEK"),
    ]
    assert {(r["time_zone"], r["ad_group_id"], r["ad_id"], r["platform"]) for r in got} == {
        ("Europe/Stockholm", "", "", "linkedin_ads")
    }
    with (tmp_path / "ads.csv").open("a") as fh:
        fh.write("03.03.2024;c1;Vår;10;1;12,3,4\n")
    assert pipeline(tmp_path, ad_performance_daily=ads).sync().streams[0].error == (
        f"{tmp_path / 'ads.csv'}: row 4, column 'Kostnad' (spend): cannot read '12,3,4' as decimal128(38, 9) "
        "with a decimal comma"
    )


def test_naive_times_in_the_export_zone_and_us_formats(tmp_path):
    (tmp_path / "subs.csv").write_text(
        "id,customer,state,start,cancel,mrr\n"
        "s1,c1,active,03/01/2024 14:05,,49.00\n"
        "s2,c2,canceled,07/01/2024 09:00,2024-08-01T10:00:00+02:00,19.50\n"
    )
    subs = {
        "path": "subs.csv",
        "rename": {"id": "subscription_id", "customer": "customer_id", "state": "status"}
        | {"start": "started_at", "cancel": "canceled_at"},
        "formats": {"started_at": "%m/%d/%Y %H:%M"},
        "timezone": "America/New_York",
        "constants": {"currency": "USD"},
    }
    got = rows(synced(pipeline(tmp_path, subscriptions=subs)), "subscriptions")
    assert [r["started_at"] for r in got] == [
        dt.datetime(2024, 3, 1, 19, 5, tzinfo=UTC),  # EST, UTC-5
        dt.datetime(2024, 7, 1, 13, 0, tzinfo=UTC),  # EDT, UTC-4
    ]
    assert got[1]["canceled_at"] == dt.datetime(2024, 8, 1, 8, 0, tzinfo=UTC)  # its own offset wins
    assert [r["mrr"] for r in got] == [Decimal("49.00"), Decimal("19.50")]


def test_web_traffic_and_deals_from_parquet_and_csv(tmp_path):
    pq.write_table(
        pa.table(
            {
                "Date": [dt.date(2024, 5, 1)],
                "Source": ["google"],
                "Medium": ["cpc"],
                "Campaign": ["(not set)"],
                "Sessions": [120],
                "Users": [100],
            }
        ),
        tmp_path / "ga.parquet",
    )
    web = {
        "path": "ga.parquet",
        "rename": {"Date": "date", "Source": "source", "Medium": "medium", "Campaign": "campaign"}
        | {"Sessions": "sessions", "Users": "users"},
        "constants": {"property_id": "p1"},
    }
    (tmp_path / "deals.csv").write_text(
        'Record ID,Deal Name,Amount,Close Date,Won\n9,Big,"12,000.00",2024-05-03 10:00,Yes\n10,Small,500,,No\n'
    )
    deals = {
        "path": "deals.csv",
        "rename": {"Record ID": "deal_id", "Deal Name": "name", "Amount": "amount", "Close Date": "closed_at"}
        | {"Won": "is_won"},
        "thousands": ",",
        "values": {"is_won": {"Yes": "true", "No": "false"}},
        "constants": {"currency": "EUR"},
    }
    p = synced(pipeline(tmp_path, web_traffic_daily=web, crm_deals=deals))
    assert [(r["date"], r["sessions"], r["property_id"]) for r in rows(p, "web_traffic_daily")] == [
        (dt.date(2024, 5, 1), 120, "p1")
    ]
    got = rows(p, "crm_deals")
    assert [(r["deal_id"], r["amount"], r["is_won"]) for r in got] == [
        ("9", Decimal("12000.00"), True),
        ("10", Decimal("500"), False),
    ]


@pytest.mark.parametrize("block", [8 << 20, 24])  # one batch; a batch per record or two
def test_bad_value_after_a_quoted_line_break_names_its_line(tmp_path, monkeypatch, block):
    import kpihub_files.reader

    monkeypatch.setattr(kpihub_files.reader, "CSV_BLOCK_BYTES", block)
    (tmp_path / "o.csv").write_text(
        'Name,Note,Total\n#1,"two\nlines",10.00\n#0,"a\nb\nc",1\n#2,,abc\n'  # #2 starts on line 7
    )
    orders = {"path": "o.csv", "rename": {"Name": "order_id", "Note": "status", "Total": "gross_amount"}}
    error = pipeline(tmp_path, orders=orders).sync().streams[0].error
    assert (
        error == f"{tmp_path / 'o.csv'}: row 7, column 'Total' (gross_amount): cannot read 'abc' as decimal128(38, 9)"
    )


def test_bad_date_and_short_row_and_unknown_stage_name_the_row(tmp_path):
    (tmp_path / "c.csv").write_text("id,created\nc1,01.02.2024\nc2,2024-02-31\n")
    contacts = {"path": "c.csv", "rename": {"id": "contact_id", "created": "created_at"}}
    contacts["timestamp_format"] = "%d.%m.%Y"
    error = pipeline(tmp_path, crm_contacts=contacts).sync().streams[0].error
    assert error.endswith("row 3, column 'created' (created_at): cannot read '2024-02-31' as time in format '%d.%m.%Y'")
    (tmp_path / "s.csv").write_text("id,stage\nc1,Lead\nc2\n")
    short = {"path": "s.csv", "rename": {"id": "contact_id", "stage": "lifecycle_stage"}}
    assert pipeline(tmp_path, crm_contacts=short).sync().streams[0].error == (
        f"{tmp_path / 's.csv'}: row 3: 1 fields where the header has 2"
    )
    (tmp_path / "s.csv").write_text("id,stage\nc1,Lead\nc2,Prospect\n")
    error = pipeline(tmp_path, crm_contacts=short).sync().streams[0].error
    assert error.startswith(f"{tmp_path / 's.csv'}: row 3, column 'stage' (lifecycle_stage): unknown lifecycle stage")


def test_a_failing_file_keeps_the_previous_table(tmp_path, monkeypatch):
    import kpihub_files.reader

    # Batches of a few rows and chunks of two: the bad row comes after chunks were already written.
    monkeypatch.setattr(kpihub_files.reader, "CSV_BLOCK_BYTES", 40)
    good = "".join(f"o{i},{i}.00\n" for i in range(6))
    (tmp_path / "o.csv").write_text("order_id,gross_amount\n" + good)
    p = synced(pipeline(tmp_path, chunk_rows=2, orders="o.csv"))
    assert len(rows(p, "orders")) == 6
    (tmp_path / "o.csv").write_text("order_id,gross_amount\n" + good + "o6,n/a\n" + good)
    result = p.sync()
    assert not result.ok and "row 8, column 'gross_amount'" in result.streams[0].error
    assert sorted(r["net_amount"] for r in rows(p, "orders")) == [Decimal(i) for i in range(6)]


def test_mapping_mistakes_are_one_line_config_errors(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"^source 'files': setting 'orders' rename: 'order_nr' is not a column of orders \(its columns: order_id",
    ):
        pipeline(tmp_path, orders={"path": "o.csv", "rename": {"Name": "order_nr"}}).sync()
    (tmp_path / "o.csv").write_text("Name,Total\n#1,5\n")
    result = pipeline(tmp_path, orders={"path": "o.csv", "rename": {"Nme": "order_id"}}).sync()
    assert result.streams[0].error == f"{tmp_path / 'o.csv'}: column 'Nme' is missing (renamed to order_id)"


def test_an_old_excel_export_in_cp1252_with_tabs(tmp_path):
    (tmp_path / "t.csv").write_bytes("ticket\tkanal\n1\tTelefon Växel\n".encode("cp1252"))
    tickets = {"path": "t.csv", "delimiter": "\t", "encoding": "cp1252"}
    tickets["rename"] = {"ticket": "ticket_id", "kanal": "channel"}
    assert [r["channel"] for r in rows(synced(pipeline(tmp_path, support_tickets=tickets)), "support_tickets")] == [
        "Telefon Växel"
    ]
