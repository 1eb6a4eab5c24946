"""KeysetPaginator on its own (it has nothing of HubSpot's and is meant to move to kpihub.http.paginators)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from kpihub.http import KeysetBound, KeysetPaginator

from kpihub.errors import PaginationError
from kpihub.http import Requester
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route


class Sorted(FakeAPIServer):
    """Records sorted by ``t`` with ties in a shuffled order; a query is ``{from, inclusive, at, after_id, limit}``."""

    paging = (Paging(r"/query", method="POST", records="rows", param="after", where="body", opaque=False),)

    def __init__(self, ts: list[int]) -> None:
        super().__init__(seed=5)
        self.rows = {i: t for i, t in enumerate(ts, start=1)}
        self.tie = {i: random.Random(i).random() for i in self.rows}
        self.ignore_filters = False
        self.empty_pages = 0

    @route("POST", r"/query")
    def query(self, request: FakeRequest) -> FakeResponse:
        q = request.json()
        if self.empty_pages:
            self.empty_pages -= 1
            return self.json({"rows": [], "more": "yes"})
        if "at" in q:
            ids = sorted(i for i, t in self.rows.items() if t == q["at"] and i > (q.get("after_id") or 0))
        else:
            low, inclusive = q.get("from"), q.get("inclusive", True)
            keep = [
                i
                for i, t in self.rows.items()
                if low is None or self.ignore_filters or t > low or (inclusive and t == low)
            ]
            ids = sorted(keep, key=lambda i: (self.rows[i], self.tie[i]))
        page = [{"id": i, "t": self.rows[i]} for i in ids[: q["limit"]]]
        return self.json({"rows": page, "total": len(ids), **({"more": "yes"} if len(ids) > q["limit"] else {})})


def build(bound: KeysetBound) -> tuple[None, dict[str, Any]]:
    if bound.tie:
        return None, {"at": bound.key, "after_id": bound.after_id, "limit": 4}
    return None, {"from": bound.key, "inclusive": bound.inclusive, "limit": 4}


def paginator() -> KeysetPaginator:
    return KeysetPaginator(
        "rows", more_path="more", key=lambda r: r["t"], record_id=lambda r: r["id"], query=build, total_path="total"
    )


def read_all(server: Sorted, start: KeysetBound = KeysetBound()) -> tuple[list[int], list[int]]:
    totals: list[int] = []
    with Requester(source_id="t", base_url=server.url, max_attempts=1) as http:
        pages = paginator().pages(http, "POST", "/query", start=start, stream="s", on_total=totals.append)
        return [r["id"] for _, records in pages for r in records], totals


def test_ties_longer_than_a_page_in_any_order_are_read_once_each():
    ts = [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 4, 5, 5, 5, 5, 5, 6]  # nine 2s and five 5s, pages of 4
    with Sorted(ts) as server:
        ids, totals = read_all(server)
        tie_queries = [r.json()["at"] for r in server.requests if "at" in r.json()]
    assert sorted(ids) == list(range(1, 21)) and len(ids) == 20 and totals == [20]
    assert set(tie_queries) <= {2, 5} and 2 in tie_queries


def test_records_moved_to_the_end_mid_paging_are_not_skipped():
    with Sorted(list(range(1, 41))) as server:
        rng = random.Random(3)

        def move(request: FakeRequest) -> None:  # one record modified now: it sorts last
            rid = rng.choice(sorted(server.rows))
            server.rows[rid] = max(server.rows.values()) + 1

        server.between_pages(move)
        ids, _ = read_all(server, KeysetBound(1))
    assert set(ids) == set(range(1, 41))  # moved ones may come twice, none is missing


def test_an_empty_page_that_says_more_is_asked_again_then_stops():
    with Sorted([1, 2, 3]) as server:
        server.empty_pages = 2
        assert sorted(read_all(server)[0]) == [1, 2, 3]
        server.empty_pages = 9
        with pytest.raises(PaginationError, match="empty page with more to come 4 times"):
            read_all(server)


def test_an_api_that_ignores_the_keyset_filter_stops_instead_of_looping():
    with Sorted(list(range(1, 13))) as server:
        server.ignore_filters = True
        with pytest.raises(PaginationError, match="outside the keyset filter"):
            read_all(server)
