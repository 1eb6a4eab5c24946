"""The Graph API's conventions this connector relies on: errors, throttling, usage headers, days, versions.

* Errors are ``{"error": {"message", "type", "code", "error_subcode"?, "is_transient"?,
  "fbtrace_id"}}`` (developers.facebook.com/docs/graph-api/guides/error-handling; the bodies
  quoted in airbytehq/airbyte#62902 and facebook/facebook-python-business-sdk#656). ``190`` is an
  invalid or expired token; ``100`` an invalid parameter, for insights "(#100) The value must be a
  valid insights metric".
* Throttling is HTTP 400 (sometimes 403/429) with code 4 (app), 17 (user), 32 (Page, user
  token), 613, 80001 (Pages BUC) or 80002 (Instagram BUC). "Pages API requests are subject to
  either Platform or BUC Rate Limits, depending on the token used ... system user or page access
  tokens are subject to Business Use Case Rate Limits" (developers.facebook.com/docs/graph-api/
  overview/rate-limiting); a Page's limit is "4,800 calls per engaged user per 24 hours" over a
  sliding 24-hour window (blog 2016-06-16 "Page-level rate limits"). BUC usage comes in
  ``X-Business-Use-Case-Usage`` ``{"<object id>": [{"type", "call_count", "total_cputime",
  "total_time", "estimated_time_to_regain_access"}]}`` (percentages; minutes), platform usage in
  ``X-App-Usage`` ``{"call_count", "total_cputime", "total_time"}`` (percentages).
* Days: a daily value's ``end_time`` is the *end* of a Pacific-time day — "if you set since to
  January 1, 2018, the end_time will be January 2, 2018 at 8:00 GMT" (developers.facebook.com/
  documentation/pages-api/platforminsights/page) — so its day is ``end_time`` minus one second,
  in America/Los_Angeles. Dated in UTC every value would land a day late.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from kpihub import Diagnosis
from kpihub.http import Limit, Observation, RetryDecision

__all__ = [
    "LATE_DAYS",
    "LIMITS",
    "PACIFIC",
    "THROTTLE_CODES",
    "VERSIONS",
    "day_of",
    "diagnose_version",
    "error_of",
    "last_complete_day",
    "observe_rate",
    "pacific_midnight",
    "pacific_today",
    "throttle",
]

#: The day of Meta's insights (see the module docstring).
PACIFIC = ZoneInfo("America/Los_Angeles")
#: Days Meta may publish late: "Data used to calculate metrics may be delayed up to 48 hours"
#: (the Instagram account insights reference; Pages: "Most metrics will update once every 24 hours").
LATE_DAYS = 2
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002})
#: Rolling windows the usage headers report on: each Page's and Instagram account's BUC calls per
#: 24 hours (their size grows with engaged users and is not sent: learnt from the percentages), and
#: the app's platform limit per hour (user and app tokens).
LIMITS = (
    Limit("pages", None, 86_400.0, path=r"^/v\d+\.0/(\d+)(?:/|$)", title="Meta Page calls per 24 h"),
    Limit("instagram", None, 86_400.0, path=r"^/v\d+\.0/(\d+)(?:/|$)", title="Meta Instagram calls per 24 h"),
    Limit("app", None, 3_600.0, title="Meta app calls per hour"),
)
#: Graph API versions and the day each stops working (developers.facebook.com/docs/graph-api/
#: changelog/versions, read 2026-12): ``None`` is "TBD".
VERSIONS: dict[int, dt.date | None] = {
    20: dt.date(2026, 9, 24),
    21: dt.date(2027, 1, 21),
    22: dt.date(2027, 5, 20),
    23: dt.date(2027, 10, 8),
    24: dt.date(2028, 2, 18),
    25: dt.date(2028, 7, 29),
    26: None,
}


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a Graph API error body (``{}`` when there is none)."""
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _header_json(value: str | None) -> Any:
    try:
        return orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None


