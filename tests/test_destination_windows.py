"""Report windows are replaced, not merged (issue 13): a ``replace`` scoped by a :class:`Between` range
deletes exactly the rows of that source whose date (or timestamp, or number) lies in the window and writes
the new ones, so a row the platform removed or restated disappears too. The same contract over every
destination (the ``open_dest`` kinds of test_destinations), with and without ``staged_from``, and the
partitioned lake's pruning."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from kpihub.destinations import Between, TableWrite, staging_name
from kpihub.destinations.parquet import ParquetDestination
from kpihub.errors import DestinationError
from tests import test_destinations

open_dest = test_destinations.open_dest  # the fixture: every destination kind

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))
SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("account", pa.string()),
        ("date", pa.date32()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("n", pa.int64()),
    ]
)
KEY = ("source_id", "account", "date")


def day(d: int) -> dt.date:
    return dt.date(2026, 6, d)


def report(rows: list[tuple]) -> pa.Table:
    """Rows ``(source, account, day-of-June or None, n)``; ``at`` is noon UTC of that day."""
    out = []
    for src, account, d, n in rows:
        at = None if d is None else dt.datetime(2026, 6, d, 12, tzinfo=UTC)
        out.append({"source_id": src, "account": account, "date": None if d is None else day(d), "at": at, "n": n})
    return pa.Table.from_pylist(out, schema=SCHEMA)


def got(session, name: str = "r") -> list[tuple]:
    rows = session.read_table(name).to_pylist()
    return sorted(
        ((x["source_id"], x["account"], x["date"].day if x["date"] else None, x["n"]) for x in rows),
        key=lambda t: (t[0], t[1], t[2] or 0, t[3]),
    )


#: Two sources' daily rows, 8–14 June, one account each; ga4 also has a row without a date.
OLD = [
    *[("ga4", "p1", d, d) for d in range(8, 15)],
    ("ga4", "p1", None, 99),
    *[("ads", "c1", d, 100 + d) for d in range(8, 15)],
]


def window(low, high, column: str = "date", **more) -> dict:
    return {"source_id": "ga4", **more, column: Between(low, high)}


def seeded(session) -> None:
    session.commit([TableWrite("r", report(OLD), "append")], {"ga4.report": {"window": "old"}})


def replace(session, data: list[tuple], scope: dict, state: dict | None = None, **kw) -> None:
    write = TableWrite("r", report(data), "replace", KEY, scope, **kw)
    session.commit([write], {"ga4.report": state or {"window": "new"}})


def kept(*days: int | None) -> list[tuple]:
    """The old ga4 rows of ``days`` and every ads row."""
    return [row for row in OLD if row[0] == "ads" or row[2] in days]


def sort(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda t: (t[0], t[1], t[2] or 0, t[3]))


def test_a_window_replace_swaps_the_rows_inside_and_keeps_the_rest(open_dest):
    with open_dest() as s:
        seeded(s)
        # The re-read of 10–12 June: day 11 is gone at the platform (no row), 10 and 12 are restated.
        replace(s, [("ga4", "p1", 10, 1000), ("ga4", "p1", 12, 1200)], window(day(10), day(12)))
        expected = sort([*kept(8, 9, 13, 14, None), ("ga4", "p1", 10, 1000), ("ga4", "p1", 12, 1200)])
        assert got(s) == expected
    with open_dest(read_only=True) as s:
        assert got(s) == expected and s.get_state("ga4.report") == {"window": "new"}


def test_an_empty_window_deletes_the_windows_rows(open_dest):
    with open_dest() as s:
        seeded(s)
        replace(s, [], window(day(9), day(13)))
        assert got(s) == sort(kept(8, 14, None))


def test_a_window_open_at_either_end(open_dest):
    with open_dest() as s:
        seeded(s)
        replace(s, [("ga4", "p1", 10, 7)], window(None, day(10)))
        assert got(s) == sort([*kept(11, 12, 13, 14, None), ("ga4", "p1", 10, 7)])
        replace(s, [], window(day(13), None))
        assert got(s) == sort([*kept(11, 12, None), ("ga4", "p1", 10, 7)])
        # Open at both ends: every dated row of the source; a null date is never in a range.
        replace(s, [("ga4", "p1", 20, 20)], window(None, None))
        assert got(s) == sort([*kept(None), ("ga4", "p1", 20, 20)])


def test_a_window_that_matches_nothing_deletes_nothing(open_dest):
    with open_dest() as s:
        seeded(s)
        replace(s, [("ga4", "p1", 25, 25)], window(day(20), day(30)))
        replace(s, [], window(day(12), day(10)))  # low above high: an empty range
        replace(s, [], {"source_id": "nobody", "date": Between(day(1), day(30))})
        assert got(s) == sort([*OLD, ("ga4", "p1", 25, 25)])


def test_a_window_scoped_by_account_too(open_dest):
    with open_dest() as s:
        seeded(s)
        s.commit([TableWrite("r", report([("ga4", "p2", 10, 5), ("ga4", "p2", 11, 6)]), "append")], {})
        replace(s, [("ga4", "p2", 11, 60)], window(day(10), day(11), account="p2"))
        assert got(s) == sort([*OLD, ("ga4", "p2", 11, 60)])


def test_timestamps_in_other_zones_compare_as_instants(open_dest):
    with open_dest() as s:
        seeded(s)  # ``at`` is noon UTC of each day
        # 12:00 UTC on the 10th is 14:00 at +02:00: the window [14:00+02:00 on the 10th, 13:59:59.999999 UTC
        # on the 12th] holds the 10th and 11th only; a naive bound is UTC.
        low = dt.datetime(2026, 6, 10, 14, tzinfo=PLUS2)
        replace(s, [], window(low, dt.datetime(2026, 6, 12, 11, 59, 59, 999999), column="at"))
        assert got(s) == sort(kept(8, 9, 12, 13, 14, None))
        # Exactly at the end of the bound, inclusive: noon UTC on the 12th is 14:00 at +02:00.
        noon = dt.datetime(2026, 6, 12, 12, tzinfo=UTC)
        replace(s, [], window(dt.datetime(2026, 6, 12, 14, tzinfo=PLUS2), noon, column="at"))
        assert got(s) == sort(kept(8, 9, 13, 14, None))


def test_a_numeric_range_rounds_its_bounds_to_the_columns_values(open_dest):
    with open_dest() as s:
        seeded(s)
        replace(s, [], window(Decimal("9.5"), 11.0, column="n"))  # n is the day for ga4: 10 and 11
        assert got(s) == sort(kept(8, 9, 12, 13, 14, None))
        replace(s, [], window(12, 12, column="n"))
        assert got(s) == sort(kept(8, 9, 13, 14, None))


def test_a_range_on_a_column_the_table_lacks_is_refused_and_changes_nothing(open_dest):
    with open_dest() as s:
        seeded(s)
        with pytest.raises(DestinationError, match=r"table 'r': scope column 'day' .*is not a column of the table"):
            replace(s, [("ga4", "p1", 10, 1)], window(day(10), day(12), column="day"), {"window": "bad"})
        with pytest.raises(DestinationError, match=r"table 'r', column 'date': range bound .* does not fit"):
            replace(s, [], window(dt.datetime(2026, 6, 10, tzinfo=UTC), None), {"window": "bad"})
        assert got(s) == sort(OLD) and s.get_state("ga4.report") == {"window": "old"}
        with pytest.raises(DestinationError, match="range scope .* needs mode 'replace'"):
            s.commit([TableWrite("r", report([]), "merge", KEY, window(day(1), day(2)))], {})


def test_a_staged_window_replace(open_dest):
    """A range scope with ``staged_from``: the stage's rows and ``data`` replace the window's rows."""
    stage = staging_name("r", "ga4.report")
    with open_dest() as s:
        seeded(s)
        s.commit([TableWrite(stage, report([("ga4", "p1", 10, 1000)]), "replace")], {})
        s.commit([TableWrite(stage, report([("ga4", "p1", 12, 1200)]), "append")], {})
        replace(s, [("ga4", "p1", 13, 1300)], window(day(10), day(13)), staged_from=stage)
        new = [("ga4", "p1", 10, 1000), ("ga4", "p1", 12, 1200), ("ga4", "p1", 13, 1300)]
        expected = sort([*kept(8, 9, 14, None), *new])
        assert got(s) == expected and s.tables() == ["r"]
        # ... open-ended, and with nothing in the last chunk.
        s.commit([TableWrite(stage, report([("ga4", "p1", 30, 3)]), "replace")], {})
        replace(s, [], window(day(12), None), staged_from=stage)
        assert got(s) == sort([*kept(8, 9, None), ("ga4", "p1", 10, 1000), ("ga4", "p1", 30, 3)])
    with open_dest(read_only=True) as s:
        assert got(s) == sort([*kept(8, 9, None), ("ga4", "p1", 10, 1000), ("ga4", "p1", 30, 3)])


def test_a_staged_window_replace_on_a_column_neither_table_nor_stage_has_is_refused(open_dest):
    stage = staging_name("r", "ga4.report")
    with open_dest() as s:
        seeded(s)
        s.commit([TableWrite(stage, report([("ga4", "p1", 10, 1000)]), "replace")], {})
        with pytest.raises(DestinationError, match=r"table 'r': scope column 'day'"):
            replace(s, [], window(day(10), day(12), column="day"), staged_from=stage)
        assert got(s) == sort(OLD) and got(s, stage) == [("ga4", "p1", 10, 1000)]


# -- a lake partitioned by day ----------------------------------------------------------------------


def traffic(rows: list[tuple]) -> pa.Table:
    """``web_traffic_daily`` rows ``(source, property, day-of-June, sessions)``."""
    from kpihub.model import CANONICAL_TABLES

    target = CANONICAL_TABLES["web_traffic_daily"].schema
    fixed = {"source": "google", "medium": "cpc", "campaign": "x"}
    out = [{"source_id": src, "property_id": p, "date": day(d), **fixed, "sessions": n} for src, p, d, n in rows]
    return pa.Table.from_pylist(out, schema=target)


def orders(rows: list[tuple]) -> pa.Table:
    """``orders`` rows ``(source, id, day-of-June or None, hour UTC)``."""
    from kpihub.model import CANONICAL_TABLES

    out = [
        {
            "source_id": src,
            "order_id": o,
            "ordered_at": None if d is None else dt.datetime(2026, 6, d, h, tzinfo=UTC),
            "currency": "EUR",
        }
        for src, o, d, h in rows
    ]
    return pa.Table.from_pylist(out, schema=CANONICAL_TABLES["orders"].schema)


@pytest.fixture(params=["parquet", "jsonl", "s3"])
def lake(request, tmp_path):
    """A file destination partitioned by day (local Parquet, local JSON Lines, Parquet in a fake S3)."""
    kind = request.param
    uri = (
        f"{request.getfixturevalue('s3_uri')}&partition=date"
        if kind == "s3"
        else f"{kind}:///{tmp_path}/lake?partition=date"
    )
    return lambda **kw: ParquetDestination().open(uri, **kw)


def _reads(session, monkeypatch) -> tuple[list[str], list[str]]:
    """The files a commit probes (columns of: a dataset scan, a local copy) and those it reads whole."""
    probes: list[str] = []
    whole: list[str] = []
    read_file, local, dataset = session._read_file, session._local, session._dataset

    def spy_read(rel, *args):
        whole.append(rel)
        return read_file(rel, *args)

    def spy_local(rel):
        probes.append(rel)
        return local(rel)

    def spy_dataset(files, schema):
        probes.extend(files)
        return dataset(files, schema)

    monkeypatch.setattr(session, "_read_file", spy_read)
    monkeypatch.setattr(session, "_local", spy_local)
    monkeypatch.setattr(session, "_dataset", spy_dataset)
    return probes, whole


def test_a_partitioned_lake_reads_only_the_windows_days_and_drops_whole_files_unread(lake, monkeypatch):
    table = "web_traffic_daily"
    with lake() as s:
        for d in range(8, 15):  # one commit per day: one file per day, holding both sources' rows
            s.commit([TableWrite(table, traffic([("ga4", "p1", d, d), ("ads", "c", d, 100 + d)]), "append")], {})
        mixed = set(s.files(table))
        s.commit([TableWrite(table, traffic([("ga4", "p1", 11, 111)]), "append")], {})
        ga4_only = set(s.files(table)) - mixed
        outside = {f for f in mixed if not any(f"date=2026-06-{d}/" in f for d in (10, 11, 12))}
        probes, whole = _reads(s, monkeypatch)
        scope = {"source_id": "ga4", "date": Between(day(10), day(12))}
        new = traffic([("ga4", "p1", 10, 1000), ("ga4", "p1", 12, 1200)])
        s.commit([TableWrite(table, new, "replace", ("source_id", "date"), scope)], {})
        monkeypatch.undo()
        after = set(s.files(table))
        assert len(outside) == 4 and outside <= after, "files of days outside the window were rewritten"
        assert not (set(probes) | set(whole)) & outside, f"read files of days outside the window: {probes, whole}"
        # Inside the window, files shared with another source are rewritten without the ga4 rows; a file
        # holding only rows in the scope is dropped without its rows being read.
        assert not (after & (mixed - outside)) and not (after & ga4_only)
        assert not set(whole) & ga4_only, whole
        rows = sorted((x["source_id"], x["date"].day, x["sessions"]) for x in s.read_table(table).to_pylist())
    expected = [*[("ga4", d, d) for d in (8, 9, 13, 14)], *[("ads", d, 100 + d) for d in range(8, 15)]]
    assert rows == sorted([*expected, ("ga4", 10, 1000), ("ga4", 12, 1200)])


def test_a_partitioned_lake_filters_the_days_a_timestamp_window_covers_in_part(lake):
    with lake() as s:
        placed = [("stripe", f"o{d}-{h}", d, h) for d in (9, 10, 11) for h in (1, 12, 23)]
        others = [("shop", "s10", 10, 5), ("stripe", "undated", None, 0)]
        s.commit([TableWrite("orders", orders([*placed, *others]), "append")], {})
        assert any("__HIVE_DEFAULT_PARTITION__" in f for f in s.files("orders"))
        # From 12:00 UTC on the 9th to 12:00 UTC on the 11th (14:00 at +02:00), both inclusive: the 9th and
        # the 11th in part, the 10th whole (where another source's row shares its file); a null is never in.
        low, high = (dt.datetime(2026, 6, d, 14, tzinfo=PLUS2) for d in (9, 11))
        scope = {"source_id": "stripe", "ordered_at": Between(low, high)}
        s.commit([TableWrite("orders", orders([("stripe", "new", 10, 6)]), "replace", ("order_id",), scope)], {})
        ids = sorted(x["order_id"] for x in s.read_table("orders").to_pylist())
    assert ids == ["new", "o11-23", "o9-1", "s10", "undated"]


def test_sqlite_refuses_a_range_over_decimals_it_stores_as_text(tmp_path):
    from kpihub.destinations.adbc import ADBCDestination

    with ADBCDestination().open(f"sqlite:///{tmp_path}/x.sqlite") as s:
        s.commit([TableWrite("t", test_destinations.table([test_destinations.r("a", "1", 1)]), "append")], {})
        scope = {"amount": Between(Decimal(1), Decimal(2))}
        with pytest.raises(DestinationError, match=r"table 't', column 'amount': SQLite stores decimals as text"):
            s.commit([TableWrite("t", test_destinations.table([]), "replace", scope=scope)], {})
        assert test_destinations.rows(s, "t") == [("a", "1", 1)]


def test_a_range_on_a_table_that_does_not_exist_yet_needs_the_column_in_the_data(open_dest):
    with open_dest() as s:
        with pytest.raises(DestinationError, match=r"table 'new': scope column 'day'"):
            s.commit([TableWrite("new", report([("ga4", "p1", 10, 1)]), "replace", KEY, window(None, 3, "day"))], {})
        s.commit([TableWrite("new", report([("ga4", "p1", 10, 1)]), "replace", KEY, window(None, day(3)))], {})
        assert got(s, "new") == [("ga4", "p1", 10, 1)]


def test_between_refuses_bounds_of_two_kinds_or_no_kind():
    with pytest.raises(DestinationError, match="both bounds must be of one kind"):
        Between(day(1), 5)
    with pytest.raises(DestinationError, match="is not a date, timestamp, number or text"):
        Between(True, None)
    assert str(Between(day(1), None)) == "[2026-06-01, …]"
