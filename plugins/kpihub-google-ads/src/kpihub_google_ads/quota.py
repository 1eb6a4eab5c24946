"""Google Ads quota errors: which ones wait and which ones stop the run, and what the budget learns.

A 429's body is a ``GoogleAdsFailure`` (wrapped in an array for searchStream) whose errors carry
``errorCode.quotaError`` and ``details.quotaErrorDetails {rateScope, rateName, retryDelay}``
(developers.google.com/google-ads/api/reference/rpc/v21/QuotaErrorDetails; the body Google sent in
PipedreamHQ/pipedream#21554). Two kinds (QuotaErrorEnum.QuotaError):

* short-term — ``RESOURCE_TEMPORARILY_EXHAUSTED`` ("Too many requests in a short amount of time",
  the rate limits: developers.google.com/google-ads/api/docs/productionize/rate-limits) and
  ``EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION``: wait ``retryDelay`` in the budget; the
  window's size is learnt from the refusal (Google sends it nowhere), so the next minutes are
  spent up to it without another refusal;
* long-term — ``EXCESSIVE_LONG_TERM_QUERY_RESOURCE_CONSUMPTION``, and ``RESOURCE_EXHAUSTED`` of an
  access level's quota (``rateName`` "Number of operations for basic access", "Get requests for
  standard access": the developer token's operations per sliding 24 hours; "The RESOURCE_EXHAUSTED
  error ... [is] when you are hitting the Daily API operation limits", the Google Ads API team,
  mail-archive.com/adwords-api@googlegroups.com/msg72156.html): a quota that will not come back
  within the run; the stream stops with status ``quota``, saying when it resets (``retryDelay``).
  Any other ``RESOURCE_EXHAUSTED`` is short-term: it also "generally occurs when you are sending too
  many requests in a short period of time" (…/msg99922.html).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from kpihub.http import Limit, Observation, Quota, RetryDecision

__all__ = ["QuotaFailure", "classify", "observe_rate", "quota_failure", "rate_limits", "retry_delay"]

SHORT_TERM = frozenset(
    {"RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED", "EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION"}
)
CUSTOMER_PATH = r"/customers/(\d+)/"


def rate_limits(daily_operations: int | None) -> list[Limit]:
    """Requests per minute per customer and per developer token (sizes learnt from refusals: Google
    "uses a token bucket algorithm ... so the exact limit varies"), and the token's operations per
    sliding 24 hours ("Basic access ... 15,000 operations / day": developers.google.com/google-ads/api/
    docs/access-levels), each searchStream one operation (.../docs/rate-sheet)."""
    return [
        Limit("account_minute", None, 60.0, path=CUSTOMER_PATH, title="requests per minute of customer"),
        Limit("developer_minute", None, 60.0, title="developer token requests per minute"),
        Limit("developer_day", daily_operations, 86_400.0, title="developer token operations per 24 hours"),
        Limit("account_day", None, 86_400.0, path=CUSTOMER_PATH, title="operations per day of customer"),
    ]


@dataclass(frozen=True)
class QuotaFailure:
    """A quota error of a 429 body: its ``QuotaError``, ``rateScope``, ``rateName`` and ``retryDelay`` (s)."""

    error: str
    scope: str = ""
    name: str = ""
    delay: float | None = None

    @property
    def long_term(self) -> bool:
        """Will not come back within a run: a query pattern's long-term use, an access level's day."""
        daily = self.error == "RESOURCE_EXHAUSTED" and "access" in self.name.lower()
        return daily or self.error == "EXCESSIVE_LONG_TERM_QUERY_RESOURCE_CONSUMPTION"


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration as JSON ("30s", "1.5s") in seconds."""
    if isinstance(duration, str) and duration.endswith("s"):
        try:
            return float(duration[:-1])
        except ValueError:
            return None
    return None


def _details(body: Any) -> list[dict[str, Any]]:
    error = body[0] if isinstance(body, list) and body else body
    details = ((error or {}).get("error") or {}).get("details") if isinstance(error, dict) else None
    return [d for d in details or [] if isinstance(d, dict)]


def quota_failure(body: Any) -> QuotaFailure | None:
    """The first ``quotaError`` of a GoogleAdsFailure body, else ``None``."""
    for detail in _details(body):
        for error in detail.get("errors") or []:
            code = (error.get("errorCode") or {}).get("quotaError")
            if code:
                details = (error.get("details") or {}).get("quotaErrorDetails") or {}
                delay = _seconds(details.get("retryDelay"))
                return QuotaFailure(code, details.get("rateScope", ""), details.get("rateName", ""), delay)
    return None


def retry_delay(body: Any) -> float | None:
    """``quotaErrorDetails.retryDelay`` ("30s") of a GoogleAdsFailure body, else a ``google.rpc.RetryInfo``
    detail's ``retryDelay`` (the standard detail, google.aip.dev/193), in seconds."""
    failure = quota_failure(body)
    if failure is not None and failure.delay is not None:
        return failure.delay
    for detail in _details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return _seconds(detail.get("retryDelay"))
    return None


def long_term_quota(failure: QuotaFailure) -> Quota:
    """The quota a long-term refusal is: when ``retryDelay`` says, else within the sliding day.

    What ran out goes into ``resets`` too: the sync's message shows when, and the 429's own top
    message ("Resource has been exhausted (e.g. check quota).") does not say what.
    """
    what = f"Google Ads' {failure.name or 'quota'} ({failure.scope or 'unknown'} scope, {failure.error})"
    if failure.delay is None:
        return Quota(what, resets=f"resets within 24 hours (a sliding day), when {what} has room again")
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=failure.delay)
    return Quota(what, resets_at=at, resets=f"resets at {at:%Y-%m-%d %H:%M} UTC, when {what} has room again")


def _failure(response: httpx.Response) -> tuple[Any, QuotaFailure | None]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None
    return body, quota_failure(body)


def classify(response: httpx.Response) -> RetryDecision | None:
    """A short-term quota waits ``retryDelay``; a long-term one stops the run (status ``quota``)."""
    if response.status_code != 429:
        return None
    body, failure = _failure(response)
    if failure is None:
        return RetryDecision(True, retry_delay(body), "quota")
    if failure.long_term:
        return RetryDecision(False, reason="quota", quota=long_term_quota(failure))
    if failure.error == "ACCESS_PROHIBITED":
        return RetryDecision(False)
    return RetryDecision(True, failure.delay if failure.delay is not None else retry_delay(body), "quota")


def observe_rate(response: httpx.Response) -> list[Observation]:
    """What a refusal says of the budget's windows: the minute it names is full (its size is what it
    holds; the refused request waits ``retryDelay``, the others until the window has room); a
    long-term quota holds every request of its scope."""
    if response.status_code != 429:
        return []
    _, failure = _failure(response)
    if failure is None:
        return []
    customer = re.search(CUSTOMER_PATH, response.request.url.path)
    by_account = failure.scope == "ACCOUNT" and customer is not None
    key = customer.group(1) if by_account and customer else ""
    if failure.long_term:
        name = "account_day" if by_account else "developer_day"
        return [Observation(name, key, refused=True, quota=long_term_quota(failure))]
    if failure.error in SHORT_TERM and failure.scope:  # a refusal naming its window: it is full
        name = "account_minute" if by_account else "developer_minute"
        return [Observation(name, key, refused=True, full=True)]
    return []
