"""The demo business synced into DuckDB, Parquet (plain and hive-partitioned by day), JSON Lines, SQLite and a
real PostgreSQL: the same rows everywhere, no duplicates after a re-run, and the same KPIs whether computed
in DuckDB, in PostgreSQL or by a local Spark over the Parquet output."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from kpihub.cli import cli
from kpihub.config import load_project
from kpihub.kpis.periods import Period
from kpihub.plugins import Registry

PLUGINS = ["kpihub_hubspot", "kpihub_stripe", "kpihub_google_ads", "kpihub_meta_ads", "kpihub_linkedin_ads"]
PLUGINS += ["kpihub_ga4", "kpihub_files"]
KINDS = ("duckdb", "parquet", "sqlite", "postgres", "hive", "jsonl", "s3")


def _scorecard_only(engine, kpis, scorecard, **_):
    """What the demo's report needs of the engine here: its scorecard (the terminal's), no histories or charts."""
    from kpihub.report.data import ReportData

    return ReportData(dt.datetime.now(dt.timezone.utc), engine.timezone, engine.currency, scorecard, [], [])


#: The kinds whose demo writes its whole HTML report (histories, breakdowns, cohorts over the destination).
#: The others score and skip the report's charts (~40% of a demo run): the report itself is tested on the
#: demo's DuckDB by test_demo.py, test_cli_report.py and test_report_browser.py.
FULL_REPORT = {"postgres"}


@pytest.fixture(scope="session")  # session: built once per worker, whatever order xdist runs tests in
def synced(tmp_path_factory, postgres_server, s3_server):
    """kind → project file of a demo synced into that destination."""
    for name in PLUGINS:
        pytest.importorskip(name)
    root = tmp_path_factory.mktemp("warehouses")
    uris = {
        "duckdb": "duckdb:///kpihub.duckdb",
        "parquet": "parquet:///parquet",
        "sqlite": "sqlite:///kpihub.sqlite",
        "postgres": f"{postgres_server}?schema=demo_{root.name.replace('-', '_')}",
        "hive": "parquet:///lake?partition=date",
        "jsonl": "jsonl:///jsonl",
        # An object store (a fake S3 on 127.0.0.1; keys in the environment): Parquet under a prefix.
        "s3": f"s3://demo-{root.name.lower().replace('_', '-')[-20:]}/lake?endpoint_override={s3_server}"
        "&scheme=http&region=us-east-1&allow_bucket_creation=true",
    }
    out = {}
    for kind, uri in uris.items():
        where = root / kind
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(root)
            if kind not in FULL_REPORT:
                mp.setattr("kpihub.cli.report.gather_report", _scorecard_only)
            result = CliRunner().invoke(cli, ["demo", "--dir", kind, "--destination", uri])
        assert result.exit_code == 0, (kind, result.output[-2000:])
        out[kind] = where / "kpihub.toml"
    return out


def _tables(project_file) -> dict[str, pa.Table]:
    project = load_project(project_file)
    registry = Registry()
    uri = project.settings.destination
    with registry.destination_for(uri).open(uri, root=project.root, read_only=True) as session:
        return {name: session.read_table(name) for name in session.tables()}


def _comparable(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows in one order, typed as in DuckDB; without _loaded_at (when each sync ran) — everything
    else comes from the seeded fakes and files."""
    names = sorted(n for n in schema.names if not n.startswith("_"))
    typed = table.cast(schema).select(names)
    sortable = [n for n in names if not pa.types.is_nested(typed.schema.field(n).type)]
    return typed.sort_by([(n, "ascending") for n in sortable]).combine_chunks()


def test_every_destination_holds_the_same_rows(synced):
    tables = {kind: _tables(project) for kind, project in synced.items()}
    names = sorted(tables["duckdb"])
    assert {"crm_contacts", "orders", "ad_performance_daily", "support_tickets"} <= set(names)
    for kind in KINDS[1:]:
        assert sorted(tables[kind]) == names, kind
    for name in names:
        schema = tables["duckdb"][name].schema
        expected = _comparable(tables["duckdb"][name], schema)
        assert expected.num_rows > 0, name
        for kind in KINDS[1:]:
            got = _comparable(tables[kind][name], schema)
            assert got.num_rows == expected.num_rows, (kind, name)
            assert got.equals(expected), (kind, name)


@pytest.fixture(scope="session")  # session: built once per worker, whatever order xdist runs tests in
def spark():
    """Spark runs in a JVM: without Java here (these machines have it; .ci/run checks) the Spark runs skip."""
    from kpihub.kpis.spark import java_available

    if not java_available():
        pytest.skip("no Java runtime for Spark")
    return "spark"


#: engine → the demo project it computes on: Spark reads the Parquet output, PostgreSQL its own tables.
ENGINE_PROJECTS = {"duckdb": "parquet", "postgres": "postgres", "spark": "parquet"}


