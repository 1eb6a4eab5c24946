"""A base for fake APIs on 127.0.0.1: threaded, random port, seeded data, programmable faults.

Subclass :class:`FakeAPIServer`, mark handler methods with :func:`route`, and
build responses in the platform's real wire format::

    class FakeThing(FakeAPIServer):
        @route("GET", r"/v1/things")
        def list_things(self, request):
            return self.json({"data": [...], "has_more": False})

    with FakeThing(seed=1) as server:
        server.fail(status=429, headers={"Retry-After": "1"}, times=2)
        ...  # point the connector's base_url at server.url

Faults are consumed in the order they were added by the requests they
match: an HTTP status with the platform's error body, a connection reset
mid-body, a truncated or malformed JSON body, a delay (read timeout), an
expired access token, and — for endpoints a fake describes with
:class:`Paging` — a page that repeats the previous page's cursor, records
duplicated from the previous page, or an empty page with a next cursor.
:meth:`FakeAPIServer.inject` spreads a mix of them over a share of requests::

    server.inject(rate=0.10, kinds=FAULT_KINDS)   # 10% of requests fail, kinds at random

Live data: :meth:`FakeAPIServer.between_pages` runs a function after a page
of a :class:`Paging` endpoint has been served and before any later request
is answered, so a test can change the fake's data while a client pages —
modify records (which moves them in a result sorted by modification time),
add them, delete them::

    def churn(request):                       # the request of the page just served
        server.data.touch("contacts", 0.001)  # the fake's own mutation helpers

    hook = server.between_pages(churn, every=1, times=None, path=r"/search$")
    ...                                       # sync; then compare with the fake's truth
    assert hook.runs > 0 and hook.error is None

Precisely: a page is *served* when a request matching one of the fake's
:attr:`~FakeAPIServer.paging` declarations (and the hook's ``path``/``method``
regex, if given) is answered 200 with its body intact (not cut by a ``reset``,
``truncate`` or ``malformed`` fault). Every ``every``-th page served runs
``fn(request)`` — after that page's response was built from the data and
before it is sent, under :attr:`~FakeAPIServer.data_lock`, which every
request's handler also holds while it reads the data. So the page reflects
the data before ``fn`` and every request answered after it — the next page
of the same paging, or of any other — sees the change. The last page of a
paging counts too. ``times`` caps the runs (``None``: no cap). An exception
in ``fn`` is kept in :attr:`PageHook.error` and stops that hook; the page is
still sent. Change the data from another thread only while holding
``server.data_lock``.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import orjson

from kpihub.http.paginators import get_path

__all__ = ["FAULT_KINDS", "FakeAPIServer", "FakeRequest", "FakeResponse", "Fault", "PageHook", "Paging", "route"]

FaultKind = Literal[
    "status", "reset", "truncate", "malformed", "delay", "expire", "loop", "duplicate", "empty", "mixed"
]

#: Every kind :meth:`FakeAPIServer.inject` can mix, with what it sends.
FAULT_KINDS: dict[str, dict[str, Any]] = {
    "429": {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}},
    "429-no-retry-after": {"kind": "status", "status": 429},
    "500": {"kind": "status", "status": 500},
    "502": {"kind": "status", "status": 502},
    "503": {"kind": "status", "status": 503},
    "timeout": {"kind": "delay"},
    "reset": {"kind": "reset"},
    "truncate": {"kind": "truncate"},
    "malformed": {"kind": "malformed"},
    "expire": {"kind": "expire"},
    "loop": {"kind": "loop"},
    "duplicate": {"kind": "duplicate"},
    "empty": {"kind": "empty"},
}


@dataclass
class FakeRequest:
    """What the fake server received."""

    method: str
    path: str
    query: dict[str, str]
    query_lists: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route
    raw_query: str = ""  # as sent, still percent-encoded

    def json(self) -> Any:
        """The body parsed as JSON; ``None`` when there is no body."""
        return orjson.loads(self.body) if self.body else None

    def header(self, name: str, default: str | None = None) -> str | None:
        """The header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)


