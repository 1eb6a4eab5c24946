"""Normalization: wire strings to typed Arrow columns, drift handled by policy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from kpihub.errors import NormalizationError
from kpihub.normalize import Normalizer

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("amount", pa.decimal128(38, 9), metadata={"path": "properties.amount"}),
        pa.field("count", pa.int64(), metadata={"path": "properties.count"}),
        pa.field("won", pa.bool_(), metadata={"path": "properties.won"}),
        pa.field("closed", TS, metadata={"path": "properties.closed"}),
        pa.field("day", pa.date32(), metadata={"path": "properties.day"}),
        pa.field("archived", pa.bool_(), metadata={"wire": "bool"}),
    ]
)


def rec(i: str, **props: object) -> dict:
    return {"id": i, "properties": props, "archived": False}


def norm(**kw: object) -> Normalizer:
    return Normalizer("deals", SCHEMA, primary_key=("id",), wire_strings=True, **kw)  # type: ignore[arg-type]


def test_strings_become_typed_columns():
    batch = norm().to_batch(
        [
            rec("1", amount="1500.50", count="3", won="true", closed="2024-06-01T10:00:00.000Z", day="2024-06-01"),
            rec("2", amount=None, count="", won="false", closed="1717236000000", day="20240602"),
            rec("3", amount=" 7 ", count="-2", won="TRUE", closed="2024-06-01T12:00:00+02:00", day=None),
            rec("4", closed="2024-06-03 08:30:00", day="2024-06-04T00:00:00Z"),
        ]
    )
    assert batch.schema.equals(SCHEMA)
    rows = batch.to_pylist()
    assert [r["amount"] for r in rows] == [Decimal("1500.5"), None, Decimal("7"), None]
    assert [r["count"] for r in rows] == [3, None, -2, None]
    assert [r["won"] for r in rows] == [True, False, True, None]
    assert [r["closed"] for r in rows] == [
        dt.datetime(2024, 6, 1, 10, tzinfo=UTC),
        dt.datetime(2024, 6, 1, 10, tzinfo=UTC),  # epoch milliseconds
        dt.datetime(2024, 6, 1, 10, tzinfo=UTC),  # +02:00 converted to UTC
        dt.datetime(2024, 6, 3, 8, 30, tzinfo=UTC),  # naive read as UTC
    ]
    assert [r["day"] for r in rows] == [dt.date(2024, 6, 1), dt.date(2024, 6, 2), None, dt.date(2024, 6, 4)]


def test_epoch_seconds_and_milliseconds():
    schema = pa.schema([pa.field("id", pa.string()), pa.field("t", TS, metadata={"wire": "int"})])
    batch = Normalizer("x", schema).to_batch([{"id": "a", "t": 1717236000}, {"id": "b", "t": 1717236000000}])
    assert batch.column("t").to_pylist() == [dt.datetime(2024, 6, 1, 10, tzinfo=UTC)] * 2


def test_unknown_fields_are_added_and_reported():
    n = norm()
    first = n.to_batch([rec("1", amount="1")])
    assert "url" not in first.schema.names
    batch = n.to_batch([{**rec("2", amount="2", hs_new_prop="x"), "url": "https://x"}])
    assert {"url", "hs_new_prop"} <= set(batch.schema.names)
    assert batch.column("hs_new_prop").to_pylist() == ["x"]
    assert n.drift.new_fields == ["url", "hs_new_prop"]
    assert "new fields added: url, hs_new_prop" in n.drift.summary()


def test_uncoercible_value_fails_naming_stream_record_and_field():
    with pytest.raises(NormalizationError) as info:
        norm().to_batch([rec("1", amount="10"), rec("42", amount="1,500.00")])
    message = str(info.value)
    assert message == "stream 'deals', record id='42', field 'amount': cannot read '1,500.00' as decimal128(38, 9)"
    assert info.value.record_key == {"id": "42"}


def test_null_policy_nulls_and_counts_bad_values():
    n = norm(on_coerce_error="null")
    batch = n.to_batch([rec("1", amount="abc", closed="yesterday"), rec("2", amount="5")])
    assert batch.column("amount").to_pylist() == [None, Decimal("5")]
    assert batch.column("closed").to_pylist() == [None, None]
    assert n.drift.nulled == {"amount": 1, "closed": 1}


def test_a_number_where_a_string_is_expected_is_converted_and_reported():
    n = norm()
    batch = n.to_batch([rec("1", amount=12.5, count=3, won=True)])
    assert batch.column("amount").to_pylist() == [Decimal("12.5")]
    assert batch.column("count").to_pylist() == [3]
    assert batch.column("won").to_pylist() == [True]
    assert n.drift.converted["amount"] == 1


def test_empty_page_gives_empty_batch_of_schema():
    batch = norm().to_batch([])
    assert batch.num_rows == 0 and batch.schema.equals(SCHEMA)


def test_large_page_is_converted_column_wise_in_one_pass():
    records = [rec(str(i), amount=f"{i}.25", count=str(i), closed="2024-01-01T00:00:00Z") for i in range(20_000)]
    batch = norm().to_batch(records)
    assert batch.num_rows == 20_000
    assert batch.column("amount")[19_999].as_py() == Decimal("19999.25")


def test_a_new_int_field_widens_to_float_when_a_later_page_has_a_fraction():
    # Issue 13 finding 7: the type of a field the schema does not declare came from its first value.
    n = Normalizer("things", pa.schema([pa.field("id", pa.string())]), primary_key=("id",))
    first = n.normalize([{"id": "a", "x": 1}])
    second = n.normalize([{"id": "b", "x": 1.5}, {"id": "c", "x": 2}])
    assert first.batch.schema.field("x").type == pa.int64()
    assert second.batch.schema.field("x").type == pa.float64()
    assert second.batch.column("x").to_pylist() == [1.5, 2.0]
    assert n.schema.field("x").type == pa.float64()
    assert "x" in first.drift.new_fields and "x: int64 -> double" in second.drift.summary()
    assert "new fields added: x" in n.drift.summary() and "x: int64 -> double" in n.drift.summary()


def test_a_new_field_with_ints_and_fractions_in_one_page_is_float():
    n = Normalizer("things", pa.schema([pa.field("id", pa.string())]), primary_key=("id",))
    out = n.normalize([{"id": "a", "x": 1}, {"id": "b", "x": 2.25}])
    assert out.batch.column("x").to_pylist() == [1.0, 2.25]


def test_a_new_field_is_not_widened_where_no_widening_is_safe():
    n = Normalizer("things", pa.schema([pa.field("id", pa.string())]), primary_key=("id",))
    n.normalize([{"id": "a", "x": 1}])
    with pytest.raises(NormalizationError, match=r"record id='b', field 'x'"):
        n.normalize([{"id": "b", "x": "many"}])


def test_an_int_field_beyond_two_to_the_53_is_not_widened_to_float():
    n = Normalizer("things", pa.schema([pa.field("id", pa.string())]), primary_key=("id",))
    with pytest.raises(NormalizationError, match="field 'x'"):
        n.normalize([{"id": "a", "x": 2**60 + 1}, {"id": "b", "x": 0.5}])


def test_declared_fields_keep_their_type():
    # Widening is for fields the stream did not declare; a declared int column stays int (a bad value).
    n = Normalizer("things", pa.schema([pa.field("id", pa.string()), pa.field("x", pa.int64())]), primary_key=("id",))
    with pytest.raises(NormalizationError, match="field 'x'"):
        n.normalize([{"id": "a", "x": 1.5}])


def _pages(n_pages: int, make: object) -> list[list[dict]]:
    return [[make(p * 100 + i) for i in range(100)] for p in range(n_pages)]  # type: ignore[operator]


def test_a_field_sent_in_another_json_type_is_read_natively_from_then_on():
    # A wire-strings stream whose "flag" is a JSON bool (HubSpot's top-level "archived" is, when the
    # author does not declare wire "bool"): the first page converts value by value, then the field's
    # wire type follows what the API sends, so later pages take the column-wise path.
    schema = pa.schema([pa.field("id", pa.string()), pa.field("flag", pa.bool_()), pa.field("n", pa.int64())])
    n = Normalizer("s", schema, wire_strings=True)
    pages = _pages(3, lambda i: {"id": str(i), "flag": i % 2 == 0, "n": str(i)})
    batches = [n.to_batch(p) for p in pages]
    assert [r["flag"] for b in batches for r in b.to_pylist()] == [i % 2 == 0 for i in range(300)]
    assert [r["n"] for b in batches for r in b.to_pylist()] == list(range(300))
    assert n.drift.converted == {"flag": 100}  # the first page only: the others were read as bools


def test_a_field_that_goes_back_to_its_declared_json_type_is_still_read_right():
    schema = pa.schema([pa.field("id", pa.string()), pa.field("flag", pa.bool_())])
    n = Normalizer("s", schema, wire_strings=True)
    first = n.to_batch([{"id": "1", "flag": True}, {"id": "2", "flag": False}])
    then = n.to_batch([{"id": "3", "flag": "true"}, {"id": "4", "flag": "FALSE"}, {"id": "5", "flag": None}])
    mixed = n.to_batch([{"id": "6", "flag": "true"}, {"id": "7", "flag": False}])
    assert first.column("flag").to_pylist() == [True, False]
    assert then.column("flag").to_pylist() == [True, False, None]
    assert mixed.column("flag").to_pylist() == [True, False]


def test_numbers_sent_as_strings_to_an_integer_field_are_read_column_wise():
    # Google Ads sends int64 fields as JSON strings ("clicks": "12"): a field declared int64 reads them.
    schema = pa.schema([pa.field("id", pa.string()), pa.field("clicks", pa.int64())])
    n = Normalizer("s", schema)
    pages = _pages(2, lambda i: {"id": str(i), "clicks": str(i)})
    out = [r["clicks"] for p in pages for r in n.to_batch(p).to_pylist()]
    assert out == list(range(200))
    assert n.drift.converted == {"clicks": 100}
    with pytest.raises(NormalizationError, match="clicks"):
        n.to_batch([{"id": "x", "clicks": "12.5"}])


def test_an_arrow_page_is_cast_to_the_schema_by_column_name():
    schema = pa.schema(
        [pa.field("id", pa.string()), pa.field("day", pa.date32()), pa.field("n", pa.int64()), pa.field("x", pa.float64())]
    )
    n = Normalizer("s", schema, primary_key=("id",))
    page = pa.RecordBatch.from_pydict(
        {"n": ["3", "", None], "day": ["20240614", "20240615", "2024-06-16"], "id": ["a", "b", "c"], "extra": [1, 2, 3]}
    )
    out = n.normalize(page)
    assert out.batch.schema.names == ["id", "day", "n", "x", "extra"]
    assert out.batch.column("n").to_pylist() == [3, None, None]
    assert out.batch.column("day").to_pylist() == [dt.date(2024, 6, 14), dt.date(2024, 6, 15), dt.date(2024, 6, 16)]
    assert out.batch.column("x").null_count == 3
    assert out.drift.new_fields == ["extra"]


def test_a_bad_value_in_an_arrow_page_names_the_record_and_the_field():
    schema = pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64())])
    page = pa.RecordBatch.from_pydict({"id": ["a", "b"], "n": ["1", "1.5"]})
    with pytest.raises(NormalizationError, match=r"record id='b', field 'n'"):
        Normalizer("s", schema, primary_key=("id",)).normalize(page)
    out = Normalizer("s", schema, primary_key=("id",), on_coerce_error="quarantine").normalize(page)
    assert out.batch.column("id").to_pylist() == ["a"]
    assert [(r.record_key, r.field) for r in out.rejected] == [({"id": "b"}, "n")]
    assert out.rejected[0].record == {"id": "b", "n": "1.5"}
