"""The conformance suites fail the plugins they should: each run here is the suite against a plugin that
breaks one rule (tests/plugins/broken.py, or a KPI fixture that is wrong), and must fail that rule's test
and only it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]

DESTINATION = """
from kpihub.testing.conformance import DestinationConformance
from tests.plugins.broken import BrokenDuckDB

class TestBroken(DestinationConformance):
    destination = BrokenDuckDB({session!r})

    def uri(self, path):
        return f"duckdb:///{{path}}/x.duckdb"
"""


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the inner runs import tests.plugins.broken


def _outcomes(pytester: pytest.Pytester, source: str, *args: str) -> dict[str, str]:
    """Each test's outcome when pytest runs ``source`` in a process of its own: an in-process run drops the
    modules it imported when it ends, and DuckDB's native library does not survive being imported again."""
    pytester.makepyfile(test_suite=source)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-rA", *args)
    found = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED", "SKIPPED", "ERROR"):
            if line.startswith(word + " "):
                found[line.split(" ")[1].split("::", 1)[1].removeprefix("TestBroken::")] = word
    assert found, "\n".join(result.outlines)
    return found


def test_the_destination_suite_fails_a_merge_on_part_of_the_key(pytester):
    got = _outcomes(pytester, DESTINATION.format(session="key_part"), "-k", "not killed")
    failed = sorted(t for t, outcome in got.items() if outcome == "FAILED")
    # Both merges see it: ("b", "2") lost to a merge of ("a", "2"); ("a", "1") and ("b", "1") made one row.
    assert failed == [
        "test_a_first_merge_creates_the_table_and_drops_duplicate_keys",
        "test_append_merge_replace_round_trip",
    ], got


def test_the_destination_suite_fails_state_committed_apart_from_its_data(pytester):
    got = _outcomes(pytester, DESTINATION.format(session="state_first"))
    failed = sorted(t for t, outcome in got.items() if outcome == "FAILED")
    # Killed between its two transactions, the state is new and the data old; and a commit that fails
    # after the state went in leaves that state behind.
    assert failed == [
        "test_a_commit_killed_at_any_step_leaves_the_old_or_the_new",
        "test_a_failed_commit_changes_neither_tables_nor_state",
        "test_an_incompatible_type_change_fails_naming_table_column_and_types",
    ], got


KPIS = """
from kpihub import KPI, Measure
from kpihub.default_plugins import ads_kpis
from kpihub.testing.conformance import KPIConformance


def day(date, impressions, clicks):
    ids = dict(platform="x", account_id="a", campaign_id="c", ad_group_id="g", ad_id="d")
    return dict(date=date, impressions=impressions, clicks=clicks, **ids)


ROWS = {"ad_performance_daily": [day("2024-01-05", 1000, 10), day("2024-02-03", 3000, 60)]}
RIGHT = {"ctr": {"2024-01": 0.01, "2024-02": 0.02}}  # 10 / 1000; 60 / 3000


class TestRight(KPIConformance):
    plugin = ads_kpis
    kpis = ("ctr",)
    tables = ROWS
    expected = RIGHT


class TestWrongValue(TestRight):
    expected = {"ctr": {"2024-01": 0.01, "2024-02": 0.03}}


class TestMeanOfParts(TestRight):
    # One denominator for both months: their mean is the quarter's sum over sum, so the fixture cannot
    # tell an engine that averages from one that does not.
    tables = {"ad_performance_daily": [day("2024-01-05", 1000, 10), day("2024-02-03", 1000, 20)]}
    expected = {"ctr": {"2024-01": 0.01, "2024-02": 0.02}}


CLICKS = Measure("ad_performance_daily", "sum", "date", expr="clicks")


class TestUndeclared(TestRight):
    kpis = (KPI("ctr2", "CTR", "clicks per impression", "percentage", "up", "ratio", numerator=CLICKS,
                denominator=Measure("ad_performance_daily", "sum", "date", expr="impressions")),)
    expected = {"ctr2": RIGHT["ctr"]}


class TestUnknownColumn(TestRight):
    kpis = (KPI("ctr3", "CTR", "clicks per impression", "percent", "higher", "ratio", numerator=CLICKS,
                denominator=Measure("ad_performance_daily", "sum", "date", expr="views")),)
    expected = {"ctr3": RIGHT["ctr"]}
"""


def test_the_kpi_suite_fails_wrong_values_undeclared_units_unknown_columns_and_a_fixture_that_cannot_tell(
    pytester,
):
    got = _outcomes(pytester, KPIS, "-k", "not postgres")
    failed = sorted(t for t, outcome in got.items() if outcome != "PASSED")
    assert failed == [
        "TestMeanOfParts::test_a_ratio_over_a_coarser_period_is_the_sum_over_the_sum[ctr]",
        "TestUndeclared::test_unit_and_direction_are_declared[ctr2]",
        "TestUnknownColumn::test_a_ratio_over_a_coarser_period_is_the_sum_over_the_sum[ctr3]",
        "TestUnknownColumn::test_compiles_in_every_dialect[ctr3]",
        "TestUnknownColumn::test_tables_and_columns_are_in_the_canonical_model[ctr3]",
        "TestUnknownColumn::test_the_fixture_values_on_duckdb[ctr3]",
        "TestWrongValue::test_the_fixture_values_on_duckdb[ctr]",
    ], got
