"""The HTTP toolkit against a real server on 127.0.0.1: retries, Retry-After, errors, paginators."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest

from kpihub.errors import HTTPError, MalformedResponseError, PaginationError
from kpihub.http import (
    ArrowRecords,
    BearerAuth,
    CursorPaginator,
    NextLinkPaginator,
    OffsetPaginator,
    PageTokenPaginator,
    RateLimiter,
    Requester,
    RetryDecision,
)
from kpihub.http.requester import parse_retry_after
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

SECRET = "sk_live_canary_51Hx9aQ"


class Pages(FakeAPIServer):
    """Forty numbered items behind four paging styles."""

    items = [{"n": i} for i in range(40)]
    paging = (
        Paging(r"/cursor", records="results", param="after", next="paging.next.after"),
        Paging(r"/offset", method="POST", records="rows", param="offset", where="body", offset=True),
        Paging(r"/link", records="data", param="after", next_link="paging.next"),
    )

    @route("GET", r"/cursor")
    def cursor(self, request: FakeRequest) -> FakeResponse:
        start = int(request.query.get("after", "0"))
        page = self.items[start : start + 15]
        body: dict[str, Any] = {"results": page}
        if start + 15 < len(self.items):
            body["paging"] = {"next": {"after": str(start + 15)}}
        return self.json(body)

    @route("POST", r"/offset")
    def offset(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        off, lim = int(body["offset"]), int(body["limit"])
        rows = self.items[off : off + lim]
        return self.json({"rows": rows, "rowCount": len(self.items)} if rows else {})

    @route("GET", r"/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        start = int(request.query.get("pageToken") or 0)
        nxt = start + 25
        return self.json({"results": self.items[start:nxt], "nextPageToken": str(nxt) if nxt < 40 else ""})

    @route("GET", r"/link")
    def link(self, request: FakeRequest) -> FakeResponse:
        start = int(request.query.get("after", "0"))
        body: dict[str, Any] = {"data": self.items[start : start + 10], "paging": {"cursors": {"after": "x"}}}
        if start + 10 < 40:
            body["paging"]["next"] = f"{self.url}/link?access_token={SECRET}&after={start + 10}"
        return self.json(body)

    @route("GET", r"/typed")
    def typed(self, request: FakeRequest) -> FakeResponse:
        return self.json({"results": [{"n": 1}, {"n": "two"}]})

    @route("GET", r"/loop")
    def loop(self, request: FakeRequest) -> FakeResponse:
        return self.json({"results": [{"n": 1}], "paging": {"next": {"after": "same"}}})

    @route("GET", r"/short")
    def short(self, request: FakeRequest) -> FakeResponse:
        return self.json({"results": [{"n": 1}], "total": 5})


@pytest.fixture
def server():
    with Pages(seed=1) as s:
        yield s


def requester(server: FakeAPIServer, sleeps: list[float] | None = None, **kw: Any) -> Requester:
    record = sleeps if sleeps is not None else []
    return Requester(source_id="src", base_url=server.url, sleep=record.append, seed=1, auth=BearerAuth(SECRET), **kw)


def test_cursor_paginator_reads_every_page(server):
    with requester(server) as http:
        pages = list(CursorPaginator("results", cursor_path="paging.next.after").pages(http, "GET", "/cursor"))
    assert [len(r) for _, r in pages] == [15, 15, 10]
    assert [x["n"] for _, r in pages for x in r] == list(range(40))


def test_offset_paginator_stops_at_row_count_and_puts_params_in_body(server):
    pag = OffsetPaginator("rows", limit=16, where="body", total_path="rowCount")
    with requester(server) as http:
        pages = list(pag.pages(http, "POST", "/offset", json={"dimensions": []}))
    assert [len(r) for _, r in pages] == [16, 16, 8]
    assert sorted(r.json()["offset"] for r in server.requests) == [0, 16, 32]  # 16 and 32 fetched ahead, at once


def test_offset_pages_are_fetched_ahead_in_order_with_no_request_past_the_total(server):
    # Issue 14: with 100 ms per response, a sequential loop waits for every page in turn; offset
    # paging knows its next pages once the total is declared, so they are in flight together.
    import threading
    import time

    in_flight, peak, lock = [0], [0], threading.Lock()
    with requester(server) as http:
        answer = http.json

        def slow(*args, **kwargs):  # a response that takes 100 ms to come, as real APIs' do
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                time.sleep(0.1)
                return answer(*args, **kwargs)
            finally:
                with lock:
                    in_flight[0] -= 1

        http.json = slow  # type: ignore[method-assign]
        paginator = OffsetPaginator("rows", limit=5, where="body", total_path="rowCount")  # lookahead by default
        pages = list(paginator.pages(http, "POST", "/offset"))
    assert [x["n"] for _, r in pages for x in r] == list(range(40))  # in order
    assert peak[0] >= 2
    assert sorted(r.json()["offset"] for r in server.requests) == list(range(0, 40, 5))  # none past 40, none twice


def test_page_token_paginator_treats_empty_token_as_last(server):
    with requester(server) as http:
        pages = list(PageTokenPaginator("results").pages(http, "GET", "/token"))
    assert sum(len(r) for _, r in pages) == 40 and len(pages) == 2


def test_next_link_paginator_follows_full_urls(server):
    with requester(server) as http:
        pages = list(NextLinkPaginator("data").pages(http, "GET", "/link"))
    assert sum(len(r) for _, r in pages) == 40
    assert server.requests[-1].query["after"] == "30"


def test_cursor_loop_is_an_error_not_an_endless_loop(server):
    with requester(server) as http, pytest.raises(PaginationError, match="twice .* 4 times"):
        list(CursorPaginator("results", cursor_path="paging.next.after").pages(http, "GET", "/loop", stream="s"))
    assert len(server.requests) == 5  # the first page, then the looping page asked for four times


#: An item as Arrow reads it (paginators with a ``record_type`` hand records on as an Arrow array).
ITEM = pa.struct([("n", pa.int64())])
PAGINATORS = {
    "cursor": lambda: (CursorPaginator("results", cursor_path="paging.next.after"), "GET", "/cursor", None),
    "offset": lambda: (OffsetPaginator("rows", limit=16, where="body", total_path="rowCount"), "POST", "/offset", {}),
    "link": lambda: (NextLinkPaginator("data"), "GET", "/link", None),
    "cursor-arrow": lambda: (
        CursorPaginator("results", cursor_path="paging.next.after", record_type=ITEM),
        "GET",
        "/cursor",
        None,
    ),
    "offset-arrow": lambda: (
        OffsetPaginator("rows", limit=16, where="body", total_path="rowCount", record_type=ITEM),
        "POST",
        "/offset",
        {},
    ),
}


def item_numbers(pages: list[tuple[Any, Any]]) -> list[int]:
    """The ``n`` of every record of every page, whether the records came as dicts or as Arrow."""
    return [x["n"] for _, r in pages for x in (r.to_pylist() if isinstance(r, pa.Array) else r)]


@pytest.mark.parametrize("style", PAGINATORS)
@pytest.mark.parametrize("kind", ["loop", "duplicate", "empty"])
def test_page_faults_once_still_give_every_record(server, style, kind):
    paginator, method, path, body = PAGINATORS[style]()
    fault = server.fail(kind=kind, after=1)  # the second page
    with requester(server) as http:
        pages = list(paginator.pages(http, method, path, json=body, stream="s"))
    numbers = item_numbers(pages)
    assert all(isinstance(r, pa.Array) == style.endswith("-arrow") for _, r in pages)
    applied = fault.hits == 1
    if kind == "duplicate" and applied:
        assert len(numbers) == 41 and sorted(set(numbers)) == list(range(40))  # one record twice; merge dedupes
    else:
        assert numbers == list(range(40))
    # Offset paging has no cursor to alias or records to shift: "duplicate" passes it over.
    assert applied == (not style.startswith("offset") or kind != "duplicate")


@pytest.mark.parametrize("style", PAGINATORS)
def test_a_page_fault_that_persists_is_an_error(server, style):
    paginator, method, path, body = PAGINATORS[style]()
    server.fail(kind="loop", after=1, times=10)
    with requester(server) as http, pytest.raises(PaginationError, match="4 times; stopping"):
        list(paginator.pages(http, method, path, json=body, stream="s"))


def test_injected_mix_hits_about_the_rate_and_paging_still_completes(server):
    fault = server.inject(0.3, kinds=["500", "reset", "truncate", "malformed", "loop", "empty", "duplicate"])
    got: set[int] = set()
    with requester(server, max_attempts=8) as http:
        for _ in range(30):
            pages = CursorPaginator("results", cursor_path="paging.next.after").pages(http, "GET", "/cursor")
            got.update(x["n"] for _, r in pages for x in r)
    assert got == set(range(40))
    assert 0.15 < fault.hits / fault.seen < 0.45
    assert set(server.fault_counts()) >= {"500", "reset", "truncate", "malformed", "loop", "empty"}


def test_fewer_records_than_declared_total_is_an_error(server):
    with requester(server) as http, pytest.raises(PaginationError, match="declared 5"):
        list(
            CursorPaginator("results", cursor_path="paging.next.after", total_path="total").pages(http, "GET", "/short")
        )


def test_429_retry_after_is_honoured_then_succeeds(server):
    server.fail(status=429, headers={"Retry-After": "7"}, times=2, path="/cursor")
    sleeps: list[float] = []
    with requester(server, sleeps) as http:
        body = http.json("GET", "/cursor", stream="items")
    assert body["results"][0] == {"n": 0}
    assert sleeps == [7.0, 7.0]
    assert http.retries == 2 and http.requests == 3


@pytest.mark.parametrize("decode", [None, ArrowRecords("results", ITEM)], ids=["orjson", "arrow"])
@pytest.mark.parametrize("kind", ["reset", "truncate", "malformed"])
def test_broken_bodies_and_connections_are_retried(server, kind, decode):
    server.fail(kind=kind, times=2, path="/cursor")
    sleeps: list[float] = []
    with requester(server, sleeps) as http:
        assert len(http.json("GET", "/cursor", decode=decode)["results"]) == 15
    assert len(sleeps) == 2
    assert all(0 < s <= 1.0 for s in sleeps)  # exponential backoff with jitter from 0.5 s


def test_5xx_backoff_grows_exponentially_and_is_bounded(server):
    server.fail(status=503, times=10, path="/cursor")
    sleeps: list[float] = []
    with requester(server, sleeps, max_attempts=4) as http, pytest.raises(HTTPError) as info:
        http.json("GET", "/cursor", stream="items")
    assert len(sleeps) == 3
    for attempt, s in enumerate(sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= s <= ceiling
    message = str(info.value)
    assert message.startswith("src/items: GET http://127.0.0.1:")
    assert "/cursor failed after 4 attempts: HTTP 503" in message
    assert info.value.status_code == 503


def test_client_errors_fail_at_once_with_the_api_message_and_no_secret(server):
    server.fail(status=400, body={"error": {"message": f"bad key {SECRET}"}}, path="/link")
    with requester(server) as http, pytest.raises(HTTPError) as info:
        http.json("GET", f"/link?access_token={SECRET}", stream="ads")
    text = str(info.value)
    assert "after 1 attempt" in text and "HTTP 400" in text
    assert SECRET not in text and "access_token=***" in text


def test_retry_after_longer_than_allowed_fails_clearly(server):
    server.fail(status=429, headers={"Retry-After": "86400"}, path="/cursor")
    with requester(server, max_retry_after=600) as http, pytest.raises(HTTPError, match="more than max_retry_after"):
        http.json("GET", "/cursor")


def test_malformed_json_after_all_attempts_is_named(server):
    server.fail(kind="malformed", times=10, path="/cursor")
    with requester(server, max_attempts=2) as http, pytest.raises(MalformedResponseError, match="malformed JSON"):
        http.json("GET", "/cursor", stream="items")


def test_source_classifier_can_retry_a_400_throttle(server):
    server.fail(status=400, body={"error": {"code": 17, "message": "(#17) User request limit reached"}}, path="/cursor")

    def classify(response: httpx.Response) -> RetryDecision | None:
        if response.status_code == 400 and response.json()["error"]["code"] == 17:
            return RetryDecision(True, 60.0, "throttled")
        return None

    sleeps: list[float] = []
    with requester(server, sleeps, classify=classify) as http:
        assert http.json("GET", "/cursor")
    assert sleeps == [60.0]


def test_bearer_token_is_sent_and_never_in_repr(server):
    with requester(server) as http:
        http.json("GET", "/cursor")
    assert server.requests[0].header("authorization") == f"Bearer {SECRET}"
    assert SECRET not in repr(BearerAuth(SECRET))


def test_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("soon") is None


def test_rate_limiter_spaces_requests():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert slept == pytest.approx([0.25, 0.25, 0.25, 0.25])


def test_integers_beyond_64_bits_are_read_exactly_and_long_digit_strings_stay_strings():
    from kpihub.http.body import loads as _loads

    big = 123456789012345678901234567890
    assert _loads(b'{"n": %d, "m": -%d}' % (big, big)) == {"n": big, "m": -big}
    assert _loads(b'{"id": "123456789012345678901234", "x": 1.5}') == {"id": "123456789012345678901234", "x": 1.5}
    assert _loads(b'{"x": 0.123456789012345678901234}') == {"x": 0.123456789012345678901234}


def test_arrow_records_are_the_records_orjson_reads():
    # A GA4-like page as the API sends it (pretty-printed), with a field the type does not name,
    # a record lacking one it names, and the rest of the body around the records.
    record = pa.struct(
        [("id", pa.string()), ("values", pa.list_(pa.struct([("value", pa.string())]))), ("n", pa.int64())]
    )
    body = {
        "header": [{"name": "a"}, {"name": "b", "type": "TYPE_INTEGER"}],
        "rows": [
            {"id": "1", "values": [{"value": "x"}, {"value": "y"}], "n": 7, "extra": {"deep": [1, 2]}},
            {"id": "2", "values": []},
            {"id": "3\nwith a newline", "values": [{"value": "z"}], "n": -9007199254740993},
        ],
        "rowCount": 3,
        "metadata": {"timeZone": "Europe/Oslo"},
    }
    got = ArrowRecords("rows", record)(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    assert got["rows"].type == record
    assert got["rows"].to_pylist() == [
        {"id": "1", "values": [{"value": "x"}, {"value": "y"}], "n": 7},
        {"id": "2", "values": [], "n": None},
        {"id": "3\nwith a newline", "values": [{"value": "z"}], "n": -9007199254740993},
    ]
    assert got["rowCount"] == 3 and got["metadata"] == {"timeZone": "Europe/Oslo"}
    assert got["header"] == [{"name": "a", "type": None}, {"name": "b", "type": "TYPE_INTEGER"}]
    nested = ArrowRecords("data.rows", record)(orjson.dumps({"data": {"rows": body["rows"][:1], "next": "c"}, "k": 1}))
    assert nested["k"] == 1 and nested["data"]["next"] == "c" and nested["data"]["rows"].to_pylist()[0]["n"] == 7
    assert ArrowRecords("rows", record)(b'{"rowCount": 0}') == {"rowCount": 0, "rows": None}


def test_arrow_records_keep_integers_arrow_would_read_as_floats():
    # Arrow infers an integer beyond int64 as a double without a word; such a body goes the exact way.
    big = 123456789012345678901234567890
    got = ArrowRecords("rows", ITEM)(b'{"rows": [{"n": 5}, {"n": -9223372036854775807}], "total": %d}' % big)
    assert got["total"] == big and got["rows"].to_pylist() == [{"n": 5}, {"n": -9223372036854775807}]
    assert ArrowRecords("rows", ITEM)(b"[1, 2]") == [1, 2]  # not an object: the paginator names it


def test_records_of_another_type_than_declared_fail_at_once_naming_stream_and_url(server):
    with requester(server) as http, pytest.raises(MalformedResponseError) as info:
        http.json("GET", "/typed", stream="items", decode=ArrowRecords("results", ITEM))
    message = str(info.value)
    assert message.startswith("src/items: GET http://127.0.0.1:") and "/typed: records at 'results' are not" in message
    assert http.requests == 1  # the same body would come again: not retried


def test_a_read_response_is_freed_with_its_last_reference_not_by_the_cyclic_gc(server):
    # httpx binds a response's stream to the response, and tenacity's Retrying holds the callbacks
    # that saw it: both cycles kept every body (2 MB a GA4 page) until the cyclic GC ran.
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        with requester(server) as http:
            response = http.request("GET", "/cursor", stream="items")
            assert response.json()["results"][0] == {"n": 0}
            gone = weakref.ref(response)
            del response
            assert gone() is None
            http.json("GET", "/cursor", stream="items")
            assert not [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
    finally:
        gc.enable()


def test_positional_report_rows_become_columns_by_header():
    from kpihub.http import positional_batch

    rows = [
        {"dimensionValues": [{"value": "20240601"}, {"value": "Direct"}], "metricValues": [{"value": "3"}]},
        {"dimensionValues": [{"value": "20240602"}, {"value": "Email"}], "metricValues": [{"value": "5"}]},
    ]
    batch = positional_batch(rows, {"dimensionValues": ["date", "channel"], "metricValues": ["sessions"]})
    assert batch.to_pydict() == {
        "date": ["20240601", "20240602"],
        "channel": ["Direct", "Email"],
        "sessions": ["3", "5"],
    }
    short = rows + [{"dimensionValues": [{"value": "20240603"}], "metricValues": [{"value": "1"}]}]
    with pytest.raises(ValueError, match="row 2: dimensionValues has 1 values for 2 headers"):
        positional_batch(short, {"dimensionValues": ["date", "channel"], "metricValues": ["sessions"]})


def test_offset_lookahead_holds_few_large_pages_in_flight():
    # A parsed page is held while it is in flight: 10,000 GA4 rows are ~30 MB of objects.
    assert OffsetPaginator("rows", limit=100, total_path="rowCount").lookahead == 4
    assert OffsetPaginator("rows", limit=10_000, total_path="rowCount").lookahead == 2
    assert OffsetPaginator("rows", limit=10_000, total_path="rowCount", lookahead=0).lookahead == 0
    assert OffsetPaginator("rows", limit=100).lookahead == 0  # no declared total: the end is not known
