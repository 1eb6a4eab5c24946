"""A fake GA4 Data API (``runReport``) and OAuth token endpoint on 127.0.0.1.

Shapes (developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport,
the APIs-guru OpenAPI copy of RunReportRequest/Response, kpihub's shared API notes):

* ``POST /v1beta/properties/{id}:runReport`` with ``{dateRanges: [{startDate, endDate}],
  dimensions: [{name}], metrics: [{name}], limit, offset, keepEmptyRows,
  metricAggregations, returnPropertyQuota}`` (limit/offset are int64: strings or numbers).
* ``metricAggregations: ["TOTAL"]`` adds ``totals: [Row]``, the metrics over every row
  of the report (not only the page), dimension values ``RESERVED_TOTAL``; a total of
  users counts each user once, so it is less than the rows' sum.
* ``metadata`` may carry ``subjectToThresholding``, ``samplingMetadatas: [{samplesReadCount,
  samplingSpaceSize}]`` and ``dataLossFromOtherRow`` (ResponseMetaData,
  developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/ResponseMetaData).
* ``{dimensionHeaders: [{name}], metricHeaders: [{name, type}], rows: [{dimensionValues:
  [{value}], metricValues: [{value}]}], rowCount, metadata: {currencyCode, timeZone},
  propertyQuota, kind: "analyticsData#runReport"}``; every metric value is a string
  typed by ``metricHeaders[].type``; ``date`` is ``YYYYMMDD`` in the property's
  time zone; rows are not ordered by date unless asked; an empty report has
  neither ``rows`` nor ``rowCount``.
* Two reports: traffic (``date``, ``sessionSource``, ``sessionMedium``, ``sessionCampaignName``) and
  landing pages (``date``, ``landingPage``, ``sessionDefaultChannelGroup``), the latter the traffic's
  sessions and engaged sessions cut by the page they started on and their default channel group
  (developers.google.com/analytics/devguides/reporting/data/v1/api-schema), so both add up to the
  same sessions a day. A dimension neither knows is a 400 ``INVALID_ARGUMENT``, as GA4 answers.
* Errors ``{error: {code, message, status}}``: 401 ``UNAUTHENTICATED``, 403
  ``PERMISSION_DENIED`` ("User does not have sufficient permissions for this
  property."), 429 ``RESOURCE_EXHAUSTED`` ("Exhausted property tokens per hour
  for a project per property…" / "…per day…").
* Token quotas (:class:`GA4Quota`, off unless given; clock-injectable), per property: standard
  properties "can use up to 200,000 tokens per day" and "up to 40,000 tokens per hour"; "an
  API request consumes a single number of tokens, and that number is deducted from all of the
  hourly, daily, and per project hourly quotas"; "Daily quotas refresh at midnight PST, and
  hourly quotas refresh within an hour" (developers.google.com/analytics/devguides/reporting/
  data/v1/quotas; PropertyQuota in the v1beta reference). Here the hour is a rolling window,
  the day ends at :meth:`FakeGA4.new_day`, a report costs ``1 + rows // 500`` tokens, and
  ``propertyQuota`` reports ``consumed`` (this request) and ``remaining`` (after it) of both;
  a request that does not fit gets the 429 of the quota it would break. Refused requests cost nothing.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

__all__ = ["FakeGA4"]

PROPERTIES = {"312345678": ("EUR", "Europe/Oslo"), "398765432": ("USD", "America/Los_Angeles")}
TYPES = {
    "sessions": "TYPE_INTEGER",
    "totalUsers": "TYPE_INTEGER",
    "newUsers": "TYPE_INTEGER",
    "engagedSessions": "TYPE_INTEGER",
    "screenPageViews": "TYPE_INTEGER",
    "keyEvents": "TYPE_FLOAT",
    "totalRevenue": "TYPE_CURRENCY",
    "engagementRate": "TYPE_FLOAT",
    "userEngagementDuration": "TYPE_SECONDS",
}
#: The landing pages of the fake site, with the share of a channel's sessions that start on each.
LANDING_PAGES = (("/", 5), ("/pricing", 3), ("/blog/kpi-guide", 2))
#: GA4's default channel group of a session's medium (the rules' main cases; the fake's channels only).
CHANNEL_GROUPS = {
    "organic": "Organic Search",
    "cpc": "Paid Search",
    "paid_social": "Paid Social",
    "social": "Organic Social",
    "email": "Email",
    "referral": "Referral",
    "display": "Display",
}
CHANNELS = [
    ("google", "organic", "(organic)"),
    ("google", "cpc", "brand_search"),
    ("facebook", "paid_social", "prospecting"),
    ("linkedin", "paid_social", "abm"),
    ("(direct)", "(none)", "(not set)"),
    ("newsletter", "email", "june_digest"),
]


@dataclass
class GA4Quota:
    """Token quotas per property, and what they counted (for tests)."""

    tokens_per_hour: int = 40_000
    tokens_per_day: int = 200_000
    clock: Callable[[], float] = time.monotonic
    served: int = 0
    refused: int = 0
    consumed: int = 0
    _hour: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _day: dict[str, int] = field(default_factory=dict)

    def remaining(self, prop: str) -> tuple[int, int]:
        """Tokens left this hour (rolling) and today."""
        now = self.clock()
        hour = self._hour.setdefault(prop, deque())
        while hour and hour[0][0] <= now - 3600:
            hour.popleft()
        return self.tokens_per_hour - sum(c for _, c in hour), self.tokens_per_day - self._day.get(prop, 0)

    def charge(self, prop: str, cost: int) -> str | None:
        """Charge ``cost`` tokens; ``"hour"`` or ``"day"`` when that quota cannot pay it."""
        hour, day = self.remaining(prop)
        broken = "day" if day < cost else "hour" if hour < cost else None
        if broken:
            self.refused += 1
            return broken
        self._hour[prop].append((self.clock(), cost))
        self._day[prop] = self._day.get(prop, 0) + cost
        self.served += 1
        self.consumed += cost
        return None


class FakeGA4(FakeAPIServer):
    paging = (
        Paging(
            r"/v1beta/properties/\d+:runReport",
            method="POST",
            records="rows",
            param="offset",
            where="body",
            offset=True,
        ),
    )

    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.date = dt.date(2026, 1, 1),
        end: dt.date = dt.date(2026, 6, 30),
        refresh_token: str = "1//ga4-refresh-fake",
        client_secret: str = "GOCSPX-ga4-secret",
        properties: dict[str, tuple[str, str]] | None = None,
        channels: list[tuple[str, str, str]] | None = None,
        quota: GA4Quota | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.quota = quota
        self._revisions = random.Random(seed * 7919 + 1)  # restate(): its own stream, apart from the data
        #: ResponseMetaData flags the next reports carry (thresholding, sampling, an "(other)" row).
        self.report_metadata: dict[str, Any] = {}
        #: Added to every metric of the ``totals`` row: a platform whose rows miss some of its total.
        self.totals_bias = 0
        self.refresh_token = refresh_token
        self.client_id = "456-fake.apps.googleusercontent.com"
        self.client_secret = client_secret
        self.issued: set[str] = set()
        rng = random.Random(seed)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.properties = properties or PROPERTIES
        for prop in self.properties:
            rows = []
            day = start
            while day <= end:
                for source, medium, campaign in channels or CHANNELS:
                    sessions = rng.randint(0, 900)
                    if sessions == 0:
                        continue  # all-zero rows are dropped (keepEmptyRows=false)
                    engaged = int(sessions * rng.uniform(0.4, 0.8))
                    users = int(sessions * rng.uniform(0.7, 0.95))
                    key_events = round(sessions * rng.uniform(0, 0.05), 1)
                    rows.append(
                        {
                            "date": day.strftime("%Y%m%d"),
                            "sessionSource": source,
                            "sessionMedium": medium,
                            "sessionCampaignName": campaign,
                            "sessions": sessions,
                            "totalUsers": users,
                            "newUsers": int(users * rng.uniform(0.3, 0.7)),
                            "engagedSessions": engaged,
                            "screenPageViews": int(sessions * rng.uniform(1.5, 4)),
                            "keyEvents": key_events,
                            "totalRevenue": round(key_events * rng.uniform(20, 80), 2),
                        }
                    )
                day += dt.timedelta(days=1)
            rng.shuffle(rows)  # GA4 does not order rows by date unless asked
            self.rows[prop] = rows
        #: The landing-page report's rows, derived from the traffic's (restate() revises only the traffic).
        self.landing_rows = {prop: landing_rows(rows) for prop, rows in self.rows.items()}

    # -- changes (incremental tests) --------------------------------------------------

    def _total(self, rows: list[dict[str, Any]], metric: str) -> str:
        value = sum(r[metric] for r in rows) + self.totals_bias
        if metric == "totalUsers":  # users who came through several channels are counted once
            value = int(value * 0.96)
        return str(round(value, 2)) if isinstance(value, float) else str(value)

    def restate(self, days: int = 2, fraction: float = 0.3, drop: int = 0) -> dict[str, list[tuple[str, ...]]]:
        """Revise each property's last ``days`` days the way GA4 finishes processing them.

        "Google Analytics allows for a data processing delay of 24-48 hours. During that time,
        data may change, so reports may not be consistent when viewing the last 24-48 hours"
        (support.google.com/analytics/answer/11198161). So on those days ``fraction`` of the rows
        (at least one) gain late-processed sessions (with their users, engaged sessions, views,
        key events and revenue), and a channel not seen before gets a row on the last day.
        ``drop`` rows of those days disappear (only an engine that replaces its re-read window
        removes them). Returns the (property, date, source, medium, campaign) keys ``changed``,
        ``added`` and ``dropped``.
        """
        rng = self._revisions
        dims = ("date", "sessionSource", "sessionMedium", "sessionCampaignName")
        out: dict[str, list[tuple[str, ...]]] = {"changed": [], "added": [], "dropped": []}
        for prop, rows in self.rows.items():
            if not rows:
                continue
            last = dt.datetime.strptime(max(r["date"] for r in rows), "%Y%m%d").date()
            recent_days = {(last - dt.timedelta(days=i)).strftime("%Y%m%d") for i in range(days)}
            recent = [r for r in rows if r["date"] in recent_days]
            revised = rng.sample(recent, max(1, round(len(recent) * fraction)))
            for r in revised:
                late = rng.randint(5, 60)
                r["sessions"] += late
                r["engagedSessions"] += int(late * 0.6)
                r["totalUsers"] += int(late * 0.8)
                r["newUsers"] += int(late * 0.4)
                r["screenPageViews"] += late * 2
                r["keyEvents"] = round(r["keyEvents"] + 1.0, 1)
                r["totalRevenue"] = round(r["totalRevenue"] + rng.uniform(20, 80), 2)
                out["changed"].append((prop, *(r[d] for d in dims)))
            sessions = rng.randint(20, 400)
            added = {
                **recent[0],  # every field the other rows have, then this channel's own values
                "date": last.strftime("%Y%m%d"),
                "sessionSource": "bing",
                "sessionMedium": "cpc",
                "sessionCampaignName": f"late_{len(out['added']) + 1}_{rng.randint(1000, 9999)}",
                "sessions": sessions,
                "totalUsers": int(sessions * 0.85),
                "newUsers": int(sessions * 0.5),
                "engagedSessions": int(sessions * 0.6),
                "screenPageViews": sessions * 3,
                "keyEvents": round(sessions * 0.02, 1),
                "totalRevenue": round(sessions * 0.9, 2),
            }
            rows.append(added)
            out["added"].append((prop, *(added[d] for d in dims)))
            untouched = [r for r in recent if r not in revised] or recent
            for r in rng.sample(untouched, min(drop, len(untouched))):
                rows.remove(r)
                out["dropped"].append((prop, *(r[d] for d in dims)))
        return out

    def error_body(self, status: int, message: str) -> Any:
        state = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            429: "RESOURCE_EXHAUSTED",
        }.get(status, "INTERNAL")
        if status == 429:
            message = (
                "Exhausted property tokens per hour for a project per property. These quota tokens will "
                "return in under an hour."
            )
        return {"error": {"code": status, "message": message, "status": state}}

    def new_day(self) -> None:
        """Midnight Pacific Time: the daily token quotas start again."""
        if self.quota is not None:
            with self.data_lock:
                self.quota._day.clear()

    def quota_per_day(self) -> Any:
        return {
            "error": {
                "code": 429,
                "message": "Exhausted property tokens per day for a project per property.",
                "status": "RESOURCE_EXHAUSTED",
            }
        }

    #: PEM public key of the one service account the fake trusts (set by tests).
    service_account_public_key: str | None = None

    def expire_tokens(self) -> bool:
        """Expire every issued access token: the next report gets 401 UNAUTHENTICATED."""
        self.issued.clear()
        return True

    @route("POST", r"/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        if form.get("refresh_token") != self.refresh_token or form.get("client_secret") != self.client_secret:
            return self.json({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        token = f"ya29.ga4-{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        self.issued.add(token)
        return self.json(
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/analytics.readonly",
            }
        )

    def _jwt_grant(self, assertion: str) -> FakeResponse:
        # RFC 7523: a JWT signed with the service account's key; verified with its public key.
        from google.auth import jwt

        try:
            # google-auth always signs for Google's own token audience, whatever token_uri says.
            claims = jwt.decode(
                assertion, certs=self.service_account_public_key, audience="https://oauth2.googleapis.com/token"
            )
        except Exception:  # any verification failure is Google's invalid_grant
            return self.json({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        if "analytics.readonly" not in claims.get("scope", ""):
            return self.json({"error": "invalid_scope", "error_description": "Missing analytics scope."}, 400)
        token = f"ya29.c.sa-{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        self.issued.add(token)
        return self.json({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _report_rows(self, prop: str, dims: list[str]) -> list[dict[str, Any]] | str:
        """The rows of the report whose dimensions ``dims`` are (traffic first), or the first unknown one."""
        for rows in (self.rows[prop], self.landing_rows.get(prop, [])):
            if not rows or all(d in rows[0] for d in dims):
                return rows
        known = {k for rows in (self.rows[prop], self.landing_rows.get(prop, [])) for r in rows[:1] for k in r}
        return next((d for d in dims if d not in known), dims[0])

    @route("POST", r"/v1beta/properties/(?P<prop>\d+):runReport")
    def run_report(self, request: FakeRequest) -> FakeResponse:
        auth = request.header("authorization") or ""
        if auth[7:] not in self.issued:
            return self.json(
                self.error_body(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication "
                    "credential.",
                ),
                401,
            )
        prop = request.params["prop"]
        if prop not in self.properties:
            return self.json(
                self.error_body(
                    403,
                    "User does not have sufficient permissions for this property. "
                    "To learn more about Property ID, see https://developers.google."
                    "com/analytics/devguides/reporting/data/v1/property-id.",
                ),
                403,
            )
        body = request.json() or {}
        (window,) = body.get("dateRanges") or [{}]
        dims = [d["name"] for d in body.get("dimensions", [])]
        mets = [m["name"] for m in body.get("metrics", [])]
        data = self._report_rows(prop, dims)
        if isinstance(data, str):
            return self.json(
                self.error_body(
                    400, f"Field {data} is not a valid dimension. For a list of valid dimensions and metrics, see …"
                ),
                400,
            )
        unknown = [m for m in mets if m not in TYPES]
        if unknown:
            return self.json(
                self.error_body(
                    400, f"Field {unknown[0]} is not a valid metric. For a list of valid dimensions and metrics, see …"
                ),
                400,
            )
        limit, offset = int(body.get("limit", 10000)), int(body.get("offset", 0))
        low = window["startDate"].replace("-", "")
        high = window["endDate"].replace("-", "")
        rows = [r for r in data if low <= r["date"] <= high]
        currency, zone = self.properties[prop]
        cost = 1 + len(rows[offset : offset + limit]) // 500
        if self.quota is not None:
            broken = self.quota.charge(prop, cost)
            if broken == "day":
                return self.json(self.quota_per_day(), 429)
            if broken == "hour":
                return self.json(self.error_body(429, ""), 429)
        out: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in dims],
            "metricHeaders": [{"name": m, "type": TYPES[m]} for m in mets],
            "metadata": {"currencyCode": currency, "timeZone": zone},
            "kind": "analyticsData#runReport",
        }
        if rows:
            out["rows"] = [
                {
                    "dimensionValues": [{"value": r[d]} for d in dims],
                    "metricValues": [{"value": str(r[m])} for m in mets],
                }
                for r in rows[offset : offset + limit]
            ]
            out["rowCount"] = len(rows)
            if "TOTAL" in body.get("metricAggregations", []):
                # One row over every matching row (not just this page), its dimensions RESERVED_TOTAL.
                out["totals"] = [
                    {
                        "dimensionValues": [{"value": "RESERVED_TOTAL"} for _ in dims],
                        "metricValues": [{"value": self._total(rows, m)} for m in mets],
                    }
                ]
        out["metadata"].update(self.report_metadata)
        if body.get("returnPropertyQuota"):
            hour, day = self.quota.remaining(prop) if self.quota is not None else (39881, 199881)
            spent = cost if self.quota is not None else 12
            out["propertyQuota"] = {
                "tokensPerDay": {"consumed": spent, "remaining": day},
                "tokensPerHour": {"consumed": spent, "remaining": hour},
                "concurrentRequests": {"remaining": 10},
                "serverErrorsPerProjectPerHour": {"remaining": 10},
                "potentiallyThresholdedRequestsPerHour": {"remaining": 120},
                "tokensPerProjectPerHour": {"consumed": spent, "remaining": 13988},
            }
        return self.json(out)


def landing_rows(traffic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The landing-page report of ``traffic`` rows: each row's sessions split over :data:`LANDING_PAGES`
    by their shares, its engaged sessions more on the home page than on the others (so the pages'
    bounce rates differ), then added up per day, page and channel group."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    total_share = sum(share for _, share in LANDING_PAGES)
    for r in traffic:
        group = CHANNEL_GROUPS.get(r["sessionMedium"], "Direct" if r["sessionSource"] == "(direct)" else "Unassigned")
        sessions = [r["sessions"] * share // total_share for _, share in LANDING_PAGES]
        sessions[0] += r["sessions"] - sum(sessions)
        engaged, left = [], r["engagedSessions"]
        for part, keep in zip(sessions, (0.7, 0.5, 1.0), strict=True):
            engaged.append(min(part, int(left * keep)))
            left -= engaged[-1]
        for i, part in enumerate(sessions):  # what is left goes where there are sessions to hold it
            more = min(left, part - engaged[i])
            engaged[i] += more
            left -= more
        for (page, _), part, eng in zip(LANDING_PAGES, sessions, engaged, strict=True):
            if part == 0:
                continue  # keepEmptyRows=false
            row = out.setdefault(
                (r["date"], page, group),
                {
                    "date": r["date"],
                    "landingPage": page,
                    "sessionDefaultChannelGroup": group,
                    "sessions": 0,
                    "engagedSessions": 0,
                },
            )
            row["sessions"] += part
            row["engagedSessions"] += eng
    return list(out.values())
