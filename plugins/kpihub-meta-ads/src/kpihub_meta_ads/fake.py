"""A fake Meta Marketing API (insights, ad accounts, async report runs) on 127.0.0.1.

Shapes (developers.facebook.com/docs/marketing-api/insights, Airbyte's
source-facebook-marketing unit-test fixtures, kpihub's shared API notes):

* ``GET /v{N}.0/act_{id}/insights?fields=…&level=campaign&time_increment=1&
  time_range={"since":…,"until":…}&limit=…`` → ``{data: [...], paging: {cursors:
  {before, after}, next?}}``; the last page has cursors but no ``next``.
* Every number is a string (``impressions: "185"``, ``spend: "14.35"`` in the
  account currency); ``actions`` / ``action_values`` are ``[{action_type,
  value}]`` and are left out when empty; ``date_start`` = ``date_stop`` with
  ``time_increment=1``, in the ad account's time zone; no delivery, no row.
* Cursors are base64 (``"MAZDZD"``). Paging follows ``paging.next``, a full URL.
* ``level=account`` aggregates the account's rows: one row over the whole ``time_range``
  unless ``time_increment`` is given. Stats of a parent include every child "no matter if the
  child is active, archived, or deleted", but ``act_{id}/insights?level=ad`` "does not return
  stats for the deleted object" unless asked for with an ``ad.effective_status`` filter
  (developers.facebook.com/documentation/ads-commerce/marketing-api/best-practices/
  manage-your-ad-object-status; archived objects are not returned as edges without a filter
  either: developers.facebook.com/ads/blog/post/2014/09/24/deleted-vs-archived). So here
  ``level=campaign`` leaves out the rows of campaigns whose status (``set_status``) is
  ``DELETED`` or ``ARCHIVED`` unless ``filtering=[{"field": "ad.effective_status" (or
  ``campaign.effective_status``), "operator": "IN", "value": [...]}]`` names that status,
  while ``level=account`` counts them. ``totals_bias`` makes the account level disagree.
* ``GET /v{N}.0/act_{id}?fields=currency,timezone_name,name`` describes the account.
* Async: ``POST /act_{id}/insights`` → ``{report_run_id}``; ``GET /{id}`` →
  ``{id, async_status: "Job Running"|"Job Completed"|…, async_percent_completion}``;
  ``GET /{id}/insights`` pages the result.
* Errors: ``{error: {message, type: "OAuthException", code, error_subcode?,
  is_transient?, fbtrace_id}}``; throttling comes as HTTP 400 with codes 17,
  613, 80000 … and usage headers such as ``X-Business-Use-Case-Usage``.
* Rate limits (:class:`~kpihub_meta_ads.fake_limits.MetaLimits`, off unless given; clock-injectable):
  the business use case buckets per ad account and hour, the ad account's API-level score, their
  usage headers on every answer and Meta's throttle errors (sources in that module).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub_meta_ads.fake_limits import MetaLimits

__all__ = ["FakeMetaAds", "MetaLimits"]

ACCOUNTS = {"101010101": ("EUR", "Europe/Oslo"), "202020202": ("SEK", "Europe/Stockholm")}


def cursor(n: int) -> str:
    """Meta's cursor style: base64 with each ``=`` written ``ZD`` ("MAZDZD" is 0)."""
    return base64.b64encode(str(n).encode()).decode().replace("=", "ZD")


def uncursor(text: str) -> int:
    return int(base64.b64decode(text.replace("ZD", "=")).decode())


