"""The Marketing API's rate limits as the fake enforces them, per ad account, on an injectable clock.

What Meta documents, and what the fake makes of it:

* Business Use Case (BUC) limits: "Marketing API ... requests are subject to Business Use Case (BUC)
  Rate Limits"; an app's calls are counted "during a rolling one hour window"; "Once a rate limit is
  reached, any subsequent requests made by your app will fail and the API will return an error code
  until enough time has passed for the call count to drop below the limit"
  (developers.facebook.com/docs/graph-api/overview/rate-limiting). Each ad account has its own
  bucket per use case: ``ads_insights`` ("600 + 400 * Number of Active ads - 0.001 * User Errors"
  calls per hour on standard access, 190,000 + 400 * ads on advanced) and ``ads_management``
  ("300 + 40 * Number of Active ads"; developers.facebook.com/docs/marketing-apis/rate-limiting).
  Here: insights calls (and an async report run's status and rows) count as ``ads_insights``, the
  ad account object itself as ``ads_management``, each in a rolling hour.
* ``X-Business-Use-Case-Usage``: ``{"<business object id>": [{"type", "call_count",
  "total_cputime", "total_time", "estimated_time_to_regain_access"}]}``, the first three a
  "percentage" of the limit, the last a "time in minutes to regain access" (the Graph API rate
  limiting page as quoted in stackoverflow.com/questions/58163126; the same shape in Airbyte's
  source-facebook-marketing ``api.py``, which reads it). Here the key is the ad account id,
  ``call_count`` is the whole percent of the hour's calls spent (rounded down), CPU and total time
  lower shares of it, and the regain time the whole minutes until the oldest call ages out.
* The ad account's API-level score: "a read API call is equal to 1 point ... If your app is in the
  Marketing API development tier, your maximum score is 60, will decay in 300 seconds, and will be
  blocked for 300 seconds" (standard tier: 9000, 300 s, blocked 60 s; the rate-limiting page above).
  ``X-Ad-Account-Usage``: ``{"acc_id_util_pct", "reset_time_duration", "ads_api_access_tier"}``
  (the header Airbyte reads; field meanings in kpihub's API notes). Here the score is the calls of the
  last 300 s; a call at the maximum is refused and blocks the account for ``block_seconds``.
* Over a limit: HTTP 400 with ``{"error": {"message", "type": "OAuthException", "code",
  "error_subcode": 2446079, "fbtrace_id"}}``: code 80000 "There have been too many calls from this
  ad-account" (ads_insights), 80004 "... too many calls to this ad-account" (ads_management), 17
  "User request limit reached" (the score). Bodies as Meta sent them in airbytehq/airbyte#8773,
  singer-io/tap-facebook#192 and Airbyte's unit-test fixtures. Refused calls count nothing here.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["MetaLimits"]

HOUR = 3600.0
THROTTLE_SUBCODE = 2446079
RATE_DOC = "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
WAIT = "Wait a bit and try again."
THROTTLES = {
    "ads_insights": (80000, f"(#80000) There have been too many calls from this ad-account. {WAIT} {RATE_DOC}"),
    "ads_management": (80004, f"(#80004) There have been too many calls to this ad-account. {WAIT} {RATE_DOC}"),
    "score": (17, "(#17) User request limit reached"),
}


@dataclass
class MetaLimits:
    """Per ad account: calls per rolling hour for each use case, and the API-level score."""

    ads_insights_per_hour: int = 600
    ads_management_per_hour: int = 300
    max_score: int = 60
    score_seconds: float = 300.0
    block_seconds: float = 300.0
    access_tier: str = "development_access"
    clock: Callable[[], float] = time.monotonic
    #: Calls answered / refused, and when each admitted call arrived per (account, use case), for tests.
    served: int = 0
    refused: int = 0
    admitted: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _calls: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)

    def admit(self, account: str, use_case: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Count a call of ``use_case`` on ``account``: ``(status, error body or {}, usage headers)``."""
        now = self.clock()
        calls, score = self._window(account, use_case, now), self._window(account, "score", now)
        blocked = now < self._blocked_until.get(account, 0.0)
        if not blocked and len(score) >= self.max_score:  # the maximum score reached: blocked a while
            self._blocked_until[account] = now + self.block_seconds
            blocked = True
        broken = "score" if blocked else use_case if len(calls) >= self._limit(use_case) else None
        if broken is None:
            calls.append(now)
            score.append(now)
            self.admitted.setdefault((account, use_case), []).append(now)
            self.served += 1
        else:
            self.refused += 1
        headers = self.headers(account, use_case)
        if broken is None:
            return 200, {}, headers
        code, message = THROTTLES[broken]
        error = {"message": message, "type": "OAuthException", "code": code, "error_subcode": THROTTLE_SUBCODE}
        if broken == "score":
            error["is_transient"] = True
        error["fbtrace_id"] = f"Afake{self.refused:06d}"
        return 400, {"error": error}, headers

    def spend(self, account: str, use_case: str, calls: int) -> None:
        """Someone else (another app, another run) makes ``calls`` calls now."""
        now = self.clock()
        self._window(account, use_case, now).extend([now] * calls)

    def headers(self, account: str, use_case: str) -> dict[str, str]:
        """``X-Business-Use-Case-Usage`` and ``X-Ad-Account-Usage`` as of now."""
        now = self.clock()
        calls, limit = self._window(account, use_case, now), self._limit(use_case)
        pct = 100 * len(calls) // limit
        regain = math.ceil((calls[0] + HOUR - now) / 60) if len(calls) >= limit else 0
        usage = {
            "type": use_case,
            "call_count": pct,
            "total_cputime": pct * 2 // 5,
            "total_time": pct * 3 // 5,
            "estimated_time_to_regain_access": regain,
            "ads_api_access_tier": self.access_tier,
        }
        score = self._window(account, "score", now)
        blocked = self._blocked_until.get(account, 0.0) - now
        if blocked > 0:
            util, reset = 100.0, blocked
        else:  # until the whole score has decayed
            util = round(100 * len(score) / self.max_score, 2)
            reset = (score[-1] + self.score_seconds - now) if score else 0.0
        ad_account = {
            "acc_id_util_pct": util,
            "reset_time_duration": math.ceil(reset),
            "ads_api_access_tier": self.access_tier,
        }
        return {
            "X-Business-Use-Case-Usage": orjson.dumps({account: [usage]}).decode(),
            "X-Ad-Account-Usage": orjson.dumps(ad_account).decode(),
        }

    def _limit(self, use_case: str) -> int:
        return self.ads_insights_per_hour if use_case == "ads_insights" else self.ads_management_per_hour

    def _window(self, account: str, use_case: str, now: float) -> deque[float]:
        calls = self._calls.setdefault((account, use_case), deque())
        seconds = self.score_seconds if use_case == "score" else HOUR
        while calls and calls[0] <= now - seconds:
            calls.popleft()
        return calls