def _regain_seconds(headers: httpx.Headers) -> float | None:
    usage = _header_json(headers.get("X-Business-Use-Case-Usage"))
    if not isinstance(usage, dict):
        return None
    entries = [e for v in usage.values() if isinstance(v, list) for e in v if isinstance(e, dict)]
    minutes = max((float(e.get("estimated_time_to_regain_access") or 0) for e in entries), default=0.0)
    return minutes * 60.0 if minutes > 0 else None


def throttle(response: httpx.Response) -> RetryDecision | None:
    """Throttling codes wait for the BUC header's regain time (else ``Retry-After``, else backoff)."""
    error = error_of(response)
    code = error.get("code")
    if code in THROTTLE_CODES or response.status_code == 429:
        return RetryDecision(True, _regain_seconds(response.headers), "throttled")
    if response.status_code >= 500 or code in (1, 2) or error.get("is_transient") is True:
        return RetryDecision(True, None, "transient")
    return RetryDecision(False)  # 190 (token), 100 (parameter), 10/200 (permission): asking again will not help


def observe_rate(response: httpx.Response) -> list[Observation]:
    """``X-Business-Use-Case-Usage`` per Page / Instagram account, ``X-App-Usage`` for the app."""
    refused = response.status_code >= 400 and error_of(response).get("code") in THROTTLE_CODES
    out = []
    try:
        for key, entries in (_header_json(response.headers.get("X-Business-Use-Case-Usage")) or {}).items():
            for e in entries:
                share = max(float(e.get(k) or 0) for k in ("call_count", "total_cputime", "total_time")) / 100
                minutes = float(e.get("estimated_time_to_regain_access") or 0)
                wait = minutes * 60 if minutes > 0 else None
                out.append(Observation(str(e["type"]), str(key), share=share, wait=wait, refused=refused))
        app = _header_json(response.headers.get("X-App-Usage"))
        if isinstance(app, dict):
            share = max(float(app.get(k) or 0) for k in ("call_count", "total_cputime", "total_time")) / 100
            out.append(Observation("app", "", share=share, refused=refused))
    except (AttributeError, KeyError, TypeError, ValueError):
        pass  # a header that is not the documented shape says nothing
    return out


def day_of(end_time: str) -> dt.date:
    """The Pacific day a daily value's ``end_time`` (``2026-06-02T07:00:00+0000``) closes."""
    end = dt.datetime.strptime(end_time, "%Y-%m-%dT%H:%M:%S%z")
    return (end - dt.timedelta(seconds=1)).astimezone(PACIFIC).date()


def pacific_midnight(day: dt.date) -> int:
    """Unix seconds of ``day``'s start in Pacific time (Instagram's ``since``/``until``)."""
    return int(dt.datetime.combine(day, dt.time(), PACIFIC).timestamp())


def pacific_today() -> dt.date:
    """Today in Meta's insights day."""
    return dt.datetime.now(PACIFIC).date()


def last_complete_day(now: dt.datetime | None = None) -> dt.date:
    """Yesterday in Pacific time: the last day Meta can answer (``period=day`` covers complete days)."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(PACIFIC).date() - dt.timedelta(days=1)


def diagnose_version(version: str, today: dt.date) -> Diagnosis:
    """Offline: is ``api_version`` past or near its sunset (``VERSIONS``)?"""
    number = int(re.sub(r"\D", "", version.split(".")[0]) or 0)
    if number not in VERSIONS:
        newest = max(VERSIONS)
        if number > newest:
            return Diagnosis("ok", f"api_version {version} is newer than v{newest}.0, the newest this plugin knows")
        return Diagnosis("error", f"api_version {version} is past its sunset: set api_version = 'v{newest - 1}.0'")
    sunset = VERSIONS[number]
    if sunset is None:
        return Diagnosis("ok", f"api_version {version}: no sunset announced")
    if today >= sunset:
        return Diagnosis("error", f"api_version {version} stopped working on {sunset}: set a newer api_version")
    if (sunset - today).days <= 90:
        return Diagnosis("warn", f"api_version {version} stops working on {sunset}: move to a newer api_version")
    return Diagnosis("ok", f"api_version {version} works until {sunset}")