def _scorecard(project_file, engine_name: str) -> str:
    args = ["-p", str(project_file), "kpis", "--format", "json", "--as-of", "2026-07-15", "--engine", engine_name]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_scorecard_is_identical_on_duckdb_postgresql_and_spark(synced, spark):
    runs = {}
    # DuckDB also over the lake in S3 (it scans the objects through a pyarrow dataset).
    for engine_name, kind in [*ENGINE_PROJECTS.items(), ("duckdb-over-s3", "s3")]:
        runs[engine_name] = json.loads(_scorecard(synced[kind], engine_name.split("-")[0]))
    import tomllib

    targets = tomllib.loads((synced["parquet"].parent / "targets.toml").read_text())["target"]
    assert len(targets) >= 30  # the demo's plugins' targets, from the file the demo wrote
    assert sum(r["status"] != "not targeted" for r in runs["duckdb"]) == len(targets)  # the targets; then the rest
    assert sum(r["status"] in ("on track", "at risk", "off track") for r in runs["duckdb"]) >= 25
    for other in ("postgres", "spark", "duckdb-over-s3"):
        for a, b in zip(runs["duckdb"], runs[other], strict=True):
            for key, value in a.items():
                if isinstance(value, float):
                    assert b[key] == pytest.approx(value, rel=1e-9), (other, a["kpi"], key)
                else:
                    assert b[key] == value, (other, a["kpi"], key)


def test_every_catalogue_kpi_is_identical_on_duckdb_postgresql_and_spark(synced, spark):
    from kpihub.cli._context import open_engine

    registry = Registry()
    quarter = Period.parse("2026-Q2")
    values = {}
    # Spark is slow on small data (~0.5 s a query): the KPIs on the scorecard are compared on Spark by the
    # scorecard test; here Spark computes the rest of the catalogue, PostgreSQL all of it.
    scored = {r["kpi"] for r in json.loads(_scorecard(synced["parquet"], "duckdb"))}
    for engine_name, kind in ENGINE_PROJECTS.items():
        with open_engine(load_project(synced[kind]), registry, engine=engine_name) as engine:
            for kpi in registry.kpis.values():
                if engine_name == "spark" and kpi.id in scored:
                    continue
                grain = "day" if any(m.max_grain == "day" for m in kpi.measures.values()) else "month"
                series = engine.series(kpi, grain=grain, start=quarter.start, end=quarter.end)
                values[(engine_name, kpi.id)] = series.table.select(["period", "value"]).to_pylist()
    kpis = sorted(registry.kpis)
    assert len(kpis) > 60
    assert len({k for e, k in values if e == "spark"} | scored) == len(kpis)  # every KPI ran on Spark somewhere
    for kpi_id in kpis:
        duck = values[("duckdb", kpi_id)]
        assert any(r["value"] is not None for r in duck), kpi_id  # the demo feeds every catalogue KPI
        for other in ("postgres", "spark"):
            if (other, kpi_id) not in values:
                continue
            got = values[(other, kpi_id)]
            assert [r["period"] for r in duck] == [r["period"] for r in got], (other, kpi_id)
            for a, b in zip(duck, got, strict=True):
                assert (a["value"] is None) == (b["value"] is None), (other, kpi_id, a, b)
                if a["value"] is not None:
                    assert b["value"] == pytest.approx(a["value"], rel=1e-9, abs=1e-12), (other, kpi_id, a["period"])


def test_rerunning_the_same_sync_adds_no_duplicates(synced, tmp_path, monkeypatch):
    before = {name: t.num_rows for name, t in _tables(synced["postgres"]).items()}
    sqlite_before = {name: t.num_rows for name, t in _tables(synced["sqlite"]).items()}
    project = load_project(synced["postgres"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("kpihub.cli.report.gather_report", _scorecard_only)  # the rows are what is compared
    for uri in (project.settings.destination, f"sqlite:///{synced['sqlite'].parent}/kpihub.sqlite"):
        result = CliRunner().invoke(cli, ["demo", "--dir", "again", "--destination", uri])
        assert result.exit_code == 0, result.output[-2000:]
    assert {name: t.num_rows for name, t in _tables(synced["postgres"]).items()} == before
    assert {name: t.num_rows for name, t in _tables(synced["sqlite"]).items()} == sqlite_before
    assert dt.date.today()  # the re-run read the same seeded fakes: every row merged onto itself


def test_postgresql_keeps_each_sources_raw_tables_in_a_schema_of_its_own(synced):
    import adbc_driver_postgresql.dbapi as pg

    project = load_project(synced["postgres"])
    base = project.settings.destination.split("schema=")[1]
    server = project.settings.destination.split("?")[0]
    with pg.connect(server) as con, con.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            f"WHERE table_schema LIKE '{base}%' ORDER BY 1, 2"
        )
        found = set(cur.fetchall())
    assert (f"{base}__hubspot", "contacts") in found and (f"{base}__stripe", "charges") in found
    assert (base, "crm_contacts") in found and (base, "hubspot_contacts") not in found  # canonical tables shared
    assert "hubspot_contacts" in _tables(synced["postgres"])  # read back by their logical names


@pytest.mark.parametrize(
    ("engine_name", "kind", "message"),
    [
        ("postgres", "duckdb", "--engine postgres needs a postgres destination, not duckdb:///"),
        ("spark", "duckdb", "--engine spark reads Parquet output: it needs a parquet:// destination, not duckdb:///"),
        ("spark", "jsonl", "--engine spark reads Parquet output: it needs a parquet:// destination, not jsonl:///"),
    ],
)
def test_an_engine_that_cannot_read_the_destination_says_so_in_one_line(synced, engine_name, kind, message):
    args = ["-p", str(synced[kind]), "kpis", "--engine", engine_name]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
