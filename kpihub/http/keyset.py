"""Keyset paging: every page is a fresh query that restarts after the last sort key read.

For APIs whose page cursor is an offset into a live, sorted result (HubSpot's CRM
search ``after``): when a record changes while a client pages, it moves in the sort
order, the records behind it shift and an offset reader skips one record per move.
A query that starts at the last key read cannot skip anything that sorts after it.

The API sorts by one key that may tie (HubSpot allows one sorting rule per search and
documents no order among ties), and records carry a unique, ordered id. A page ending
at key ``k`` proves that every record with a key below ``k`` was read; the next query
starts *at* ``k`` and drops the records already read there. When a whole page sits on
one key (more ties than fit in a page), that key is read on its own in id order
(``KeysetBound(key, tie=True, after_id=...)``), then paging moves past it.

Any connector whose API pages by offsets into a live sorted result should page this way
(the HubSpot source does; issue 13 lost 149 of 30,000 contacts to offset paging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kpihub.errors import MalformedResponseError, PaginationError
from kpihub.http.paginators import get_path
from kpihub.http.requester import Requester

__all__ = ["KeysetBound", "KeysetPaginator"]

log = logging.getLogger("kpihub.http")


@dataclass(frozen=True)
class KeysetBound:
    """Where a keyset query starts.

    ``tie=False``: the records whose sort key is ``>= key`` (``inclusive``) or ``> key``, sorted by
    key; ``key=None`` is the start. ``tie=True``: the records whose sort key *equals* ``key`` and whose
    id is ``> after_id`` (``None``: from the first), sorted by id.
    """

    key: Any = None
    inclusive: bool = True
    tie: bool = False
    after_id: Any = None


#: Builds one query: ``bound`` -> ``(params, json)`` of the request (first page of that query).
QueryBuilder = Callable[[KeysetBound], tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]


class KeysetPaginator:
    """Yield ``(body, records)`` per page, each page a query restarted from the last key read.

    :param records_path: dotted path of the records in a response body.
    :param more_path: dotted path that is present (non-empty) when the query has more results
        than this page (HubSpot ``paging.next.after``); the paginator never follows it.
    :param key: the sort key of a record (comparable; equal keys tie).
    :param record_id: the unique id of a record (comparable: tie queries page in id order).
    :param query: builds the request for a :class:`KeysetBound`.
    :param total_path: dotted path of the API's declared total; the first query's is reported.

    Records read twice — at a boundary key, or modified after they were read and met again
    later in the sort — are dropped at the boundary only; later re-reads are yielded again
    (merge on the primary key keeps the newest).
    """

    #: How often a page that brings nothing new (an empty page that says there is more) is asked again.
    repeat_attempts: int = 3

    def __init__(
        self,
        records_path: str,
        *,
        more_path: str,
        key: Callable[[Any], Any],
        record_id: Callable[[Any], Any],
        query: QueryBuilder,
        total_path: str | None = None,
    ) -> None:
        self.records_path = records_path
        self.more_path = more_path
        self.key = key
        self.record_id = record_id
        self.query = query
        self.total_path = total_path

    def pages(
        self,
        http: Requester,
        method: str,
        url: str,
        *,
        start: KeysetBound = KeysetBound(),
        stream: str | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        """Yield ``(body, records)`` per page from ``start`` until a query says there is no more.

        Each query restarts from the last key read (``query(bound)`` builds it). Ties on one key
        are read in id order; records met again at a boundary are dropped.

        :param on_total: receives the first query's declared total (``total_path``).
        :raises PaginationError: a page falls outside its query's bound, or empty pages keep saying there is more.
        """
        bound, seen = start, set()  # ids read at bound.key (the boundary a GTE query reads again)
        first = True
        while True:
            body, records, more = self._fetch(http, method, url, bound, stream)
            if first and self.total_path is not None and on_total is not None:
                total = get_path(body, self.total_path)
                if total is not None:
                    on_total(int(total))
            first = False
            self._check(records, bound, http.source_id, stream, url)
            fresh = [r for r in records if not (self.key(r) == bound.key and self.record_id(r) in seen)]
            if fresh:
                yield body, fresh
            if not more:
                if not bound.tie:
                    return
                bound, seen = KeysetBound(bound.key, inclusive=False), set()  # past the tied key
                continue
            last = records[-1]
            if bound.tie:
                seen.update(self.record_id(r) for r in records)
                bound = KeysetBound(bound.key, tie=True, after_id=self.record_id(last))
            elif self.key(last) != bound.key:
                # Every record keyed below the last one is read; its ties may go on past this page.
                seen = {self.record_id(r) for r in records if self.key(r) == self.key(last)}
                bound = KeysetBound(self.key(last))
            else:
                # A whole page on one key: read that key on its own, in id order.
                seen.update(self.record_id(r) for r in records)
                bound = KeysetBound(bound.key, tie=True)

    def _check(self, records: list[Any], bound: KeysetBound, source: str, stream: str | None, url: str) -> None:
        """A page outside its query's bound would page forever: stop instead."""
        if not records or (bound.key is None and not bound.tie):
            return
        if bound.tie:
            bad = any(
                self.key(r) != bound.key or (bound.after_id is not None and self.record_id(r) <= bound.after_id)
                for r in records
            )
        else:
            low = self.key(records[0])
            bad = low < bound.key or (not bound.inclusive and low == bound.key)
        if bad:
            raise PaginationError(
                f"{source}/{stream}: {url}: the API returned records outside the keyset filter {bound}; "
                "stopping instead of paging in circles",
                source=source,
                stream=stream,
            )

    def _fetch(
        self, http: Requester, method: str, url: str, bound: KeysetBound, stream: str | None
    ) -> tuple[Any, list[Any], bool]:
        """One page of ``bound``'s query; an empty page that says there is more is asked again."""
        params, json = self.query(bound)
        for attempt in range(self.repeat_attempts + 1):
            body = http.json(method, url, stream=stream, params=params, json=json)
            records = get_path(body, self.records_path) if isinstance(body, Mapping) else None
            if records is None and isinstance(body, Mapping):
                records = []  # APIs omit empty arrays
            if not isinstance(records, list):
                raise MalformedResponseError(
                    f"{http.source_id}/{stream}: {url}: expected a list at {self.records_path!r}, "
                    f"got {type(records).__name__}",
                    source=http.source_id,
                    stream=stream,
                )
            more = get_path(body, self.more_path) not in (None, "")
            if records or not more:
                return body, records, more
            log.warning("%s/%s: %s: an empty page that says there is more; asking again", http.source_id, stream, url)
        raise PaginationError(
            f"{http.source_id}/{stream}: {url}: the API returned an empty page with more to come "
            f"{self.repeat_attempts + 1} times; stopping instead of returning partial data",
            source=http.source_id,
            stream=stream,
        )
