"""Requests with retries (tenacity), a rate budget and errors that name where they came from."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from kpihub.errors import HTTPError, MalformedResponseError, QuotaExhaustedError
from kpihub.http.auth import TokenEndpointUnavailable
from kpihub.http.body import RecordsMismatch, loads
from kpihub.http.client import make_client
from kpihub.http.quota import Quota, QuotaWait, RequestBudget
from kpihub.http.ratelimit import RateLimiter
from kpihub.secrets import redact

__all__ = ["Requester", "RetryDecision", "parse_retry_after"]

log = logging.getLogger("kpihub.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Classifier reasons that mean "the rate budget is spent" (like a 429), not "the server failed".
RATE_REASONS = frozenset({"throttled", "quota", "rate"})


@dataclass(frozen=True)
class RetryDecision:
    """What a source's classifier says of a response: retry it (after ``delay`` s) or not.

    ``quota`` says the response is a quota that will not come back within the run (a daily
    cap): the stream stops cleanly (status ``quota``) instead of retrying or failing.
    """

    retry: bool
    delay: float | None = None
    reason: str = ""
    quota: Quota | None = None


class _Retryable(Exception):
    """Internal: a response or failure that may succeed if tried again."""

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        response: httpx.Response | None = None,
        malformed: bool = False,
    ):
        super().__init__(message)
        self.delay = delay
        self.response = response
        self.malformed = malformed


class _WaitRetryAfter(wait_base):
    """Honour the server's delay when it gives one, else exponential backoff with full jitter."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self.initial = initial
        self.maximum = maximum
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Retryable) and exc.delay is not None:
            return exc.delay
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_excerpt(response: httpx.Response, limit: int = 300) -> str:
    """The API's own message when the body is JSON with one, else the start of the body."""
    text = response.text
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            text = err["message"]
        elif isinstance(err, str):
            text = err
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