class FakeMetaAds(FakeAPIServer):
    paging = (Paging(r"/v\d+\.0/(act_\d+|6\d{12})/insights", records="data", param="after", next_link="paging.next"),)

    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.date = dt.date(2026, 1, 1),
        end: dt.date = dt.date(2026, 6, 30),
        token: str = "EAAfakeMetaToken123456",
        polls_until_done: int = 2,
        accounts: dict[str, tuple[str, str]] | None = None,
        campaign_names: list[str] | None = None,
        limits: MetaLimits | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.token = token
        self.limits = limits
        self._usage: dict[str, str] = {}  # the usage headers of the request being answered
        self._revisions = random.Random(seed * 7919 + 1)  # restate(): its own stream, apart from the data
        self.polls_until_done = polls_until_done
        #: Effective status of a campaign (and of its ads, which inherit it); ACTIVE unless set.
        self.campaign_status: dict[str, str] = {}
        #: Added to ``level=account`` rows: that many impressions and clicks, and that much spend
        #: (account currency), the campaign rows do not have.
        self.totals_bias = 0
        self.reports: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        rng = random.Random(seed)
        self.accounts = accounts or ACCOUNTS
        for acct, (currency, _) in self.accounts.items():
            names = campaign_names or [f"{n} {acct[:3]}" for n in ("Prospecting", "Retarget")]
            campaigns = [(str(rng.randint(10**16, 10**17)), name) for name in names]
            rows = []
            day = start
            while day <= end:
                for cid, name in campaigns:
                    if rng.random() < 0.1:
                        continue  # no delivery that day: no row
                    impressions = rng.randint(100, 9000)
                    clicks = int(impressions * rng.uniform(0.005, 0.03))
                    spend = round(impressions * rng.uniform(0.002, 0.012), 2)
                    purchases = int(clicks * rng.uniform(0, 0.08))
                    row: dict[str, Any] = {
                        "account_id": acct,
                        "account_currency": currency,
                        "campaign_id": cid,
                        "campaign_name": name,
                        "impressions": str(impressions),
                        "clicks": str(clicks),
                        "spend": f"{spend:.2f}",
                        "date_start": day.isoformat(),
                        "date_stop": day.isoformat(),
                    }
                    if clicks:
                        row["actions"] = [{"action_type": "link_click", "value": str(clicks)}]
                        if purchases:
                            row["actions"].append(
                                {"action_type": "offsite_conversion.fb_pixel_purchase", "value": str(purchases)}
                            )
                            row["action_values"] = [
                                {
                                    "action_type": "offsite_conversion.fb_pixel_purchase",
                                    "value": f"{purchases * rng.uniform(30, 90):.2f}",
                                }
                            ]
                    rows.append(row)
                day += dt.timedelta(days=1)
            self.rows[acct] = rows

    # -- changes (incremental tests) --------------------------------------------------

    def set_status(self, campaign_id: str, status: str) -> None:
        """Give a campaign an effective status (``DELETED``, ``ARCHIVED``, ``PAUSED`` ...)."""
        self.campaign_status[campaign_id] = status

    def restate(self, days: int = 2, fraction: float = 0.3, drop: int = 0) -> dict[str, list[tuple[str, str, str]]]:
        """Revise each account's last ``days`` days the way Meta revises recent insights.

        A conversion is credited to the ad interaction for as long as its attribution window
        lasts: "1 day after clicking the ad" up to 28 days after a click
        (``action_attribution_windows``, developers.facebook.com/docs/marketing-api/reference/
        ads-action-stats; developers.facebook.com/blog/post/2025/10/16/ads-insights-api-metric-
        availability-updates), and estimated metrics "may evolve as we gather more data"
        (developers.facebook.com/docs/marketing-api/reference/ad-account/insights). So on those
        days ``fraction`` of the rows (at least one) get late purchases (``actions`` /
        ``action_values``), and a campaign whose delivery was reported late gets a row on the
        last day. ``drop`` rows of those days disappear (only an engine that replaces its re-read
        window removes them). Returns the (account, campaign id, date) keys ``changed``,
        ``added`` and ``dropped``.
        """
        rng = self._revisions
        purchase = "offsite_conversion.fb_pixel_purchase"
        out: dict[str, list[tuple[str, str, str]]] = {"changed": [], "added": [], "dropped": []}
        for acct, rows in self.rows.items():
            if not rows:
                continue
            last = dt.date.fromisoformat(max(r["date_start"] for r in rows))
            recent_days = {(last - dt.timedelta(days=i)).isoformat() for i in range(days)}
            recent = [r for r in rows if r["date_start"] in recent_days]
            revised = rng.sample(recent, max(1, round(len(recent) * fraction)))
            for r in revised:
                late = rng.randint(1, 3)
                actions = {a["action_type"]: int(a["value"]) for a in r.get("actions", [])}
                actions[purchase] = actions.get(purchase, 0) + late
                values = {a["action_type"]: float(a["value"]) for a in r.get("action_values", [])}
                values[purchase] = values.get(purchase, 0.0) + late * rng.uniform(30, 90)
                r["actions"] = [{"action_type": k, "value": str(v)} for k, v in actions.items()]
                r["action_values"] = [{"action_type": k, "value": f"{v:.2f}"} for k, v in values.items()]
                out["changed"].append((acct, r["campaign_id"], r["date_start"]))
            campaign_id = str(rng.randint(10**16, 10**17))
            impressions = rng.randint(100, 9000)
            clicks = int(impressions * rng.uniform(0.005, 0.03))
            rows.append(
                {
                    **{k: recent[0][k] for k in ("account_id", "account_currency")},
                    "campaign_id": campaign_id,
                    "campaign_name": f"Late {campaign_id[-4:]}",
                    "impressions": str(impressions),
                    "clicks": str(clicks),
                    "spend": f"{impressions * rng.uniform(0.002, 0.012):.2f}",
                    "date_start": last.isoformat(),
                    "date_stop": last.isoformat(),
                }
            )
            out["added"].append((acct, campaign_id, last.isoformat()))
            untouched = [r for r in recent if r not in revised] or recent
            for r in rng.sample(untouched, min(drop, len(untouched))):
                rows.remove(r)
                out["dropped"].append((acct, r["campaign_id"], r["date_start"]))
        return out

    # -- protocol ---------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        code = {400: 100, 401: 190, 403: 200, 429: 17}.get(status, 1)
        error: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": f"A{self.rng.getrandbits(64):X}",
        }
        if code == 17:
            error.update(
                {"message": "(#17) User request limit reached", "error_subcode": 2446079, "is_transient": True}
            )
        return {"error": error}

    def throttle_body(self) -> Any:
        return {
            "error": {
                "message": "(#80000) There have been too many calls from this ad-account. Wait a bit and try again.",
                "type": "OAuthException",
                "code": 80000,
                "error_subcode": 2446079,
                "fbtrace_id": "AbCdEf123",
            }
        }

    @staticmethod
    def usage_header(minutes: int) -> dict[str, str]:
        usage = {
            "101010101": [
                {
                    "type": "ads_insights",
                    "call_count": 100,
                    "total_cputime": 40,
                    "total_time": 60,
                    "estimated_time_to_regain_access": minutes,
                    "ads_api_access_tier": "standard_access",
                }
            ]
        }
        return {"X-Business-Use-Case-Usage": orjson.dumps(usage).decode()}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        token = request.query.get("access_token") or (request.header("authorization") or "")[7:]
        if token == self.token:
            return self._admit(request)
        body = {
            "error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": "AzZfake",
            }
        }
        return self.json(body, 400)

    def _admit(self, request: FakeRequest) -> FakeResponse | None:
        """Count the call against its ad account's limits: Meta's throttle error, or ``None`` (answer it)."""
        if self.limits is None:
            return None
        counted = self._use_case(request.path)
        if counted is None:
            return None
        status, error, self._usage = self.limits.admit(*counted)
        return self.json(error, status) if status != 200 else None

    def _use_case(self, path: str) -> tuple[str, str] | None:
        """The (ad account, use case) a call counts in; ``None`` for one that names no known account."""
        m = re.fullmatch(r"/v\d+\.0/(?:act_(\d+)(/insights)?|(6\d{12})(?:/insights)?)", path)
        if m is None:
            return None
        acct = m.group(1) or self.reports.get(m.group(3) or "", {}).get("account")
        if acct not in self.accounts:
            return None
        return acct, "ads_management" if m.group(1) and not m.group(2) else "ads_insights"

    def json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:  # type: ignore[override]
        """Every answer to a counted call carries its usage headers, as Meta's do."""
        usage, self._usage = self._usage, {}
        return FakeAPIServer.json(data, status, {**usage, **(headers or {})})

    # -- endpoints -----------------------------------------------------------------------

    @route("GET", r"/v(?P<v>\d+)\.0/act_(?P<acct>\d+)")
    def account(self, request: FakeRequest) -> FakeResponse:
        acct = request.params["acct"]
        if acct not in self.accounts:
            return self.json(
                {
                    "error": {
                        "message": f"Unsupported get request. Object with ID 'act_{acct}' does not exist",
                        "type": "GraphMethodException",
                        "code": 100,
                        "error_subcode": 33,
                        "fbtrace_id": "Afake",
                    }
                },
                400,
            )
        currency, zone = self.accounts[acct]
        return self.json({"currency": currency, "timezone_name": zone, "name": f"Account {acct}", "id": f"act_{acct}"})

    def _select(self, acct: str, params: dict[str, str]) -> list[dict[str, Any]] | FakeResponse:
        if acct not in self.accounts:
            return self.json(self.error_body(400, f"(#100) act_{acct} is not a valid ad account"), 400)
        try:
            window = orjson.loads(params.get("time_range", "{}"))
            since, until = window["since"], window["until"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self.json(self.error_body(400, "(#100) time_range must be {since, until}"), 400)
        level = params.get("level")
        if level == "account" and params.get("time_increment", "all_days") == "all_days":
            return self._account_rows(acct, since, until, set(params.get("fields", "").split(",")))
        if level != "campaign" or params.get("time_increment") != "1":
            return self.json(
                self.error_body(400, "(#100) this fake serves level=campaign, time_increment=1 or level=account"), 400
            )
        shown = self._statuses(params.get("filtering"))
        if isinstance(shown, FakeResponse):
            return shown
        fields = set(params.get("fields", "").split(","))
        rows = [
            r
            for r in self.rows[acct]
            if since <= r["date_start"] <= until and self.campaign_status.get(r["campaign_id"], "ACTIVE") in shown
        ]
        return [{k: v for k, v in r.items() if k in fields or k in ("date_start", "date_stop")} for r in rows]

    def _statuses(self, filtering: str | None) -> set[str] | FakeResponse:
        """The campaign statuses a ``level=campaign`` request sees: live ones, or those its filter names."""
        live = {"ACTIVE", "PAUSED", "IN_PROCESS", "WITH_ISSUES"}
        if not filtering:
            return live
        try:
            filters = orjson.loads(filtering)
            (status,) = [f for f in filters if f["field"] in ("ad.effective_status", "campaign.effective_status")]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self.json(self.error_body(400, "(#100) filtering must hold one effective_status filter"), 400)
        if status.get("operator") != "IN" or not isinstance(status.get("value"), list):
            return self.json(self.error_body(400, "(#100) Filter operator must be IN with a list of statuses"), 400)
        return set(status["value"])

    def _account_rows(self, acct: str, since: str, until: str, fields: set[str]) -> list[dict[str, Any]]:
        """``level=account`` over the whole range: every campaign's rows, whatever its status."""
        rows = [r for r in self.rows[acct] if since <= r["date_start"] <= until]
        if not rows:
            return []  # no delivery, no row
        bias = self.totals_bias
        actions: dict[str, int] = {}
        values: dict[str, float] = {}
        for r in rows:
            for a in r.get("actions", []):
                actions[a["action_type"]] = actions.get(a["action_type"], 0) + int(a["value"])
            for a in r.get("action_values", []):
                values[a["action_type"]] = values.get(a["action_type"], 0.0) + float(a["value"])
        spend = sum((Decimal(r["spend"]) for r in rows), Decimal(0)) + bias
        row: dict[str, Any] = {
            "account_id": acct,
            "account_currency": self.accounts[acct][0],
            "impressions": str(sum(int(r["impressions"]) for r in rows) + bias),
            "clicks": str(sum(int(r["clicks"]) for r in rows) + bias),
            "spend": f"{spend:.2f}",
            "actions": [{"action_type": k, "value": str(v)} for k, v in actions.items()],
            "action_values": [{"action_type": k, "value": f"{v:.2f}"} for k, v in values.items()],
            "date_start": since,
            "date_stop": until,
        }
        return [{k: v for k, v in row.items() if (k in fields and v != []) or k in ("date_start", "date_stop")}]

    def _page(self, rows: list[dict[str, Any]], request: FakeRequest, path: str) -> FakeResponse:
        limit = int(request.query.get("limit", "25"))
        start = uncursor(request.query["after"]) + 1 if request.query.get("after") else 0
        page = rows[start : start + limit]
        paging: dict[str, Any] = {"cursors": {"before": cursor(start), "after": cursor(start + len(page) - 1)}}
        if start + limit < len(rows):
            query = {k: v for k, v in request.query.items() if k != "after"}
            query["after"] = paging["cursors"]["after"]
            paging["next"] = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        return self.json({"data": page, "paging": paging})

    @route("GET", r"/v(?P<v>\d+)\.0/act_(?P<acct>\d+)/insights")
    def insights(self, request: FakeRequest) -> FakeResponse:
        rows = self._select(request.params["acct"], request.query)
        return rows if isinstance(rows, FakeResponse) else self._page(rows, request, request.path)

    @route("POST", r"/v(?P<v>\d+)\.0/act_(?P<acct>\d+)/insights")
    def start_report(self, request: FakeRequest) -> FakeResponse:
        params = {**request.query, **dict(urllib.parse.parse_qsl(request.body.decode()))}
        rows = self._select(request.params["acct"], params)
        if isinstance(rows, FakeResponse):
            return rows
        run_id = str(6_000_000_000_000 + len(self.reports))
        self.reports[run_id] = {"rows": rows, "polls": 0, "account": request.params["acct"]}
        return self.json({"report_run_id": run_id})

    @route("GET", r"/v(?P<v>\d+)\.0/(?P<run>6\d{12})")
    def report_status(self, request: FakeRequest) -> FakeResponse:
        report = self.reports.get(request.params["run"])
        if report is None:
            return self.json(self.error_body(400, "(#100) unknown report run"), 400)
        report["polls"] += 1
        done = report["polls"] >= self.polls_until_done
        return self.json(
            {
                "id": request.params["run"],
                "async_status": "Job Completed" if done else "Job Running",
                "async_percent_completion": 100 if done else 50,
            }
        )

    @route("GET", r"/v(?P<v>\d+)\.0/(?P<run>6\d{12})/insights")
    def report_rows(self, request: FakeRequest) -> FakeResponse:
        report = self.reports.get(request.params["run"])
        if report is None:
            return self.json(self.error_body(400, "(#100) unknown report run"), 400)
        return self._page(report["rows"], request, request.path)