@dataclass
class FakeResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A programmed failure for the requests matching ``method`` and ``path`` (a regex).

    :param kind: ``status`` (HTTP ``status`` with ``body`` or the server's error body),
        ``reset`` (close the connection mid-body), ``truncate`` (send part of a real
        response), ``malformed`` (200 with a body that is not JSON), ``delay``
        (sleep ``delay`` seconds, then answer normally), ``expire`` (expire every
        access token issued so far: the request gets the platform's 401),
        ``loop`` (answer a paged request with the page that handed out its cursor,
        so the cursor repeats), ``duplicate`` (the previous page's last record
        again at the top of this page), ``empty`` (no records, and a next cursor
        that leads on to this same position); ``mixed`` picks one of ``kinds``.
        Page faults apply to the endpoints of the server's :attr:`~FakeAPIServer.paging`
        and are passed over where the protocol cannot express them (the first
        page has no previous page; an offset or record-derived cursor has no alias).
    :param times: how many matching requests it hits; ``after`` skips that many first.
    :param rate: instead of ``times``, hit each matching request with this probability.
    """

    kind: FaultKind = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None
    times: int = 1
    after: int = 0
    rate: float | None = None
    delay: float = 0.0
    kinds: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""
    hits: int = 0
    seen: int = 0
    #: What each hit did (``FAULT_KINDS`` names, or the kind), for reports and tests.
    applied: dict[str, int] = field(default_factory=dict)

    def matches(self, request: FakeRequest) -> bool:
        """The request is one this fault applies to: its ``method`` (if set) and its ``path`` regex."""
        if self.method and self.method.upper() != request.method:
            return False
        return not self.path or re.search(self.path, request.path) is not None


@dataclass(frozen=True)
class Paging:
    """How a fake's list endpoints page, so the server can inject page faults.

    :param path: regex of the paged endpoints' paths (requests of ``method``).
    :param records: dotted path of the records array in a response body.
    :param param: the request's cursor parameter; ``where`` it goes (query or JSON body).
    :param next: dotted path of the next cursor in a response (HubSpot ``paging.next.after``).
    :param next_link: dotted path of a next-page URL carrying ``param`` in its query (Meta).
    :param last_record: the cursor is this field of the page's last record while
        ``more`` (a dotted path to a boolean) is true (Stripe's ``starting_after``).
    :param offset: ``param`` is a record offset (GA4): the next position is offset + records.
    :param opaque: the API promises nothing about the cursor's text, so the fake may hand out
        another cursor for the same position (``False``: HubSpot search's numeric ``after``).
    """

    path: str
    records: str
    param: str
    method: str = "GET"
    where: Literal["query", "body"] = "query"
    next: str | None = None
    next_link: str | None = None
    last_record: str | None = None
    more: str | None = None
    offset: bool = False
    opaque: bool = True

    def cursor_in(self, request: FakeRequest) -> str | None:
        """The cursor ``request`` carries (``None``: the first page)."""
        if self.where == "query":
            return request.query.get(self.param) or None
        body = request.json()
        value = body.get(self.param) if isinstance(body, dict) else None
        return None if value in (None, "", 0) else str(value)

    def with_cursor(self, request: FakeRequest, cursor: str | None) -> FakeRequest:
        """``request`` as if it had carried ``cursor`` (``None``: the first page)."""
        if self.where == "query":
            lists = {k: v for k, v in request.query_lists.items() if k != self.param}
            if cursor is not None:
                lists[self.param] = [cursor]
            raw = urllib.parse.urlencode(lists, doseq=True)
            return replace(request, query={k: v[-1] for k, v in lists.items()}, query_lists=lists, raw_query=raw)
        body = dict(request.json() or {})
        body.pop(self.param, None)
        if cursor is not None:
            body[self.param] = cursor
        return replace(request, body=orjson.dumps(body))

    def cursor_out(self, request: FakeRequest, body: Any) -> str | None:
        """The cursor a response hands out for the next page."""
        records = get_path(body, self.records) or []
        if self.offset:
            start = int(self.cursor_in(request) or 0)
            return str(start + len(records)) if records else None
        if self.next is not None:
            value = get_path(body, self.next)
            return str(value) if value not in (None, "") else None
        if self.next_link is not None:
            link = get_path(body, self.next_link)
            if not link:
                return None
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
            return query.get(self.param, [None])[-1]
        if self.last_record is not None and records and (self.more is None or get_path(body, self.more)):
            return str(records[-1].get(self.last_record))
        return None

    def can_alias(self) -> bool:
        """The fake may hand out another cursor for the same position (``empty`` faults need it)."""
        return self.opaque and not self.offset and (self.next is not None or self.next_link is not None)

    def set_cursor_out(self, body: dict[str, Any], cursor: str, request: FakeRequest, base_url: str) -> None:
        """Write ``cursor`` into a response ``body`` as the next page's, at ``next`` or in the ``next_link`` URL."""
        if self.next is not None:
            _put(body, self.next, cursor)
        elif self.next_link is not None:  # this same request, with the new cursor
            query = [(k, v) for k, vs in request.query_lists.items() if k != self.param for v in vs]
            query.append((self.param, cursor))
            _put(body, self.next_link, f"{base_url}{request.path}?{urllib.parse.urlencode(query)}")


@dataclass
class PageHook:
    """A function the server runs between pages (see :meth:`FakeAPIServer.between_pages`).

    :param fn: called with the :class:`FakeRequest` of the page just served.
    :param every: run after every ``every``-th matching page served.
    :param times: run at most this many times (``None``: no cap).
    :param path: only pages whose path matches this regex (``re.search``) count.
    :param method: only pages requested with this method count.
    """

    fn: Callable[[FakeRequest], Any]
    every: int = 1
    times: int | None = None
    path: str | None = None
    method: str | None = None
    #: Matching pages served while the hook was active.
    pages: int = 0
    #: How many times ``fn`` ran.
    runs: int = 0
    #: What ``fn`` raised, if it did (the hook then stops).
    error: BaseException | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be at least 1")

    @property
    def active(self) -> bool:
        """The hook still runs: ``fn`` has not raised and ``times`` is not used up."""
        return self.error is None and (self.times is None or self.runs < self.times)

    def matches(self, request: FakeRequest) -> bool:
        """The page's request counts for this hook: its ``method`` (if set) and its ``path`` regex."""
        if self.method and self.method.upper() != request.method:
            return False
        return not self.path or re.search(self.path, request.path) is not None

    def page_served(self, request: FakeRequest) -> None:
        """Count a page served; run ``fn`` when it is due (the caller holds the data lock)."""
        if not self.active or not self.matches(request):
            return
        self.pages += 1
        if self.pages % self.every:
            return
        self.runs += 1
        try:
            self.fn(request)
        except Exception as exc:  # kept for the test to see; the page in hand is still sent
            self.error = exc


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def route(method: str, pattern: str) -> Callable[[Callable[..., FakeResponse]], Callable[..., FakeResponse]]:
    """Mark a method as the handler of ``method`` requests whose path fully matches ``pattern``."""

    def mark(fn: Callable[..., FakeResponse]) -> Callable[..., FakeResponse]:
        fn.__dict__.setdefault("_routes", []).append((method.upper(), re.compile(pattern)))
        return fn

    return mark


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, each keep-alive
    # response then waits ~40 ms for the client's delayed ACK (44 ms vs 2.8 ms per request).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _handle(self) -> None:
        self.server.app._dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: FakeAPIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-request (killed by a crash test, or gave up) is not a server bug.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


_PAGE_KINDS = frozenset({"loop", "duplicate", "empty"})
_BODY_BREAKING = frozenset({"reset", "truncate", "malformed"})  # the client gets no page
_PAGES_KEPT = 256


class FakeAPIServer:
    """Base fake API server. Subclasses add routes and seeded data.

    A subclass whose list endpoints page sets :attr:`paging`; one that issues
    access tokens overrides :meth:`expire_tokens`.
    """

    #: The paged endpoints (for page faults); empty when the API does not page.
    paging: tuple[Paging, ...] = ()

    def __init__(self, *, seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("fake servers listen on loopback only")
        self.seed = seed
        self.rng = random.Random(seed)
        self.host = host
        self.port = port
        self.faults: list[Fault] = []
        self.requests: list[FakeRequest] = []
        self.record_requests = True
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed + 1)
        # Page faults: the last pages served, by (request without cursor, cursor they hand out),
        # and the cursors "empty" faults invented, with the position each stands for.
        self._pages: OrderedDict[tuple[Any, ...], FakeResponse] = OrderedDict()
        self._aliases: dict[str, str | None] = {}
        self._keep_pages = False
        #: Held by every request's handler while it reads the data, and by page hooks while they change it.
        self.data_lock = threading.RLock()
        self.page_hooks: list[PageHook] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes = [
            (method, pattern, getattr(self, name))
            for name in dir(type(self))
            for method, pattern in getattr(getattr(type(self), name), "_routes", [])
        ]

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server (a random free port unless one was given).

        :raises RuntimeError: the server is not started.
        """
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeAPIServer:
        """Serve on a daemon thread and return ``self``; ``with server:`` starts and stops it."""
        httpd = _Server((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (a stopped server can be started again)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the foreground (``python -m`` entry points of fakes)."""
        self.start()
        print(self.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    # -- faults ------------------------------------------------------------------

    def fail(self, **kwargs: Any) -> Fault:
        """Program a :class:`Fault` (keyword arguments as its fields) and return it."""
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
            self._keep_pages = self._keep_pages or any(
                f.kind in _PAGE_KINDS or any(k.get("kind") in _PAGE_KINDS for k in f.kinds) for f in self.faults
            )
        return fault

    def inject(
        self,
        rate: float,
        kinds: Iterable[str] | Mapping[str, Mapping[str, Any]] = tuple(FAULT_KINDS),
        *,
        path: str | None = None,
        method: str | None = None,
        delay: float = 2.0,
    ) -> Fault:
        """Fail a share ``rate`` of the matching requests, each with a kind drawn from ``kinds``.

        ``kinds`` are names of :data:`FAULT_KINDS` (or a mapping name → fault fields);
        a request gets only the kinds that apply to it (page faults on paged
        endpoints, ``expire`` where the fake issues tokens). ``delay`` is how long
        a ``timeout`` holds the response: set the client's timeout below it.
        """
        table = kinds if isinstance(kinds, Mapping) else {name: FAULT_KINDS[name] for name in kinds}
        specs = [{"name": name, **spec} for name, spec in table.items()]
        return self.fail(kind="mixed", kinds=specs, rate=rate, path=path, method=method, delay=delay)

    def clear_faults(self) -> None:
        """Remove every programmed :class:`Fault`; requests are answered normally again."""
        with self._lock:
            self.faults.clear()
            self._keep_pages = False

    def fault_counts(self) -> dict[str, int]:
        """How many requests each kind of fault hit so far, over all programmed faults."""
        counts: dict[str, int] = {}
        with self._lock:
            for fault in self.faults:
                for name, n in fault.applied.items():
                    counts[name] = counts.get(name, 0) + n
        return counts

    def expire_tokens(self) -> bool:
        """Expire every access token issued so far; ``False`` when the fake issues none."""
        return False

    def _take_fault(self, request: FakeRequest, paging: Paging | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if not fault.matches(request):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.rate is not None:
                    hit = self._fault_rng.random() < fault.rate
                else:
                    hit = fault.hits < fault.times
                if not hit:
                    continue
                chosen = self._resolve(fault, request, paging)
                if chosen is None:
                    continue
                fault.hits += 1
                fault.applied[chosen.name] = fault.applied.get(chosen.name, 0) + 1
                return chosen
        return None

    def _resolve(self, fault: Fault, request: FakeRequest, paging: Paging | None) -> Fault | None:
        """The concrete fault for this request (one of a mix), or ``None`` when none applies."""
        if fault.kind != "mixed":
            if not self._applies(fault.kind, request, paging):
                return None
            return replace(fault, name=fault.name or (str(fault.status) if fault.kind == "status" else fault.kind))
        options = [k for k in fault.kinds if self._applies(k.get("kind", "status"), request, paging)]
        if not options:
            return None
        spec = dict(self._fault_rng.choice(options))
        name = spec.pop("name", spec.get("kind", "status"))
        spec.setdefault("delay", fault.delay)
        return Fault(**spec, name=name)

    def _applies(self, kind: str, request: FakeRequest, paging: Paging | None) -> bool:
        if kind == "expire":
            return type(self).expire_tokens is not FakeAPIServer.expire_tokens
        if kind not in _PAGE_KINDS:
            return True
        if paging is None:
            return False
        if kind == "empty":
            return paging.offset or paging.can_alias()
        previous = self._pages.get(self._page_key(paging, request, paging.cursor_in(request)))
        return previous is not None and (kind == "loop" or not paging.offset)

    def _paging_for(self, request: FakeRequest) -> Paging | None:
        for paging in self.paging:
            if paging.method == request.method and re.fullmatch(paging.path, request.path):
                return paging
        return None

    @staticmethod
    def _page_key(paging: Paging, request: FakeRequest, cursor: str | None) -> tuple[Any, ...]:
        first = paging.with_cursor(request, None)
        return (request.method, request.path, tuple(sorted(first.query.items())), first.body, cursor)

    # -- live data ---------------------------------------------------------------

    def between_pages(
        self,
        fn: Callable[[FakeRequest], Any],
        *,
        every: int = 1,
        times: int | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> PageHook:
        """Run ``fn(request)`` after every ``every``-th page served, before the next request is answered.

        See "Live data" in the module docstring for exactly when it runs. Returns the
        :class:`PageHook` (``runs``, ``pages``, ``error``); :meth:`clear_page_hooks` removes all.
        """
        hook = PageHook(fn, every=every, times=times, path=path, method=method)
        with self.data_lock:
            self.page_hooks.append(hook)
        return hook

    def clear_page_hooks(self) -> None:
        """Remove every :class:`PageHook` set by :meth:`between_pages`."""
        with self.data_lock:
            self.page_hooks.clear()

    def _page_served(self, request: FakeRequest) -> None:
        for hook in list(self.page_hooks):
            hook.page_served(request)

    # -- responses ---------------------------------------------------------------

    @staticmethod
    def json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:
        """A JSON :class:`FakeResponse` of ``data`` (orjson), with ``status`` and extra ``headers``."""
        return FakeResponse(status, orjson.dumps(data), {"Content-Type": "application/json", **(headers or {})})

    def error_body(self, status: int, message: str) -> Any:
        """The platform's error body for ``status``; subclasses return the real shape."""
        return {"error": {"code": status, "message": message}}

    def error_headers(self, status: int) -> dict[str, str]:
        """Headers the platform sends with an error of ``status`` (rate-limit headers on 429 …)."""
        return {}

    def not_found(self, request: FakeRequest) -> FakeResponse:
        """The 404 answer to a request no route matches, in the fake's :meth:`error_body`."""
        return self.json(self.error_body(404, f"no route for {request.method} {request.path}"), 404)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        """Return an error response for a request with bad credentials (default: accept all)."""
        return None

    # -- dispatch ----------------------------------------------------------------

    def _dispatch(self, handler: _Handler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query_lists = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = FakeRequest(
            method=handler.command,
            path=parsed.path,
            query={k: v[-1] for k, v in query_lists.items()},
            query_lists=query_lists,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            raw_query=parsed.query,
        )
        paging = self._paging_for(request)
        if paging is not None and self._aliases:
            cursor = paging.cursor_in(request)
            if cursor in self._aliases:  # a cursor an "empty" fault made up: the position it stands for
                request = paging.with_cursor(request, self._aliases[cursor])
        if self.record_requests:
            with self._lock:
                self.requests.append(request)
        fault = self._take_fault(request, paging)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind == "expire":
            self.expire_tokens()
            fault = None
        with self.data_lock:  # the data stays still while this request reads it, and a page hook runs after it
            if fault is not None and fault.kind == "status":
                body_obj = fault.body if fault.body is not None else self.error_body(fault.status, "injected fault")
                response = self.json(body_obj, fault.status, {**self.error_headers(fault.status), **fault.headers})
            elif fault is not None and fault.kind == "loop" and paging is not None:
                response = self._pages[self._page_key(paging, request, paging.cursor_in(request))]
            else:
                response = self.authorize(request) or self._route(request)
            if paging is not None and response.status == 200:
                response = self._serve_page(paging, request, response, fault)
                if self.page_hooks and (fault is None or fault.kind not in _BODY_BREAKING):
                    self._page_served(request)
        if fault is not None and fault.kind == "malformed":
            response = FakeResponse(
                200, b'{"results": [{"id": "1", "properties": {', {"Content-Type": "application/json"}
            )
        self._write(handler, response, fault)

    def _serve_page(
        self, paging: Paging, request: FakeRequest, response: FakeResponse, fault: Fault | None
    ) -> FakeResponse:
        """Keep the page for later page faults; apply this request's page fault."""
        kind = fault.kind if fault is not None else None
        if not self._keep_pages or kind == "loop":
            return response
        body = orjson.loads(response.body)
        records = get_path(body, paging.records) or []
        cursor = paging.cursor_in(request)
        if kind == "duplicate":
            previous = orjson.loads(self._pages[self._page_key(paging, request, cursor)].body)
            records = [*(get_path(previous, paging.records) or [])[-1:], *records]
            _put(body, paging.records, records)
        elif kind == "empty":
            if paging.offset:
                body.pop(paging.records.split(".")[0], None)  # Google omits an empty array
            else:
                _put(body, paging.records, [])
                alias = f"kpihub-fault-{len(self._aliases) + 1}"
                with self._lock:
                    self._aliases[alias] = cursor
                paging.set_cursor_out(body, alias, request, self.url)
            return replace(response, body=orjson.dumps(body))
        handed_out = paging.cursor_out(request, body)
        if handed_out is not None:
            with self._lock:
                self._pages[self._page_key(paging, request, handed_out)] = response
                while len(self._pages) > _PAGES_KEPT:
                    self._pages.popitem(last=False)
        return replace(response, body=orjson.dumps(body)) if kind == "duplicate" else response

    def _route(self, request: FakeRequest) -> FakeResponse:
        for method, pattern, fn in self._routes:
            if method != request.method:
                continue
            m = pattern.fullmatch(request.path)
            if m:
                request.params = m.groupdict()
                try:
                    return fn(request)
                except Exception as exc:  # a bug in the fake: answer 500, keep serving
                    return self.json(self.error_body(500, f"fake server error: {type(exc).__name__}: {exc}"), 500)
        return self.not_found(request)

    def _write(self, handler: _Handler, response: FakeResponse, fault: Fault | None) -> None:
        body = response.body
        try:
            handler.send_response(response.status)
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if fault is not None and fault.kind in ("reset", "truncate"):
                handler.wfile.write(body[: max(1, len(body) // 2)])
                handler.wfile.flush()
                if fault.kind == "reset":  # RST instead of FIN: "connection reset by peer"
                    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
