"""A fake Google Ads API (searchStream) and OAuth token endpoint on 127.0.0.1.

Shapes (developers.google.com/google-ads/api/reference/rpc/…/SearchGoogleAdsStreamResponse
and kpihub's shared API notes):

* ``POST /v{N}/customers/{customerId}/googleAds:searchStream`` with ``{"query": GAQL}``,
  headers ``Authorization: Bearer``, ``developer-token``, optional ``login-customer-id``.
* The answer is one JSON **array** of chunks ``{results: [GoogleAdsRow], fieldMask,
  requestId}``, at most 10,000 rows each; the last chunk carries
  ``queryResourceConsumption``. No rows: a single chunk without ``results``.
* Rows are camelCase nested objects; int64 values (``id``, ``impressions``,
  ``clicks``, ``costMicros``) are JSON strings, doubles (``conversions``,
  ``conversionsValue``) JSON numbers; ``segments.date`` is ``YYYY-MM-DD`` in the
  account's time zone.
* A row holds only the fields the query's SELECT names, plus the ``resourceName``
  of the FROM resource, which is always returned
  (developers.google.com/google-ads/api/docs/query/structure); ``fieldMask`` lists
  the selected fields. Fields at their proto3 default (0, "") are left out of the
  JSON (protobuf.dev/programming-guides/json: "fields with default values are
  omitted by default"), so zero metrics are absent.
* ``SELECT customer.… FROM customer`` answers one row describing the account. With metrics
  it is the account-level report (the Account Performance Report's successor, per the API
  team: mail-archive.com/adwords-api@googlegroups.com/msg94799.html): the account's statistics over
  every campaign for the ``segments.date`` range in WHERE, one row per date when
  ``segments.date`` is selected — dates whose selected metrics are all zero are not returned
  (developers.google.com/google-ads/api/docs/reporting/zero-metrics); selecting it needs a
  finite date range. ``totals_bias`` makes that report disagree with the campaign rows.
* ``omit=("customer",)`` replays bodies seen in the wild whose rows lack a whole
  object (here ``customer``) although the query selected it.
* Errors are ``[{"error": {code, message, status, details: [{"@type":
  "type.googleapis.com/google.ads.googleads.vNN.errors.GoogleAdsFailure", errors:
  [{errorCode: {<family>: <ENUM>}, message}], requestId}]}}]`` — wrapped in an
  array for searchStream; a quota error is 429 ``RESOURCE_EXHAUSTED`` with
  ``quotaErrorDetails.retryDelay``.
* Quotas (:class:`~kpihub_google_ads.fake_quota.GoogleAdsQuota`, off unless given; clock-injectable):
  requests per minute per customer and per developer token (``RESOURCE_TEMPORARILY_EXHAUSTED``) and
  the developer token's operations per sliding 24 hours (``RESOURCE_EXHAUSTED``; sources there).
* The token endpoint takes the refresh-token grant as a form and answers
  ``{access_token, expires_in, scope, token_type}`` or 400 ``{"error":
  "invalid_grant", "error_description": …}``.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import urllib.parse
import uuid
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, route
from kpihub_google_ads.fake_quota import GoogleAdsQuota, Refusal

__all__ = ["FakeGoogleAds", "GoogleAdsQuota"]

API_VERSION = "v26"
ACCOUNTS = {
    "1234567890": ("EUR", "Europe/Oslo"),
    "2345678901": ("USD", "America/New_York"),
    "3456789012": ("NOK", "Europe/Oslo"),
}


class FakeGoogleAds(FakeAPIServer):
    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.date = dt.date(2026, 1, 1),
        end: dt.date = dt.date(2026, 6, 30),
        developer_token: str = "devtok-fake-1234",
        refresh_token: str = "1//refresh-fake-5678",
        client_secret: str = "GOCSPX-fake-secret",
        chunk_rows: int = 10_000,
        accounts: dict[str, tuple[str, str]] | None = None,
        campaign_names: list[str] | None = None,
        omit: tuple[str, ...] = (),
        quota: GoogleAdsQuota | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.omit = omit
        self.quota = quota
        #: Added to the account-level report (``FROM customer`` with metrics) on its first row:
        #: that many impressions and clicks, and that many currency units of cost (in micros), the
        #: campaign rows do not have — a platform whose campaign report misses part of its total.
        self.totals_bias = 0
        self._revisions = random.Random(seed * 7919 + 1)  # restate(): its own stream, apart from the data
        self.developer_token = developer_token
        self.refresh_token = refresh_token
        self.client_id = "123-fake.apps.googleusercontent.com"
        self.client_secret = client_secret
        self.chunk_rows = chunk_rows
        self.issued: set[str] = set()
        self.rows: dict[str, list[dict[str, Any]]] = {}
        rng = random.Random(seed)
        self.accounts = accounts or ACCOUNTS
        for cid, (currency, zone) in self.accounts.items():
            names = campaign_names or [
                f"{name} {cid[-2:]}" for name in ("Brand", "Generic", "Competitor", "Retargeting")[: rng.randint(2, 4)]
            ]
            campaigns = [(str(rng.randint(10**9, 10**10)), name) for name in names]
            rows = []
            day = start
            while day <= end:
                for camp_id, camp_name in campaigns:
                    impressions = rng.randint(0, 4000)
                    clicks = int(impressions * rng.uniform(0.01, 0.08))
                    cost = clicks * rng.randint(300_000, 2_500_000)
                    conversions = round(clicks * rng.uniform(0, 0.1), 2)
                    rows.append(
                        {
                            "customer": {"id": cid, "currencyCode": currency, "timeZone": zone},
                            "campaign": {"id": camp_id, "name": camp_name},
                            "date": day.isoformat(),
                            "impressions": impressions,
                            "clicks": clicks,
                            "costMicros": cost,
                            "conversions": conversions,
                            "conversionsValue": round(conversions * rng.uniform(20, 200), 2),
                        }
                    )
                day += dt.timedelta(days=1)
            self.rows[cid] = rows

    # -- changes (incremental tests) -----------------------------------------------

    def restate(self, days: int = 2, fraction: float = 0.3, drop: int = 0) -> dict[str, list[tuple[str, str, str]]]:
        """Revise each account's last ``days`` days the way Google Ads revises recent statistics.

        Conversions keep arriving for the day of the click, and click-fraud detection takes
        invalid clicks (and their cost) back for weeks: "due to ongoing operations such as click
        fraud detection, some of the data, such as clicks, may change for up to a month later",
        conversions "will never be completely stable" (adwordsapi.blogspot.com/2011/06/
        statistics-in-reports.html; support.google.com/google-ads/answer/2544985). So on those
        days ``fraction`` of the rows (at least one) get late conversions and lose a few invalid
        clicks, and a campaign whose day arrived late gets a row on the last day. ``drop`` rows
        of those days disappear (a day the platform no longer reports: only an engine that
        replaces its re-read window removes them). Returns the (customer, campaign id, date)
        keys ``changed``, ``added`` and ``dropped``.
        """
        rng = self._revisions
        out: dict[str, list[tuple[str, str, str]]] = {"changed": [], "added": [], "dropped": []}
        for cid, rows in self.rows.items():
            if not rows:
                continue
            last = dt.date.fromisoformat(max(r["date"] for r in rows))
            recent_days = {(last - dt.timedelta(days=i)).isoformat() for i in range(days)}
            recent = [r for r in rows if r["date"] in recent_days]
            revised = rng.sample(recent, max(1, round(len(recent) * fraction)))
            for r in revised:
                invalid = min(r["clicks"], rng.randint(1, 3))
                if invalid:
                    r["costMicros"] -= invalid * (r["costMicros"] // r["clicks"])
                    r["clicks"] -= invalid
                late = round(rng.uniform(0.5, 3.0), 2)
                r["conversions"] = round(r["conversions"] + late, 2)
                r["conversionsValue"] = round(r["conversionsValue"] + late * rng.uniform(20, 200), 2)
                out["changed"].append((cid, r["campaign"]["id"], r["date"]))
            camp_id = str(rng.randint(10**9, 10**10))
            impressions = rng.randint(100, 2000)
            clicks = int(impressions * rng.uniform(0.01, 0.08))
            rows.append(
                {
                    "customer": dict(recent[0]["customer"]),
                    "campaign": {"id": camp_id, "name": f"Late {camp_id[-4:]}"},
                    "date": last.isoformat(),
                    "impressions": impressions,
                    "clicks": clicks,
                    "costMicros": clicks * rng.randint(300_000, 2_500_000),
                    "conversions": round(clicks * 0.05, 2),
                    "conversionsValue": round(clicks * 0.05 * 90, 2),
                }
            )
            out["added"].append((cid, camp_id, last.isoformat()))
            untouched = [r for r in recent if r not in revised] or recent
            for r in rng.sample(untouched, min(drop, len(untouched))):
                rows.remove(r)
                out["dropped"].append((cid, r["campaign"]["id"], r["date"]))
        return out

    # -- protocol ------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        family, enum, state = {
            401: ("authenticationError", "OAUTH_TOKEN_INVALID", "UNAUTHENTICATED"),
            403: ("authorizationError", "USER_PERMISSION_DENIED", "PERMISSION_DENIED"),
            429: ("quotaError", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"),
            400: ("queryError", "UNRECOGNIZED_FIELD", "INVALID_ARGUMENT"),
        }.get(status, ("internalError", "INTERNAL_ERROR", "INTERNAL"))
        return self.failure(status, state, family, enum, message)

    def failure(self, code: int, status: str, family: str, enum: str, message: str, **details: Any) -> Any:
        error: dict[str, Any] = {"errorCode": {family: enum}, "message": message}
        if details:
            error["details"] = details
        top = {
            401: "Request had invalid authentication credentials.",
            429: "Resource has been exhausted (e.g. check quota).",
        }.get(code, message)
        return [
            {
                "error": {
                    "code": code,
                    "message": top,
                    "status": status,
                    "details": [
                        {
                            "@type": f"type.googleapis.com/google.ads.googleads.{API_VERSION}.errors.GoogleAdsFailure",
                            "errors": [error],
                            "requestId": uuid.UUID(int=self.rng.getrandbits(128)).hex[:22],
                        }
                    ],
                }
            }
        ]

    def quota_exhausted(self, retry_seconds: int = 30) -> Any:
        return self.failure(
            429,
            "RESOURCE_EXHAUSTED",
            "quotaError",
            "RESOURCE_TEMPORARILY_EXHAUSTED",
            "Too many requests. Retry in 30 seconds.",
            quotaErrorDetails={
                "rateScope": "ACCOUNT",
                "rateName": "Requests per service per method",
                "retryDelay": f"{retry_seconds}s",
            },
        )

    def refusal_body(self, refusal: Refusal) -> Any:
        """The 429 Google sends for a quota: ``quotaError`` and ``quotaErrorDetails`` with ``retryDelay``."""
        return self.failure(
            429,
            "RESOURCE_EXHAUSTED",
            "quotaError",
            refusal.error,
            f"Too many requests. Retry in {refusal.retry_seconds} seconds.",
            quotaErrorDetails={
                "rateScope": refusal.scope,
                "rateName": refusal.name,
                "retryDelay": f"{refusal.retry_seconds}s",
            },
        )

    @route("POST", r"/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
            or form.get("client_secret") != self.client_secret
        ):
            return self.json({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, 400)
        token = f"ya29.fake-{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        self.issued.add(token)
        return self.json(
            {
                "access_token": token,
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/adwords",
                "token_type": "Bearer",
            }
        )

    def expire_tokens(self) -> bool:
        """Expire every issued access token (the client must refresh)."""
        self.issued.clear()
        return True

    @route("POST", r"/v(?P<version>\d+)/customers/(?P<cid>\d+)/googleAds:searchStream")
    def search_stream(self, request: FakeRequest) -> FakeResponse:
        auth = request.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in self.issued:
            return self.json(self.error_body(401, "Oauth token is invalid."), 401)
        if request.header("developer-token") != self.developer_token:
            return self.json(
                self.failure(
                    401,
                    "UNAUTHENTICATED",
                    "authenticationError",
                    "DEVELOPER_TOKEN_INVALID",
                    "The developer token is not valid.",
                ),
                401,
            )
        cid = request.params["cid"]
        if cid not in self.rows:
            return self.json(
                self.failure(
                    403,
                    "PERMISSION_DENIED",
                    "authorizationError",
                    "USER_PERMISSION_DENIED",
                    f"User doesn't have permission to access customer {cid}.",
                ),
                403,
            )
        refusal = self.quota.admit(cid) if self.quota is not None else None
        if refusal is not None:
            return self.json(self.refusal_body(refusal), 429)
        query = (request.json() or {}).get("query", "")
        parsed = re.match(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)", query, re.S | re.I)
        between = re.search(r"segments\.date BETWEEN '(\d{4}-\d{2}-\d{2})' AND '(\d{4}-\d{2}-\d{2})'", query)
        resource = parsed[2] if parsed else ""
        selected = [camel(f.strip()) for f in parsed[1].split(",")] if parsed else []
        segmented = "segments.date" in selected
        needs_range = resource == "campaign" or segmented
        if not parsed or resource not in ("campaign", "customer") or (needs_range and not between):
            return self.json(
                self.failure(
                    400,
                    "INVALID_ARGUMENT",
                    "queryError",
                    "PROHIBITED_FIELD_IN_SELECT_CLAUSE",
                    "Error in query: unexpected input.",
                ),
                400,
            )
        if resource == "customer" and any(f.startswith("metrics.") for f in selected):
            full = self._account_report(cid, between.groups() if between else None, segmented)
        elif resource == "customer":
            full = [{"customer": self._account(cid)}]
        else:
            low, high = between.groups()
            rows = [r for r in self.rows[cid] if low <= r["date"] <= high]
            rows.sort(key=lambda r: (r["date"], r["campaign"]["id"]))
            full = [self._row(cid, r) for r in rows]
        results = [project(row, selected, resource, self.omit if resource == "campaign" else ()) for row in full]
        mask = ",".join(selected)
        chunks = []
        for i in range(0, len(results), self.chunk_rows):
            chunks.append(
                {
                    "results": results[i : i + self.chunk_rows],
                    "fieldMask": mask,
                    "requestId": uuid.UUID(int=self.rng.getrandbits(128)).hex[:22],
                }
            )
        if not chunks:
            chunks.append({"fieldMask": mask, "requestId": uuid.UUID(int=self.rng.getrandbits(128)).hex[:22]})
        chunks[-1]["queryResourceConsumption"] = str(len(results) * 3 + 100)
        return self.json(chunks)

    def _account(self, cid: str) -> dict[str, Any]:
        currency, zone = self.accounts[cid]
        return {"resourceName": f"customers/{cid}", "id": cid, "currencyCode": currency, "timeZone": zone}

    def _account_report(self, cid: str, window: tuple[str, str] | None, by_date: bool) -> list[dict[str, Any]]:
        """The account's statistics: the sums of its campaign rows, per date or over the range."""
        low, high = window or ("0000-00-00", "9999-99-99")
        sums: dict[str, dict[str, Any]] = {}
        for r in self.rows[cid]:
            if low <= r["date"] <= high:
                day = sums.setdefault(r["date"] if by_date else "", dict.fromkeys(METRICS, 0))
                for name in METRICS:
                    day[name] += r[name]
        if not by_date and not sums:
            sums[""] = dict.fromkeys(METRICS, 0)  # an unsegmented report has its one row
        out = []
        for day in sorted(sums):
            metrics = sums[day]
            if self.totals_bias and not out:
                bias = self.totals_bias
                metrics = {
                    **metrics,
                    "impressions": metrics["impressions"] + bias,
                    "clicks": metrics["clicks"] + bias,
                    "costMicros": metrics["costMicros"] + bias * 1_000_000,
                }
            if by_date and not any(metrics.values()):
                continue  # all selected metrics zero: no row for that date
            row = {"customer": self._account(cid), "metrics": wire_metrics(metrics)}
            if by_date:
                row["segments"] = {"date": day}
            out.append(row)
        return out

    @staticmethod
    def _row(cid: str, r: dict[str, Any]) -> dict[str, Any]:
        metrics = wire_metrics(r)
        camp = r["campaign"]
        return {
            "customer": {
                "resourceName": f"customers/{cid}",
                "id": cid,
                "currencyCode": r["customer"]["currencyCode"],
                "timeZone": r["customer"]["timeZone"],
            },
            "campaign": {
                "resourceName": f"customers/{cid}/campaigns/{camp['id']}",
                "id": camp["id"],
                "name": camp["name"],
            },
            "metrics": metrics,
            "segments": {"date": r["date"]},
        }


