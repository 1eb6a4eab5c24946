"""Paginators: cursor, offset, page token and next link, with loop and total guards.

Each paginator yields ``(body, records)`` per page. It reads the cursor of
page N before page N is handed on, so the sync engine's prefetch can request
page N+1 while page N is being converted.

A page that leads back to where paging already was — a cursor seen before,
the same records as the page before, or (offset paging) an empty page before
the API's declared total — is asked for again: APIs do this under load and
answer right the next time. When it persists, or paging ends with fewer
records than the API's declared total, :class:`~kpihub.errors.PaginationError`
stops the stream instead of returning partial data.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import httpx
import orjson
import pyarrow as pa

from kpihub.errors import MalformedResponseError, PaginationError
from kpihub.http.body import ArrowRecords, get_path
from kpihub.http.requester import Requester

__all__ = [
    "CursorPaginator",
    "LinkHeaderPaginator",
    "NextLinkPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageTokenPaginator",
    "Paginator",
    "get_path",
]

log = logging.getLogger("kpihub.http")


class Paginator(ABC):
    """Base: ``pages()`` drives requests; subclasses say where the next page is."""

    #: How many times a page that leads back (see the module docstring) is asked for again.
    repeat_attempts: int = 3

    #: The paginator reads the response headers (``Link``): pages are fetched with them.
    reads_headers: bool = False

    def __init__(
        self,
        records_path: str,
        *,
        total_path: str | None = None,
        record_type: pa.DataType | None = None,
        stop_path: str | None = None,
    ) -> None:
        self.records_path = records_path
        self.total_path = total_path
        #: A body field that is true on the last page (Zendesk's ``end_of_stream``): paging ends there
        #: even where the body still names a next page.
        self.stop_path = stop_path
        #: Given, each page's records come as a ``pa.Array`` of this type, read by Arrow's JSON
        #: reader off the GIL (:class:`~kpihub.http.ArrowRecords`), instead of a list of dicts.
        self.record_type = record_type
        self._decode = ArrowRecords(records_path, record_type) if record_type is not None and records_path else None

    #: Requests kept in flight ahead of the one the loop waits for, where the paging scheme knows them
    #: (offset paging with a declared total; 4 by default there): latency overlaps instead of adding
    #: up page by page. Each request is booked in the source's rate budget when it is sent, so pages
    #: in flight together spend the budget as one after another would.
    lookahead: int = 0

    def records(self, body: Any, *, source: str, stream: str | None, url: str) -> Any:
        """The page's records: a list, or a ``pa.Array`` of :attr:`record_type` where one is declared."""
        if self.records_path and not isinstance(body, Mapping):
            raise MalformedResponseError(
                f"{source}/{stream}: {url}: expected a JSON object with a list at {self.records_path!r}, "
                f"got a {type(body).__name__}",
                source=source,
                stream=stream,
            )
        records = get_path(body, self.records_path) if self.records_path else body
        if records is None:  # APIs omit empty arrays (GA4 rows, Google Ads results).
            return [] if self.record_type is None else pa.array([], type=self.record_type)
        if not isinstance(records, list | pa.Array):
            raise MalformedResponseError(
                f"{source}/{stream}: {url}: expected a list at {self.records_path!r}, got {type(records).__name__}",
                source=source,
                stream=stream,
            )
        return records

    def pages(
        self,
        http: Requester,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        """Yield ``(body, records)`` for each page until the API says there are no more.

        ``on_total`` receives the API's declared total (``total_path``) once paging ends.
        """
        seen: set[Any] = set()
        request: tuple[str, dict[str, Any] | None, dict[str, Any] | None] | None = (
            url,
            dict(params) if params is not None else None,
            dict(json) if json is not None else None,
        )
        where = f"{http.source_id}/{stream}"

        def fetch(req: tuple[str, dict[str, Any] | None, dict[str, Any] | None]) -> Any:
            if self.reads_headers:
                return http.json_and_headers(
                    method, req[0], stream=stream, params=req[1], json=req[2], decode=self._decode
                )
            return None, http.json(method, req[0], stream=stream, params=req[1], json=req[2], decode=self._decode)

        with _Lookahead(fetch, self.lookahead) as ahead:
            yield from self._loop(ahead, request, where, url, stream, http.source_id, seen, on_total)

    def _loop(
        self,
        ahead: _Lookahead,
        request: tuple[str, dict[str, Any] | None, dict[str, Any] | None] | None,
        where: str,
        url: str,
        stream: str | None,
        source_id: str,
        seen: set[Any],
        on_total: Callable[[int], None] | None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        count = 0
        total: int | None = None
        previous: list[Any] | None = None
        repeats = 0
        while request is not None:
            page_url, page_params, page_json = request
            headers, body = ahead.get(request)
            records = self.records(body, source=source_id, stream=stream, url=page_url)
            declared = get_path(body, self.total_path) if self.total_path is not None else None
            token = self.page_token(body, headers, records, count)
            if token is not None and token in seen:
                problem = f"the API returned cursor {str(token)[:80]!r} twice (a pagination loop)"
            elif records and previous is not None and records == previous:
                problem = "the API returned the previous page again"
            elif token is None and not records and declared is not None and count < int(declared):
                problem = f"the API returned an empty page at {count} of {int(declared)} records"
            else:
                problem = None
            if problem is not None:
                repeats += 1
                if repeats > self.repeat_attempts:
                    raise PaginationError(
                        f"{where}: {page_url}: {problem} after {count} records, {self.repeat_attempts + 1} times; "
                        "stopping instead of returning partial data",
                        source=source_id,
                        stream=stream,
                    )
                log.warning("%s: %s after %d records; asking for that page again", where, problem, count)
                continue
            repeats = 0
            count += len(records)
            previous = records
            if declared is not None:
                total = int(declared)
            if token is not None:
                seen.add(token)
                request = self.next_request(token, page_url, page_params, page_json)
                # Known next pages go in flight now, while the consumer converts this one.
                ahead.schedule([request, *self.predicted(request, total)])
            else:
                request = None
            yield body, records
        if total is not None and on_total is not None:
            # The sync engine checks completeness itself: it keeps what was read and holds the state.
            on_total(total)
        elif total is not None and count < total:
            raise PaginationError(
                f"{where}: {url}: paging ended after {count} records but the API declared "
                f"{total}; refusing partial data",
                source=source_id,
                stream=stream,
            )

    def predicted(
        self, request: tuple[str, dict[str, Any] | None, dict[str, Any] | None], total: int | None
    ) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        """The requests after ``request`` that are known before its answer arrives (at most
        ``lookahead - 1``); none by default: a cursor comes only with its page."""
        return []

    def page_token(self, body: Any, headers: httpx.Headers | None, records: list[Any], count: int) -> Any:
        """The next page's token from the page's body and headers: :meth:`next_token`, unless the
        body's ``stop_path`` says this was the last page. ``headers`` is ``None`` unless
        :attr:`reads_headers`."""
        if self.stop_path is not None and get_path(body, self.stop_path) is True:
            return None
        return self.next_token(body, records, count)

    @abstractmethod
    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The token of the next page, or ``None`` when this was the last page.

        ``count`` is how many records the pages before this one held.
        """

    @abstractmethod
    def next_request(
        self, token: Any, url: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """The next request (url, params, json body) for ``token``."""


class _Lookahead:
    """Requests fetched ahead, in worker threads, of the paging loop that will ask for them.

    ``get`` returns a request's answer — from its request in flight, or fetched now. On close the
    requests not started are cancelled and those in flight finish before the client can close.
    """

    def __init__(self, fetch: Callable[[Any], Any], depth: int) -> None:
        self.fetch = fetch
        self.pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="kpihub-page") if depth > 0 else None
        self.pending: dict[bytes, Future[Any]] = {}

    @staticmethod
    def _key(request: Any) -> bytes:
        return orjson.dumps(request, option=orjson.OPT_SORT_KEYS, default=str)

    def schedule(self, requests: list[Any]) -> None:
        if self.pool is None:
            return
        for request in requests:
            key = self._key(request)
            if key not in self.pending:
                self.pending[key] = self.pool.submit(self.fetch, request)

    def get(self, request: Any) -> Any:
        future = self.pending.pop(self._key(request), None) if self.pool is not None else None
        return future.result() if future is not None else self.fetch(request)

    def __enter__(self) -> _Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            for future in self.pending.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def _put(
    where: Literal["query", "body"],
    name: str,
    value: Any,
    params: dict[str, Any] | None,
    json: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if where == "query":
        return {**(params or {}), name: value}, json
    return params, {**(json or {}), name: value}


class CursorPaginator(Paginator):
    """A cursor from the body (``paging.next.after``) or from the records (Stripe's last id)."""

    def __init__(
        self,
        records_path: str,
        *,
        cursor_path: str | None = None,
        cursor_from: Callable[[Any, list[Any]], Any] | None = None,
        param: str = "after",
        where: Literal["query", "body"] = "query",
        total_path: str | None = None,
        record_type: pa.DataType | None = None,
        stop_path: str | None = None,
        drop_params: tuple[str, ...] = (),
    ) -> None:
        super().__init__(records_path, total_path=total_path, record_type=record_type, stop_path=stop_path)
        #: Parameters of the first request the cursor replaces (Zendesk's ``start_time``).
        self.drop_params = drop_params
        if (cursor_path is None) == (cursor_from is None):
            raise ValueError("give exactly one of cursor_path or cursor_from")
        self.cursor_path = cursor_path
        self.cursor_from = cursor_from
        self.param = param
        self.where = where

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The next cursor: ``cursor_from(body, records)``, or the value at ``cursor_path``."""
        if self.cursor_from is not None:
            return self.cursor_from(body, records)
        return get_path(body, self.cursor_path or "")

    def next_request(self, token, url, params, json):  # type: ignore[no-untyped-def]
        """The same request with the cursor in ``param`` (query or body); ``drop_params`` removed."""
        if self.drop_params:
            params = {k: v for k, v in (params or {}).items() if k not in self.drop_params}
            json = {k: v for k, v in json.items() if k not in self.drop_params} if json is not None else None
        return (url, *_put(self.where, self.param, token, params, json))


def _copy(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


#: Records an offset paginator keeps in flight ahead of the page in hand (see ``lookahead``).
LOOKAHEAD_RECORDS = 20_000


class OffsetPaginator(Paginator):
    """``offset += limit`` while ``offset < total`` (GA4 ``rowCount``) or pages are full."""

    def __init__(
        self,
        records_path: str,
        *,
        limit: int,
        limit_param: str = "limit",
        offset_param: str = "offset",
        where: Literal["query", "body"] = "query",
        total_path: str | None = None,
        start: int = 0,
        lookahead: int = 4,
        record_type: pa.DataType | None = None,
    ) -> None:
        super().__init__(records_path, total_path=total_path, record_type=record_type)
        # Pages in flight are parsed bodies held at once (10,000 GA4 rows parse to ~30 MB of Python
        # objects, ~2 MB of Arrow): Python pages at most LOOKAHEAD_RECORDS records ahead, and always
        # one page ahead where any is asked for.
        depth = lookahead
        if record_type is None and lookahead:
            depth = min(lookahead, max(2, LOOKAHEAD_RECORDS // max(limit, 1)))
        self.lookahead = depth if total_path is not None else 0
        self.limit = limit
        self.limit_param = limit_param
        self.offset_param = offset_param
        self.where = where
        self.start = start

    def pages(self, http, method, url, *, stream=None, params=None, json=None, on_total=None):  # type: ignore[no-untyped-def]
        """Like :meth:`Paginator.pages`, from offset ``start`` with ``limit`` records a page."""
        params, json = _put(self.where, self.limit_param, self.limit, _copy(params), _copy(json))
        params, json = _put(self.where, self.offset_param, self.start, params, json)
        yield from super().pages(http, method, url, stream=stream, params=params, json=json, on_total=on_total)

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The next offset; ``None`` after an empty page, at the declared total, or after a short page."""
        if not records:
            return None
        offset = self.start + count + len(records)
        if self.total_path is not None:
            total = get_path(body, self.total_path)
            if total is None or offset >= int(total):
                return None
        elif len(records) < self.limit:
            return None
        return offset

    def next_request(self, token, url, params, json):  # type: ignore[no-untyped-def]
        """The same request with the offset parameter set to ``token``."""
        return (url, *_put(self.where, self.offset_param, token, params, json))

    def predicted(self, request, total):  # type: ignore[no-untyped-def]
        """The next ``lookahead - 1`` offsets below the declared ``total``; none without a total."""
        if total is None:  # without a declared total the end is not known: never ask past it
            return []
        url, params, json = request
        offset = int((params if self.where == "query" else json or {})[self.offset_param])  # type: ignore[index]
        out = []
        for i in range(1, self.lookahead):
            if offset + i * self.limit >= total:
                break
            out.append(self.next_request(offset + i * self.limit, url, params, json))
        return out


class PageTokenPaginator(CursorPaginator):
    """``nextPageToken`` in the body, sent back as ``pageToken`` (Google APIs)."""

    def __init__(
        self,
        records_path: str,
        *,
        token_path: str = "nextPageToken",
        param: str = "pageToken",
        where: Literal["query", "body"] = "query",
        total_path: str | None = None,
        record_type: pa.DataType | None = None,
    ) -> None:
        super().__init__(
            records_path,
            cursor_path=token_path,
            param=param,
            where=where,
            total_path=total_path,
            record_type=record_type,
        )

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The next page token; ``None`` when it is missing or empty (Google sends ``""`` last)."""
        token = super().next_token(body, records, count)
        return token or None  # Google sends "" on the last page.


class NextLinkPaginator(Paginator):
    """A full next-page URL in the body (Meta ``paging.next``); query already inside it."""

    def __init__(
        self,
        records_path: str,
        *,
        next_path: str = "paging.next",
        total_path: str | None = None,
        record_type: pa.DataType | None = None,
        stop_path: str | None = None,
    ) -> None:
        super().__init__(records_path, total_path=total_path, record_type=record_type, stop_path=stop_path)
        self.next_path = next_path

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The next-page URL at ``next_path``; ``None`` when it is missing or empty."""
        return get_path(body, self.next_path) or None

    def next_request(self, token, url, params, json):  # type: ignore[no-untyped-def]
        """A request to the next-page URL as it is: its query already holds the parameters."""
        return (str(token), None, json)


class LinkHeaderPaginator(NextLinkPaginator):
    """The next page's URL in the ``Link`` response header (RFC 8288 ``<url>; rel="next"``:
    GitHub, Shopify REST, Freshdesk, Zendesk's offset lists); no ``next`` link ends paging."""

    reads_headers = True

    def __init__(
        self, records_path: str, *, rel: str = "next", total_path: str | None = None, stop_path: str | None = None
    ) -> None:
        super().__init__(records_path, next_path="", total_path=total_path, stop_path=stop_path)
        self.rel = rel

    def page_token(self, body: Any, headers: httpx.Headers | None, records: list[Any], count: int) -> Any:
        """The ``rel="next"`` URL of the ``Link`` header (httpx parses it), or ``None``."""
        if self.stop_path is not None and get_path(body, self.stop_path) is True:
            return None
        link = httpx.Response(200, headers=headers or {}).links.get(self.rel)
        return link.get("url") if link else None


class PageNumberPaginator(Paginator):
    """``page=1, 2, ...`` with a page size: ends on a short or empty page, or at ``total_pages_path``.

    Page and offset paging shift when records are added or deleted between requests (a deletion
    moves a record onto a page already read: it is missed); prefer a cursor where the API has one.
    """

    def __init__(
        self,
        records_path: str,
        *,
        size: int,
        page_param: str = "page",
        size_param: str | None = "per_page",
        start: int = 1,
        where: Literal["query", "body"] = "query",
        total_path: str | None = None,
        total_pages_path: str | None = None,
        stop_path: str | None = None,
    ) -> None:
        super().__init__(records_path, total_path=total_path, stop_path=stop_path)
        self.size = size
        self.page_param = page_param
        self.size_param = size_param
        self.start = start
        self.where = where
        self.total_pages_path = total_pages_path

    def pages(self, http, method, url, *, stream=None, params=None, json=None, on_total=None):  # type: ignore[no-untyped-def]
        """Pages from ``start``, the size sent with each (see :meth:`Paginator.pages`)."""
        params, json = _copy(params), _copy(json)
        if self.size_param:
            params, json = _put(self.where, self.size_param, self.size, params, json)
        params, json = _put(self.where, self.page_param, self.start, params, json)
        yield from super().pages(http, method, url, stream=stream, params=params, json=json, on_total=on_total)

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        """The next page number, or ``None`` after a short page or the declared last page."""
        page = self.start + (count // self.size if self.size else 0)  # pages read before this one
        if not records or len(records) < self.size:
            return None
        if self.total_pages_path is not None:
            last = get_path(body, self.total_pages_path)
            if last is not None and page - self.start + 1 >= int(last):
                return None
        return page + 1

    def next_request(self, token, url, params, json):  # type: ignore[no-untyped-def]
        """The same request with ``page_param`` set to ``token``."""
        return (url, *_put(self.where, self.page_param, token, params, json))