class Requester:
    """One source's HTTP: shared client, rate budget and retry policy.

    :param source_id: used in error messages and logs.
    :param classify: optional ``response -> RetryDecision | None`` for platforms
        that signal throttling in the body (Meta's code 17, Google's retryDelay).
        ``None`` falls back to the status code rules.
    """

    def __init__(
        self,
        *,
        source_id: str,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        max_retry_after: float = 300.0,
        requests_per_second: float | None = None,
        classify: Callable[[httpx.Response], RetryDecision | None] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self.source_id = source_id
        self.client = make_client(base_url, timeout=timeout, auth=auth, headers=headers, transport=transport)
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.classify = classify
        self.limiter = RateLimiter(requests_per_second, sleep=sleep) if requests_per_second else None
        #: The source's shared rate budget (its platform's windows and usage headers), if it has one.
        self.budget = budget
        self._sleep = sleep
        self._wait = _WaitRetryAfter(backoff_initial, backoff_max, random.Random(seed))
        self._lock = threading.Lock()
        #: Counters for the sync summary and tests.
        self.requests = 0
        self.retries = 0

    @classmethod
    def from_settings(cls, source_id: str, settings: Any, **kwargs: Any) -> Requester:
        """A requester configured from a :class:`~kpihub.config.SourceSettings`."""
        return cls(
            source_id=source_id,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            max_retry_after=settings.max_retry_after,
            requests_per_second=settings.requests_per_second,
            **kwargs,
        )

    def wait(self, seconds: float) -> None:
        """Sleep between polls of an asynchronous job (tests inject a recording sleep)."""
        self._sleep(seconds)

    def close(self) -> None:
        """Close the HTTP client and its connections (also on leaving ``with``)."""
        self.client.close()

    def __enter__(self) -> Requester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying what may succeed later; return a 2xx response."""
        response, _ = self._send(method, url, stream=stream, params=params, json=json, headers=headers, parse=None)
        return response

    def json(
        self,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """Like :meth:`request`, and parse the body with orjson (a truncated body is retried).

        ``decode`` parses it instead (e.g. :class:`~kpihub.http.ArrowRecords`); an
        ``orjson.JSONDecodeError`` it raises is a truncated body (retried), a
        :class:`~kpihub.http.RecordsMismatch` records of another type than declared
        (:class:`~kpihub.errors.MalformedResponseError`, not retried).
        """
        return self.json_and_headers(
            method, url, stream=stream, params=params, json=json, headers=headers, decode=decode
        )[1]

    def json_and_headers(
        self,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> tuple[httpx.Headers, Any]:
        """Like :meth:`json`, with the response's headers: for APIs that page in a ``Link`` header."""
        response, data = self._send(
            method, url, stream=stream, params=params, json=json, headers=headers, parse=decode or loads
        )
        return response.headers, data

    def _send(
        self,
        method: str,
        url: str,
        *,
        stream: str | None,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        parse: Callable[[bytes], Any] | None,
    ) -> tuple[httpx.Response, Any]:
        where = f"{self.source_id}/{stream}" if stream else self.source_id
        last: dict[str, Any] = {}
        content = orjson.dumps(json) if json is not None else None
        req_headers = dict(headers or {})
        if content is not None:
            req_headers.setdefault("Content-Type", "application/json")

        def attempt() -> tuple[httpx.Response, Any]:
            if self.limiter is not None:
                self.limiter.acquire()
            ticket = None
            if self.budget is not None:
                try:
                    ticket = self.budget.acquire(method, url)
                except QuotaWait as exc:
                    last["why"] = f"quota: {exc.quota.reason}"
                    raise _Quota(exc.quota, last["why"]) from None
            with self._lock:
                self.requests += 1
            response = None
            try:
                response = self.client.request(method, url, params=params, content=content, headers=req_headers)
            except httpx.TransportError as exc:
                last["url"] = str(exc.request.url) if _has_request(exc) else url
                last["why"] = f"{type(exc).__name__}: {exc}"
                raise _Retryable(last["why"]) from exc
            except TokenEndpointUnavailable as exc:  # the auth flow's token request, inside this one
                last["why"] = str(exc)
                raise _Retryable(last["why"]) from exc
            finally:
                if ticket is not None and self.budget is not None:
                    self.budget.release(ticket, response)
            _unbind_stream(response)
            last["url"] = str(response.request.url)
            last["response"] = response
            if response.is_success:
                if parse is None:
                    return response, None
                try:
                    return response, parse(response.content)
                except orjson.JSONDecodeError as exc:
                    last["why"] = f"malformed JSON body ({exc}; {len(response.content)} bytes)"
                    raise _Retryable(last["why"], response=response, malformed=True) from exc
                except RecordsMismatch as exc:
                    raise MalformedResponseError(
                        redact(f"{where}: {method} {last['url']}: {exc}"), source=self.source_id, stream=stream
                    ) from None
            decision = self.classify(response) if self.classify else None
            if decision is None:
                decision = RetryDecision(response.status_code in RETRY_STATUSES)
            if decision.retry and decision.delay is None:
                # A classifier that found no platform-specific wait still honours Retry-After.
                decision = RetryDecision(True, parse_retry_after(response.headers.get("Retry-After")), decision.reason)
            last["why"] = f"HTTP {response.status_code}: {_error_excerpt(response)}"
            if decision.quota is not None:
                raise _Quota(decision.quota, last["why"])
            rate_limited = decision.retry and (response.status_code == 429 or decision.reason in RATE_REASONS)
            if not decision.retry:
                raise _Fatal(last["why"])
            if decision.delay is not None and decision.delay > self.max_retry_after:
                last["why"] += f" (server asks to wait {decision.delay:.0f}s, more than max_retry_after)"
                if rate_limited:  # the budget will not come back within the run: stop cleanly
                    resets_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=decision.delay)
                    raise _Quota(Quota(decision.reason or "rate limited", resets_at=resets_at), last["why"])
                raise _Fatal(last["why"])
            delay = decision.delay
            if rate_limited and self.budget is not None and self.budget.rate_limited(method, url, delay):
                # Every stream of the source now waits in the budget until the window has room
                # (no retry inside the window that refused us); this one sleeps the server's delay.
                delay = 0.0 if delay is None else delay
            raise _Retryable(last["why"], delay=delay, response=response)

        def before_sleep(state: RetryCallState) -> None:
            with self._lock:
                self.retries += 1
            wait = state.next_action.sleep if state.next_action else 0.0
            # A transport error after an HTTP error leaves the older response in ``last``: only an HTTP
            # reason (this attempt's) has a status code.
            response = last.get("response") if str(last.get("why", "")).startswith("HTTP ") else None
            # The CLI's JSON log reads these fields (kpihub/cli/events.py).
            event = {
                "event": "retry",
                "source": self.source_id,
                "stream": stream,
                "attempt": state.attempt_number,
                "max_retries": self.max_attempts - 1,
                "wait": round(wait, 3),
                "status_code": response.status_code if isinstance(response, httpx.Response) else None,
                "reason": redact(last.get("why", "")),
            }
            log.info(
                "%s: %s %s: %s; retry %d/%d in %.1fs",
                where,
                method,
                redact(last.get("url", url)),
                redact(last.get("why", "")),
                state.attempt_number,
                self.max_attempts - 1,
                wait,
                extra={"kpihub_event": event},
            )

        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.max_attempts),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Quota as exc:
            response = last.get("response")
            status = response.status_code if isinstance(response, httpx.Response) else None
            when = exc.quota.when()
            n = int(retrying.statistics.get("attempt_number", 1))
            tried = "1 attempt" if n == 1 else f"{n} attempts"
            why = str(exc) if exc.quota.reason in str(exc) else f"{exc.quota.reason}: {exc}"  # what ran out, first
            message = redact(f"{where}: {method} {last.get('url', url)} stopped after {tried}: {why} (quota {when})")
            raise QuotaExhaustedError(
                message,
                source=self.source_id,
                stream=stream,
                url=redact(last.get("url", url)),
                status_code=status,
                resets_at=exc.quota.resets_at,
                resets=when,
            ) from None
        except (_Retryable, _Fatal) as exc:
            response = last.get("response")
            status = response.status_code if isinstance(response, httpx.Response) else None
            attempts = "1 attempt" if isinstance(exc, _Fatal) else f"{self.max_attempts} attempts"
            message = redact(f"{where}: {method} {last.get('url', url)} failed after {attempts}: {exc}")
            if not (isinstance(exc, _Retryable) and exc.malformed):
                raise HTTPError(
                    message, source=self.source_id, stream=stream, url=redact(last.get("url", url)), status_code=status
                ) from None
            raise MalformedResponseError(message, source=self.source_id, stream=stream) from None
        finally:
            last.clear()  # tenacity's Retrying is in a reference cycle with the callbacks that see it


def _unbind_stream(response: httpx.Response) -> None:
    """Free a read response when its last reference goes, not when the cyclic GC next runs.

    httpx binds the response's stream to the response (a reference cycle), so its body waited for
    the GC; a sync of large pages parsed by Arrow allocates few Python objects, the GC seldom ran,
    and 2 MB GA4 bodies piled up (24 MB still held after a 20-page sync). The body is read
    (requests are not streamed), so the stream is only what it was read from.
    """
    response.stream = httpx.ByteStream(response.content)


class _Fatal(Exception):
    """Internal: a response that will not succeed if tried again."""


class _Quota(Exception):
    """Internal: a quota that will not come back within the run."""

    def __init__(self, quota: Quota, message: str) -> None:
        super().__init__(message)
        self.quota = quota


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True