METRICS = ("impressions", "clicks", "costMicros", "conversions", "conversionsValue")


def wire_metrics(values: dict[str, Any]) -> dict[str, Any]:
    """Metrics as searchStream sends them: int64 as strings, doubles as numbers, zeros left out."""
    metrics: dict[str, Any] = {}
    for name in ("impressions", "clicks", "costMicros"):
        if values[name]:
            metrics[name] = str(values[name])
    for name in ("conversions", "conversionsValue"):
        if values[name]:
            metrics[name] = round(values[name], 2)
    return metrics


def camel(field: str) -> str:
    """A GAQL field (``metrics.cost_micros``) as the JSON path of its value (``metrics.costMicros``)."""
    return ".".join(p.split("_")[0] + "".join(w.title() for w in p.split("_")[1:]) for p in field.split("."))


def project(row: dict[str, Any], selected: list[str], resource: str, omit: tuple[str, ...]) -> dict[str, Any]:
    """``row`` cut down to the selected fields, each object with its ``resourceName``; the FROM
    resource's ``resourceName`` is always there. Objects named in ``omit`` are dropped."""
    out: dict[str, dict[str, Any]] = {}
    keep = {resource: {"resourceName"}}
    for path in selected:
        head, _, leaf = path.partition(".")
        keep.setdefault(head, {"resourceName"}).add(leaf)
    for head, leaves in keep.items():
        values = {k: v for k, v in (row.get(head) or {}).items() if k in leaves}
        if values and head not in omit:
            out[head] = values
    return out
