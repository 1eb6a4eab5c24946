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
mid-body, a truncated or malformed JSON body, or a delay (read timeout).
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import orjson

__all__ = ["Fault", "FakeAPIServer", "FakeRequest", "FakeResponse", "route"]

FaultKind = Literal["status", "reset", "truncate", "malformed", "delay"]


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
        return orjson.loads(self.body) if self.body else None

    def header(self, name: str, default: str | None = None) -> str | None:
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
        (sleep ``delay`` seconds, then answer normally).
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
    hits: int = 0
    seen: int = 0

    def matches(self, request: FakeRequest) -> bool:
        if self.method and self.method.upper() != request.method:
            return False
        return not self.path or re.search(self.path, request.path) is not None


def route(method: str, pattern: str) -> Callable[[Callable[..., FakeResponse]], Callable[..., FakeResponse]]:
    """Mark a method as the handler of ``method`` requests whose path fully matches ``pattern``."""

    def mark(fn: Callable[..., FakeResponse]) -> Callable[..., FakeResponse]:
        fn.__dict__.setdefault("_routes", []).append((method.upper(), re.compile(pattern)))
        return fn

    return mark


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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


class FakeAPIServer:
    """Base fake API server. Subclasses add routes and seeded data."""

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
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeAPIServer:
        httpd = _Server((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, request: FakeRequest) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if not fault.matches(request):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.rate is not None:
                    if self._fault_rng.random() < fault.rate:
                        fault.hits += 1
                        return fault
                    continue
                if fault.hits < fault.times:
                    fault.hits += 1
                    return fault
        return None

    # -- responses ---------------------------------------------------------------

    @staticmethod
    def json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:
        return FakeResponse(status, orjson.dumps(data), {"Content-Type": "application/json", **(headers or {})})

    def error_body(self, status: int, message: str) -> Any:
        """The platform's error body for ``status``; subclasses return the real shape."""
        return {"error": {"code": status, "message": message}}

    def error_headers(self, status: int) -> dict[str, str]:
        """Headers the platform sends with an error of ``status`` (rate-limit headers on 429 …)."""
        return {}

    def not_found(self, request: FakeRequest) -> FakeResponse:
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
        if self.record_requests:
            with self._lock:
                self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind == "status":
            body_obj = fault.body if fault.body is not None else self.error_body(fault.status, "injected fault")
            response = self.json(body_obj, fault.status, {**self.error_headers(fault.status), **fault.headers})
        else:
            response = self.authorize(request) or self._route(request)
        if fault is not None and fault.kind == "malformed":
            response = FakeResponse(
                200, b'{"results": [{"id": "1", "properties": {', {"Content-Type": "application/json"}
            )
        self._write(handler, response, fault)

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
