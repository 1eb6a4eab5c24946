"""The Google Ads API's quotas as the fake enforces them, on an injectable clock.

What Google documents, and what the fake makes of it:

* Short-term rate limits: "The Google Ads API enforces rate limiting by queries per second (QPS) on
  both customer IDs and Google Cloud projects independently ... In addition to requests per minute
  ... The Google Ads API uses a token bucket algorithm ... so the exact limit varies"; "Requests that
  violate rate limits are rejected with the error: RESOURCE_TEMPORARILY_EXHAUSTED"
  (developers.google.com/google-ads/api/docs/productionize/rate-limits). Here: requests per rolling
  ``window_seconds`` (a minute) per customer id (``rateScope`` ``ACCOUNT``) and per developer token
  (``DEVELOPER``); the bucket's size is not sent anywhere, only the refusal's ``retryDelay``.
* The daily operations cap: "Basic access | Test and production accounts | 15,000 operations / day
  ... 'Per day' is based on a sliding 24 hour time period in which API requests were made with your
  developer token" (developers.google.com/google-ads/api/docs/access-levels); "A single query or
  report is counted as one operation, regardless of the results being streamed through
  GoogleAdsService.SearchStream" (.../docs/rate-sheet). Refused with ``quotaError``
  ``RESOURCE_EXHAUSTED``, ``rateScope`` ``DEVELOPER``, ``rateName`` "Number of operations for basic
  access" and a ``retryDelay`` of hours (the body Google sent in PipedreamHQ/pipedream#21554:
  "Too many requests. Retry in 40591 seconds.", ``"retryDelay": "40591s"``).
* ``QuotaErrorDetails``: ``rate_scope``, ``rate_name`` ("The high level description of the quota
  bucket. Examples are 'Get requests for standard access' or 'Requests per account'") and
  ``retry_delay`` ("Backoff period that customers should wait before sending next request"),
  developers.google.com/google-ads/api/reference/rpc/v21/QuotaErrorDetails; the ``QuotaError`` enum:
  ``RESOURCE_EXHAUSTED`` "Too many requests", ``RESOURCE_TEMPORARILY_EXHAUSTED`` "Too many requests
  in a short amount of time" (.../QuotaErrorEnum.QuotaError).

Refused requests count nothing here; the wait named is until the oldest counted request ages out.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["GoogleAdsQuota", "Refusal"]

DAY = 86_400.0


@dataclass(frozen=True)
class Refusal:
    """Why the fake refuses a request: the ``QuotaError`` and its ``QuotaErrorDetails``."""

    error: str  # RESOURCE_TEMPORARILY_EXHAUSTED | RESOURCE_EXHAUSTED
    scope: str  # ACCOUNT | DEVELOPER
    name: str
    retry_seconds: int


@dataclass
class GoogleAdsQuota:
    """Requests per short window per customer and per developer token, and operations per 24 hours."""

    requests_per_window: int | None = None  # per developer token
    account_requests_per_window: int | None = None  # per customer id
    window_seconds: float = 60.0
    operations_per_day: int = 15_000  # basic access
    clock: Callable[[], float] = time.monotonic
    #: What it counted, for tests: answered, refused for a short window, refused for the day.
    served: int = 0
    refused_temporarily: int = 0
    refused_daily: int = 0
    #: When each answered request arrived, for tests.
    admitted: list[float] = field(default_factory=list)
    _developer: deque[float] = field(default_factory=deque)
    _accounts: dict[str, deque[float]] = field(default_factory=dict)
    _day: deque[float] = field(default_factory=deque)

    @property
    def refused(self) -> int:
        return self.refused_temporarily + self.refused_daily

    def admit(self, customer_id: str) -> Refusal | None:
        """Count one operation for ``customer_id``; the refusal when a quota cannot take it."""
        now = self.clock()
        account = self._accounts.setdefault(customer_id, deque())
        for window, seconds in (
            (self._developer, self.window_seconds),
            (account, self.window_seconds),
            (self._day, DAY),
        ):
            while window and window[0] <= now - seconds:
                window.popleft()
        refusal = self._refusal(now, account)
        if refusal is not None:
            if refusal.error == "RESOURCE_EXHAUSTED":
                self.refused_daily += 1
            else:
                self.refused_temporarily += 1
            return refusal
        for window in (self._developer, account, self._day):
            window.append(now)
        self.admitted.append(now)
        self.served += 1
        return None

    def spend(self, operations: int) -> None:
        """Someone else spends ``operations`` of the developer token's day now (an earlier run)."""
        self._day.extend([self.clock()] * operations)

    def _refusal(self, now: float, account: deque[float]) -> Refusal | None:
        if len(self._day) >= self.operations_per_day:
            return Refusal(
                "RESOURCE_EXHAUSTED",
                "DEVELOPER",
                "Number of operations for basic access",
                self._after(self._day, DAY, now),
            )
        if self.requests_per_window is not None and len(self._developer) >= self.requests_per_window:
            return Refusal(
                "RESOURCE_TEMPORARILY_EXHAUSTED",
                "DEVELOPER",
                "Requests per developer token",
                self._after(self._developer, self.window_seconds, now),
            )
        if self.account_requests_per_window is not None and len(account) >= self.account_requests_per_window:
            return Refusal(
                "RESOURCE_TEMPORARILY_EXHAUSTED",
                "ACCOUNT",
                "Requests per account",
                self._after(account, self.window_seconds, now),
            )
        return None

    @staticmethod
    def _after(window: deque[float], seconds: float, now: float) -> int:
        """Whole seconds until the oldest request of ``window`` ages out."""
        return max(1, math.ceil(window[0] + seconds - now))
