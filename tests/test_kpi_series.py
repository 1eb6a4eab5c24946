"""``kpihub kpis`` over a range of periods (issue 16): a series in one call, in every format, with the
default period taken from the data and a warning where the data ends before the period asked for."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kpihub.testing import cli, reset_registry

# Tickets resolved per month of 2024 and how many of them at the first contact (FCR's Σ parts):
# different denominators, so a mean of the monthly ratios is not the quarter's ratio.
RESOLVED = {1: (10, 9), 2: (2, 0), 3: (4, 2), 4: (5, 5), 5: (8, 4), 6: (1, 1)}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry) -> Path:
    reset_registry(registry)
    rows = []
    for month, (resolved, first_contact) in RESOLVED.items():
        for i in range(resolved):
            replies = 1 if i < first_contact else 3
            day = dt.datetime(2024, month, 1 + i, 9, tzinfo=dt.timezone.utc)
            rows.append((f"t{month}-{i}", day, day + dt.timedelta(hours=5), replies))
    con = duckdb.connect(str(tmp_path / "k.duckdb"))
    con.execute(
        "CREATE TABLE support_tickets (source_id VARCHAR, ticket_id VARCHAR, channel VARCHAR, status VARCHAR, "
        "created_at TIMESTAMPTZ, first_response_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, agent_replies BIGINT, "
        "reopens BIGINT, _loaded_at TIMESTAMPTZ)"
    )
    con.executemany(
        "INSERT INTO support_tickets VALUES ('files', ?, 'email', 'solved', ?, ?, ?, ?, 0, now())",
        [(t, created, created + dt.timedelta(hours=1), resolved, replies) for t, created, resolved, replies in rows],
    )
    con.close()
    (tmp_path / "kpihub.toml").write_text('[project]\ndestination = "duckdb:///k.duckdb"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def kpis(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["kpis", "--kpi", "first_contact_resolution", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_monthly_series_over_a_year_is_one_command_in_every_format(project: Path) -> None:
    code, out, _ = kpis("--from", "2024-01", "--to", "2024-12", "--grain", "month", "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert [r["period"] for r in rows] == [f"2024-{m:02d}" for m in range(1, 13)]
    by = {r["period"]: r["actual"] for r in rows}
    assert by["2024-01"] == pytest.approx(0.9) and by["2024-02"] == 0.0 and by["2024-06"] == 1.0
    assert by["2024-07"] is None  # no ticket resolved: no ratio, not zero
    code, out, _ = kpis("--from", "2024-01", "--to", "2024-12", "--format", "csv")
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 12
    code, out, _ = kpis("--from", "2024-01", "--to", "2024-12", "--format", "parquet", "-o", "s.parquet")
    assert code == 0 and pq.read_table(project / "s.parquet").num_rows == 12
    code, out, _ = kpis("--from", "2024-01", "--to", "2024-12", "--format", "table")
    assert code == 0 and out.count("2024-") >= 12 and "First-contact resolution" in out


def test_a_quarters_ratio_is_the_sum_of_its_months_parts_over_the_sum_never_their_mean(project: Path) -> None:
    _, out, _ = kpis("--from", "2024-Q1", "--to", "2024-Q2", "--grain", "quarter", "--format", "json")
    quarters = {r["period"]: r["actual"] for r in json.loads(out)}
    _, out, _ = kpis("--from", "2024-01", "--to", "2024-06", "--format", "json")
    months = {r["period"]: r["actual"] for r in json.loads(out)}
    q1 = [RESOLVED[m] for m in (1, 2, 3)]
    assert quarters["2024-Q1"] == pytest.approx(sum(f for _, f in q1) / sum(r for r, _ in q1))  # 11/16
    mean = sum(months[f"2024-{m:02d}"] for m in (1, 2, 3)) / 3
    assert quarters["2024-Q1"] != pytest.approx(mean)  # 0.6875, not 0.467
    assert quarters["2024-Q2"] == pytest.approx(10 / 14)


def test_all_scores_the_whole_history_and_the_default_is_the_datas_last_complete_period(project: Path) -> None:
    _, out, _ = kpis("--all", "--format", "json")
    assert [r["period"] for r in json.loads(out)] == [f"2024-{m:02d}" for m in range(1, 7)]
    code, out, err = kpis("--format", "json")  # no --period: June 2024, where the data ends, not last month
    (row,) = json.loads(out)
    assert code == 0 and row["period"] == "2024-05" and row["actual"] == pytest.approx(0.5)


def test_a_period_past_the_data_warns_where_the_data_ends(project: Path) -> None:
    code, out, err = kpis("--period", "2025-03", "--format", "json")
    (row,) = json.loads(out)
    assert code == 0 and row["actual"] is None
    assert "no data in 2025-03: support_tickets ends 2024-06-01" in row["notes"]
    assert err.startswith("Warning: 1 row(s) have no data in 2025-03: the data ends 2024-06-01")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--from", "2024-06", "--to", "2024-01"], "--to 2024-01 ends before --from 2024-06 starts"),
        (["--from", "2024-01"], "needs both --from and --to"),
        (["--all", "--period", "2024-01"], "give --period or a series"),
        (["--from", "2000-01-01", "--to", "2024-12-31", "--grain", "day"], "at most 3,660"),
    ],
)
def test_a_bad_range_is_a_one_line_error(project: Path, args: list[str], message: str) -> None:
    code, _, err = kpis(*args)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
