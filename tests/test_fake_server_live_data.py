"""Live data in the fake-server base: ``between_pages`` changes the data between page requests."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub.testing.server import PageHook


class Items(FakeAPIServer):
    """Thirty items sorted by modification time, paged by offset like HubSpot's search."""

    paging = (Paging(r"/items", records="results", param="after", next="paging.next.after", opaque=False),)

    def __init__(self) -> None:
        super().__init__(seed=3)
        self.modified = {i: i for i in range(1, 31)}  # id -> modification time
        self.clock = 100

    def ordered(self) -> list[int]:
        return sorted(self.modified, key=lambda i: (self.modified[i], i))

    def touch(self, rid: int) -> None:
        """Modify a record now: it moves to the end of the sort order."""
        self.clock += 1
        self.modified[rid] = self.clock

    @route("GET", r"/items")
    def list_items(self, request: FakeRequest) -> FakeResponse:
        start, limit = int(request.query.get("after") or 0), int(request.query.get("limit", "10"))
        ids = self.ordered()
        body: dict[str, Any] = {
            "total": len(ids),
            "results": [{"id": i, "modified": self.modified[i]} for i in ids[start : start + limit]],
        }
        if start + limit < len(ids):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return self.json(body)

    @route("GET", r"/count")
    def count(self, request: FakeRequest) -> FakeResponse:
        return self.json({"count": len(self.modified)})


@pytest.fixture
def server():
    with Items() as s:
        yield s


def page_through(server: Items, limit: int = 10) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while True:
            params = {"limit": limit, **({"after": after} if after else {})}
            body = client.get("/items", params=params).json()
            pages.append(body["results"])
            after = (body.get("paging") or {}).get("next", {}).get("after")
            if after is None:
                return pages


def test_a_change_between_pages_is_seen_by_the_next_page_only(server):
    seen_by_hook: list[int] = []

    def move_first(request: FakeRequest) -> None:
        seen_by_hook.append(int(request.query.get("after") or 0))
        server.touch(server.ordered()[0])  # the smallest record moves to the end

    hook = server.between_pages(move_first, times=1)
    first, second, third = page_through(server)
    assert [r["id"] for r in first] == list(range(1, 11))  # built before the hook ran
    # Record 1 moved to the end, so offset 10 now starts at record 12: an offset reader skips 11.
    assert [r["id"] for r in second] == list(range(12, 22))
    assert [r["id"] for r in third] == [*range(22, 31), 1]
    assert (hook.runs, hook.pages, hook.error, seen_by_hook) == (1, 1, None, [0])


def test_every_and_times(server):
    hook = server.between_pages(lambda request: server.touch(31 - hook.runs), every=2, times=2)
    pages = page_through(server, limit=5)
    assert len(pages) == 6 and hook.pages == 4  # counted while active
    assert hook.runs == 2 and not hook.active  # after pages 2 and 4, then capped
    assert server.modified[30] == 101 and server.modified[29] == 102
    with pytest.raises(ValueError, match="every must be at least 1"):
        server.between_pages(print, every=0)


def test_adds_and_deletes_between_pages(server):
    def churn(request: FakeRequest) -> None:
        del server.modified[server.ordered()[-1]]  # delete the last record (30)
        server.clock += 1
        server.modified[1000 + server.clock] = server.clock  # add one, modified now

    hook = server.between_pages(churn, times=1)
    got = [r["id"] for page in page_through(server) for r in page]
    assert got == [*range(1, 30), 1101] and hook.runs == 1


def test_only_matching_pages_served_intact_count(server):
    hook = server.between_pages(lambda request: None, path=r"/items$", method="GET")
    other = server.between_pages(lambda request: None, path=r"/elsewhere")
    server.fail(status=500, path="/items", times=1)
    server.fail(kind="malformed", path="/items", after=1, times=1)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/items").status_code == 500  # no page served
        assert client.get("/items").json()["results"]  # a page
        assert client.get("/items").content.startswith(b'{"results": [{"id": "1"')  # malformed: no page
        assert client.get("/count").json() == {"count": 30}  # not a paged endpoint
        client.get("/items", params={"after": "20"})  # the last page counts too
    assert (hook.pages, hook.runs, other.pages) == (2, 2, 0)
    server.clear_page_hooks()
    assert server.page_hooks == []


def test_an_error_in_the_hook_is_kept_and_stops_it(server):
    def boom(request: FakeRequest) -> None:
        raise RuntimeError("mutation failed")

    hook = server.between_pages(boom)
    pages = page_through(server)
    assert len(pages) == 3 and sum(map(len, pages)) == 30  # pages are still served
    assert isinstance(hook.error, RuntimeError) and hook.runs == 1 and not hook.active


def test_a_hook_is_serialized_with_request_handling(server):
    """No request is answered while a hook is half-way through a change."""
    started = threading.Event()

    def slow_swap(request: FakeRequest) -> None:
        server.modified.pop(1)  # gone for 0.3 s, then back: nobody may see 29
        started.set()
        time.sleep(0.3)
        server.modified[1] = 1

    hook: PageHook = server.between_pages(slow_swap, times=1)
    counts: list[int] = []

    def count_while_hook_runs() -> None:
        started.wait(5)
        with httpx.Client(base_url=server.url, timeout=5) as client:
            counts.append(client.get("/count").json()["count"])

    reader = threading.Thread(target=count_while_hook_runs)
    reader.start()
    t0 = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        client.get("/items")
    reader.join(5)
    assert hook.runs == 1 and counts == [30]
    assert time.monotonic() - t0 >= 0.3  # the page waited for its hook: the next request sees the change
