"""The corpus: each case is an input and the outcome kpihub documents for it (docs/reliability.md).

Outcomes:

``coerced``
    the value is stored as the declared type (``value`` is what the table holds);
``evolved``
    the table grows: a new column (``value`` is its Arrow type);
``deduplicated``
    one row per primary key, the last one read (the summary counts the repeats);
``quarantined``
    with ``on_bad_record = "quarantine"`` the record goes to ``_rejected`` with a one-line reason
    (``value`` is part of it) and the rest loads; with the default ``fail`` the stream stops with a
    one-line error naming stream, record key and field, and nothing of that chunk is written;
``error``
    the stream or command stops with one line (``value`` is part of it), exit code 1, no traceback,
    state unmoved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

UTC = dt.timezone.utc

GOOD_A = {
    "id": "a1",
    "name": "Alpha",
    "price": "10.50",
    "quantity": 2,
    "clicks": 5,
    "rate": 0.5,
    "active": True,
    "created": "2024-06-01T10:00:00Z",
    "day": "2024-06-01",
}
GOOD_B = {**GOOD_A, "id": "b2", "name": "Beta", "price": "0.99", "clicks": 0}


@dataclass(frozen=True)
class RecordCase:
    """A record (among two good ones on the same page) and what becomes of it."""

    id: str
    what: str
    changes: dict[str, Any]
    outcome: str
    field: str
    value: Any = None
    #: The whole page instead of GOOD_A, the case record, GOOD_B (``raw``: the response body itself).
    page: list[Any] | None = None
    raw: bytes | None = None
    drop: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        record = {**GOOD_A, "id": "case", **self.changes}
        for name in self.drop:
            record.pop(name, None)
        return record


def _ts(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


R = RecordCase
RECORDS: list[RecordCase] = [
    # -- money and numbers -------------------------------------------------------------------------------------
    R(
        "amount-plain-string",
        "a decimal as a JSON string",
        {"price": "1234.50"},
        "coerced",
        "price",
        Decimal("1234.50"),
    ),
    R("amount-json-number", "a decimal as a JSON number", {"price": 12.25}, "coerced", "price", Decimal("12.25")),
    R("amount-integer", "a decimal as a JSON integer", {"price": 7}, "coerced", "price", Decimal("7.00")),
    R(
        "amount-thousands-comma",
        "thousand separators (en-US)",
        {"price": "1,234.50"},
        "quarantined",
        "price",
        "cannot read '1,234.50'",
    ),
    R(
        "amount-thousands-nordic",
        "space and decimal comma (nb-NO)",
        {"price": "1 234,50"},
        "quarantined",
        "price",
        "cannot read '1 234,50'",
    ),
    R(
        "amount-thousands-dot",
        "dot thousands, comma decimals (de-DE)",
        {"price": "1.234,50"},
        "quarantined",
        "price",
        "cannot read '1.234,50'",
    ),
    R(
        "amount-currency-symbol",
        "a currency symbol in the amount",
        {"price": "$12.00"},
        "quarantined",
        "price",
        "cannot read '$12.00'",
    ),
    R(
        "amount-empty-string",
        "an empty string for money (HubSpot's cleared value)",
        {"price": ""},
        "coerced",
        "price",
        None,
    ),
    R("amount-nan", "NaN as money", {"price": "NaN"}, "quarantined", "price", "cannot read 'NaN'"),
    R("amount-exponent", "scientific notation", {"price": "1.5e3"}, "coerced", "price", Decimal("1500.00")),
    R(
        "amount-extra-scale",
        "more decimals than the column keeps (cut, as LinkedIn's long strings)",
        {"price": "12.345"},
        "coerced",
        "price",
        Decimal("12.34"),
    ),
    R(
        "amount-negative",
        "negative money where the floor is 0",
        {"price": "-5.00"},
        "quarantined",
        "price",
        "Decimal('-5.00') is below the minimum 0",
    ),
    R(
        "amount-zero",
        "zero money (allowed: the floor is inclusive)",
        {"price": "0"},
        "coerced",
        "price",
        Decimal("0.00"),
    ),
    R(
        "amount-too-large",
        "more digits than decimal(18, 2) holds",
        {"price": "12345678901234567890.00"},
        "quarantined",
        "price",
        "cannot read '12345678901234567890.00'",
    ),
    R("count-string", "an integer as a string", {"clicks": "12"}, "coerced", "clicks", 12),
    R("count-float-integral", "an integer as 12.0", {"clicks": 12.0}, "coerced", "clicks", 12),
    R("count-fraction", "a fraction for a count", {"clicks": 12.5}, "quarantined", "clicks", "cannot read 12.5"),
    R("count-text", "text for a count", {"clicks": "many"}, "quarantined", "clicks", "cannot read 'many'"),
    R(
        "count-overflow",
        "a JSON integer beyond int64",
        {},
        "quarantined",
        "clicks",
        "cannot read 1180591620717411303424",
        raw=b'{"data": [{"id": "a1", "name": "Alpha"},'
        b' {"id": "case", "name": "Alpha", "clicks": 1180591620717411303424}, {"id": "b2", "name": "Beta"}]}',
    ),
    R("count-negative", "a negative click count", {"clicks": -3}, "quarantined", "clicks", "-3 is below the minimum 0"),
    R(
        "quantity-zero",
        "zero where the value must be above 0",
        {"quantity": 0},
        "quarantined",
        "quantity",
        "0 is not above the minimum 0",
    ),
    R("count-boolean", "true for a count", {"clicks": True}, "coerced", "clicks", 1),
    R("count-object", "an object for a count", {"clicks": {"value": 3}}, "quarantined", "clicks", "cannot read"),
    R("count-list", "a list for a count", {"clicks": [3]}, "quarantined", "clicks", "cannot read"),
    R("float-string", "a float as a string", {"rate": "0.25"}, "coerced", "rate", 0.25),
    R("float-infinity", "Infinity as a string", {"rate": "Infinity"}, "coerced", "rate", float("inf")),
    R("bool-string", 'a boolean as "true"', {"active": "true"}, "coerced", "active", True),
    R("bool-digit", "a boolean as 0", {"active": 0}, "coerced", "active", False),
    R("bool-yes", 'a boolean as "yes"', {"active": "yes"}, "quarantined", "active", "cannot read 'yes'"),
    # -- timestamps and dates ------------------------------------------------------------------------------
    R(
        "ts-offset",
        "an ISO timestamp with +02:00",
        {"created": "2024-06-01T12:00:00+02:00"},
        "coerced",
        "created",
        _ts(2024, 6, 1, 10),
    ),
    R(
        "ts-naive",
        "an ISO timestamp without offset (read as UTC)",
        {"created": "2024-06-01 12:00:00"},
        "coerced",
        "created",
        _ts(2024, 6, 1, 12),
    ),
    R("ts-epoch-seconds", "unix seconds", {"created": 1717243200}, "coerced", "created", _ts(2024, 6, 1, 12)),
    R("ts-epoch-millis", "unix milliseconds", {"created": "1717243200000"}, "coerced", "created", _ts(2024, 6, 1, 12)),
    R(
        "ts-nanoseconds",
        "nine fractional digits",
        {"created": "2024-06-01T12:00:00.123456789Z"},
        "coerced",
        "created",
        _ts(2024, 6, 1, 12, 0, 0, 123456),
    ),
    R(
        "ts-lowercase-z",
        "a lowercase z",
        {"created": "2024-06-01t12:00:00z"},
        "coerced",
        "created",
        _ts(2024, 6, 1, 12),
    ),
    R(
        "ts-compact-offset",
        "an offset without colon",
        {"created": "2024-06-01T12:00:00-0500"},
        "coerced",
        "created",
        _ts(2024, 6, 1, 17),
    ),
    R(
        "ts-us-format",
        "a US date format",
        {"created": "06/01/2024 12:00"},
        "quarantined",
        "created",
        "cannot read '06/01/2024 12:00'",
    ),
    R(
        "ts-impossible-date",
        "February 30th",
        {"created": "2024-02-30T00:00:00Z"},
        "quarantined",
        "created",
        "cannot read '2024-02-30T00:00:00Z'",
    ),
    R(
        "ts-far-future",
        "the year 9999",
        {"created": "9999-12-31T23:59:59Z"},
        "coerced",
        "created",
        _ts(9999, 12, 31, 23, 59, 59),
    ),
    R("date-compact", "a GA4-style date 20240601", {"day": "20240601"}, "coerced", "day", dt.date(2024, 6, 1)),
    R(
        "date-with-time",
        "a timestamp where a date is declared",
        {"day": "2024-06-01T23:30:00Z"},
        "coerced",
        "day",
        dt.date(2024, 6, 1),
    ),
    R("date-garbage", "not a date", {"day": "soon"}, "quarantined", "day", "cannot read 'soon'"),
    # -- text ----------------------------------------------------------------------------------------------
    R("text-huge", "a 5 MB string", {"name": "x" * 5_000_000}, "coerced", "name", "x" * 5_000_000),
    R("text-nul", "a NUL character", {"name": "a\u0000b"}, "coerced", "name", "a\u0000b"),
    R(
        "text-unicode",
        "emoji, RTL and combining marks",
        {"name": "Ærøskøbing 🚀 مرحبا é"},
        "coerced",
        "name",
        "Ærøskøbing 🚀 مرحبا é",
    ),
    R("text-number", "a number where text is declared", {"name": 42}, "coerced", "name", "42"),
    R("text-object", "an object where text is declared", {"name": {"first": "A"}}, "coerced", "name", '{"first":"A"}'),
    # -- keys and shape ------------------------------------------------------------------------------------
    R("key-null", "a null primary key", {"id": None}, "quarantined", "id", "record without primary key 'id'"),
    R("key-missing", "no primary key at all", {}, "quarantined", "id", "record without primary key 'id'", drop=("id",)),
    R("key-integer", "a numeric id where text is declared", {"id": 12345}, "coerced", "id", "12345"),
    R(
        "key-duplicate-in-page",
        "the same id twice in one page",
        {},
        "deduplicated",
        "name",
        "Second",
        page=[{**GOOD_A, "id": "case", "name": "First"}, GOOD_B, {**GOOD_A, "id": "case", "name": "Second"}],
    ),
    R("field-unknown", "a field the schema does not know", {"coupon": "SPRING"}, "evolved", "coupon", "string"),
    R(
        "field-unknown-object",
        "an unknown object (kept as JSON text)",
        {"meta": {"source": "ads"}},
        "evolved",
        "meta",
        "string",
    ),
    R("field-missing", "a declared field missing", {}, "coerced", "rate", None, drop=("rate",)),
    R(
        "field-null",
        "null for every optional field",
        {k: None for k in ("name", "price", "quantity", "clicks", "rate", "active", "created", "day")},
        "coerced",
        "price",
        None,
    ),
    R(
        "record-not-object",
        "a string where a record should be",
        {},
        "quarantined",
        "(record)",
        "'not a record' is not a JSON object",
        page=[GOOD_A, "not a record", GOOD_B],
    ),
]


@dataclass(frozen=True)
class WireCase:
    """A response body the API sends for the first page, and the one-line error it gives."""

    id: str
    what: str
    body: bytes
    value: str
    status: int = 200
    #: The stream's outcome: ``failed`` (nothing written), or ``incomplete`` (what was read is
    #: written, the state holds no cursor past it).
    outcome: str = "failed"


W = WireCase
WIRE: list[WireCase] = [
    W(
        "wire-not-utf8",
        "bytes that are not UTF-8",
        b'{"data": [{"id": "x", "name": "\xff\xfe"}]}',
        "malformed JSON body",
    ),
    W("wire-truncated", "a body cut short", b'{"data": [{"id": "x", "na', "malformed JSON body"),
    W(
        "wire-html",
        "an HTML error page with 200",
        b"<html><body>Service Unavailable</body></html>",
        "malformed JSON body",
    ),
    W("wire-records-not-list", "records as an object", b'{"data": {"id": "x"}}', "expected a list at 'data'"),
    W(
        "wire-top-level-list",
        "a list where an object is expected",
        b"[1, 2, 3]",
        "expected a JSON object with a list at 'data', got a list",
    ),
    W(
        "wire-lone-surrogate",
        "a lone UTF-16 surrogate escape",
        b'{"data": [{"id": "x", "name": "\\ud800"}]}',
        "malformed JSON body",
    ),
    W(
        "wire-401",
        "the token is refused",
        b'{"error": {"message": "invalid token"}}',
        "HTTP 401: invalid token",
        status=401,
    ),
    W(
        "wire-404",
        "the endpoint is gone",
        b'{"error": {"message": "no such endpoint"}}',
        "HTTP 404: no such endpoint",
        status=404,
    ),
    W(
        "wire-total-short",
        "fewer records than the declared total",
        b'{"data": [{"id": "x"}], "total": 5}',
        "read 1 distinct records but the API declared 5",
        outcome="incomplete",
    ),
    W(
        "wire-cursor-loop",
        "a next cursor that points at itself",
        b'{"data": [{"id": "x"}], "next": "0"}',
        "a pagination loop",
    ),
]


@dataclass(frozen=True)
class ConfigCase:
    """A project file (and environment) and the one-line error a command gives for it."""

    id: str
    what: str
    toml: str | bytes
    value: str
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ("check",)


STRIPE = '[sources.stripe]\napi_key = "sk_test_corpus"\n'
C = ConfigCase
CONFIGS: list[ConfigCase] = [
    C("config-bad-toml", "TOML syntax error", "[project\nname = 1\n", "kpihub.toml"),
    C("config-not-utf8", "a file that is not UTF-8", b'[project]\nname = "\xff"\n' + STRIPE.encode(), "UTF-8"),
    C(
        "config-unknown-project-key",
        "a misspelt project setting",
        '[project]\ndestinaton = "x"\n' + STRIPE,
        "destinaton",
    ),
    C("config-chunk-rows-text", "text for a number", '[project]\nchunk_rows = "many"\n' + STRIPE, "chunk_rows"),
    C("config-chunk-rows-zero", "zero rows per chunk", "[project]\nchunk_rows = 0\n" + STRIPE, "chunk_rows"),
    C("config-bad-timezone", "an unknown time zone", '[project]\ntimezone = "Mars/Olympus"\n' + STRIPE, "Mars/Olympus"),
    C(
        "config-bad-policy",
        "an unknown bad-record policy",
        '[project]\non_bad_record = "maybe"\n' + STRIPE,
        "on_bad_record",
    ),
    C(
        "config-unknown-destination",
        "a destination nobody registered",
        '[project]\ndestination = "nosuch:///x"\n' + STRIPE,
        "nosuch",
        command=("sync",),
    ),
    C(
        "config-unreachable-postgres",
        "a database that is not there (password masked)",
        '[project]\ndestination = "postgresql://kp:s3cretpw@127.0.0.1:1/db"\n' + STRIPE,
        "cannot connect",
        command=("sync",),
    ),
    C("config-unknown-source-type", "a source type no plugin provides", '[sources.crm]\ntype = "nosuch"\n', "nosuch"),
    C("config-missing-secret", "a required secret not set", "[sources.stripe]\n", "api_key"),
    C(
        "config-unknown-source-field",
        "a misspelt source setting",
        '[sources.stripe]\napi_key = "sk_test_x"\npage_sise = 10\n',
        "page_sise",
    ),
    C(
        "config-page-size-range",
        "a page size the API refuses",
        '[sources.stripe]\napi_key = "sk_test_x"\npage_size = 1000\n',
        "page_size",
    ),
    C(
        "config-bad-date",
        "a start date that is not a date",
        '[sources.stripe]\napi_key = "sk_test_x"\nstart_date = "yesterday"\n',
        "start_date",
    ),
    C(
        "config-bad-account-id",
        "an ad account id that is not numeric",
        '[sources.linkedin_ads]\naccess_token = "t"\naccount_ids = ["acme"]\n',
        "acme",
    ),
    C(
        "config-empty-accounts",
        "no ad accounts",
        '[sources.linkedin_ads]\naccess_token = "t"\naccount_ids = []\n',
        "account_ids",
    ),
    C(
        "config-env-not-number",
        "an environment variable of the wrong type",
        STRIPE,
        "environment variable KPIHUB_CHUNK_ROWS",
        env={"KPIHUB_CHUNK_ROWS": "lots"},
    ),
    C(
        "config-no-sources",
        "a project without sources",
        '[project]\nname = "x"\n',
        "no sources configured",
        command=("sync",),
    ),
    C(
        "config-unknown-stream",
        "a stream the source does not have",
        STRIPE,
        "nosuchstream",
        command=("sync", "--streams", "stripe.nosuchstream"),
    ),
    C(
        "config-missing-targets",
        "a targets file that is not there",
        '[project]\ntargets = "nope.toml"\n' + STRIPE,
        "nope.toml",
        command=("kpis",),
    ),
]
