"""A fake LinkedIn Marketing API (adAnalytics, ad accounts, campaigns) on 127.0.0.1.

Shapes (learn.microsoft.com/linkedin/marketing/integrations/ads-reporting/ads-reporting,
Airbyte's source-linkedin-ads unit-test responses, kpihub's shared API notes):

* ``GET /rest/adAnalytics?q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY&dateRange=
  (start:(year:2024,month:6,day:1),end:(year:2024,month:6,day:30))&accounts=
  List(urn%3Ali%3AsponsoredAccount%3A123)&fields=…`` — Rest.li 2.0 syntax: the
  URNs inside ``List(...)`` are URL-encoded, the structure's parentheses and
  colons are not. Headers ``LinkedIn-Version: YYYYMM`` and
  ``X-Restli-Protocol-Version: 2.0.0``.
* ``{paging: {start, count, links: []}, elements: [{pivotValues:
  ["urn:li:sponsoredCampaign:…"], dateRange: {start: {year, month, day}, end: …},
  impressions, clicks, costInLocalCurrency: "<decimal string>", …}]}`` — counts are
  JSON ints, costs decimal strings (possibly long), dates UTC and not zero-padded.
  No pagination; no activity gives no elements.
* ``pivot=ACCOUNT`` groups the same data by account, ``timeGranularity=ALL`` into "a single
  result across the entire time range of the report" (the analytics finder's pivots and
  granularities: learn.microsoft.com/linkedin/marketing/integrations/ads-reporting/ads-reporting).
  Only demographic metrics are approximated for privacy ("adding campaign level data and
  comparing it to account-level data" differs only for them: LinkedIn's data-accuracy note as
  quoted at help.alliplatform.com/reporting/Working-version/linkedin-datasource; "otherwise, the
  data will always be accurate": sprinklr.com/help/articles/linkedin-advanced-capabilities/
  minimize-inconsistency-in-linkedin-demographics-data), so account rows are the exact sums of
  campaign rows here. A group with a row whose cost is unknown has
  no ``costInLocalCurrency`` either; ``totals_bias`` makes account rows disagree.
* ``GET /rest/adAccounts/{id}`` → ``{id, name, currency, status, …}``;
  ``GET /rest/adAccounts/{id}/adCampaigns?q=search`` → ``{elements: [{id, name, …}]}``.
* Errors ``{status, serviceErrorCode, code, message}``: 401 ``INVALID_ACCESS_TOKEN``
  (65600), 426 ``NONEXISTENT_VERSION``, 429 ``TOO_MANY_REQUESTS`` (101).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
from decimal import Decimal
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

__all__ = ["FakeLinkedInAds"]

ACCOUNTS = {"507123456": "EUR", "508654321": "USD"}
_DATE = re.compile(r"\(start:\(year:(\d+),month:(\d+),day:(\d+)\),end:\(year:(\d+),month:(\d+),day:(\d+)\)\)")


class FakeLinkedInAds(FakeAPIServer):
    # Campaign search pages by cursor (adAnalytics does not page).
    paging = (
        Paging(
            r"/rest/adAccounts/\d+/adCampaigns", records="elements", param="pageToken", next="metadata.nextPageToken"
        ),
    )

    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.date = dt.date(2026, 1, 1),
        end: dt.date = dt.date(2026, 6, 30),
        token: str = "AQVfakeLinkedInToken42",
        version: str = "202610",
        accounts: dict[str, str] | None = None,
        campaign_names: list[str] | None = None,
        uncosted: float = 0.0,
    ) -> None:
        """``uncosted``: the share of rows whose ``costInLocalCurrency`` LinkedIn leaves out."""
        super().__init__(seed=seed)
        self.token = token
        self.version = version
        #: Added to ``pivot=ACCOUNT`` elements: that many impressions and clicks, and that much cost
        #: (account currency), the campaign rows do not have.
        self.totals_bias = 0
        self._revisions = random.Random(seed * 7919 + 1)  # restate(): its own stream, apart from the data
        rng = random.Random(seed)
        self.accounts = accounts or ACCOUNTS
        self.campaigns: dict[str, list[tuple[int, str]]] = {
            acct: [
                (rng.randint(10**8, 10**9), name)
                for name in campaign_names or [f"{n} {acct[-3:]}" for n in ("Awareness", "Lead gen", "ABM")]
            ]
            for acct in self.accounts
        }
        self.rows: dict[str, list[dict[str, Any]]] = {acct: [] for acct in self.accounts}
        for acct, campaigns in self.campaigns.items():
            day = start
            while day <= end:
                for cid, _ in campaigns:
                    if rng.random() < 0.15:
                        continue
                    impressions = rng.randint(50, 5000)
                    clicks = int(impressions * rng.uniform(0.002, 0.02))
                    cost = impressions * rng.uniform(0.01, 0.06)
                    conversions = int(clicks * rng.uniform(0, 0.15))
                    self.rows[acct].append(
                        {
                            "campaign": cid,
                            "date": day,
                            "impressions": impressions,
                            "clicks": clicks,
                            # LinkedIn sends long decimal strings for money.
                            "cost": None
                            if uncosted and rng.random() < uncosted
                            else f"{cost:.2f}" + ("0000000000000335346" if rng.random() < 0.2 else ""),
                            "conversions": conversions,
                            "value": f"{conversions * rng.uniform(50, 300):.2f}",
                        }
                    )
                day += dt.timedelta(days=1)

    # -- changes (incremental tests) --------------------------------------------------

    def restate(self, days: int = 2, fraction: float = 0.3, drop: int = 0) -> dict[str, list[tuple[str, str, dt.date]]]:
        """Revise each account's last ``days`` days the way LinkedIn revises recent analytics.

        Conversions are attributed to the ad click or view they follow for the whole conversion
        window (1, 7, 30 or 90 days; linkedin.com/help/lms/answer/a426359), and invalid traffic
        is filtered out of clicks and impressions after the fact (linkedin.com/help/lms/answer/
        a1414205). So on those days ``fraction`` of the rows (at least one) get late conversions
        and lose a few invalid clicks, and a new campaign of the account gets a row on the last
        day. ``drop`` rows of those days disappear (only an engine that replaces its re-read
        window removes them). Returns the (account, campaign id, date) keys ``changed``,
        ``added`` and ``dropped``.
        """
        rng = self._revisions
        out: dict[str, list[tuple[str, str, dt.date]]] = {"changed": [], "added": [], "dropped": []}
        for acct, rows in self.rows.items():
            if not rows:
                continue
            last = max(r["date"] for r in rows)
            recent = [r for r in rows if (last - r["date"]).days < days]
            revised = rng.sample(recent, max(1, round(len(recent) * fraction)))
            for r in revised:
                r["clicks"] -= min(r["clicks"], rng.randint(1, 3))
                late = rng.randint(1, 3)
                r["conversions"] += late
                r["value"] = f"{float(r['value']) + late * rng.uniform(50, 300):.2f}"
                out["changed"].append((acct, str(r["campaign"]), r["date"]))
            campaign = rng.randint(10**8, 10**9)
            self.campaigns[acct].append((campaign, f"Late {str(campaign)[-4:]}"))
            impressions = rng.randint(50, 5000)
            rows.append(
                {
                    "campaign": campaign,
                    "date": last,
                    "impressions": impressions,
                    "clicks": int(impressions * 0.01),
                    "cost": f"{impressions * 0.03:.2f}",
                    "conversions": 1,
                    "value": "120.00",
                }
            )
            out["added"].append((acct, str(campaign), last))
            untouched = [r for r in recent if r not in revised] or recent
            for r in rng.sample(untouched, min(drop, len(untouched))):
                rows.remove(r)
                out["dropped"].append((acct, str(r["campaign"]), r["date"]))
        return out

    def error_body(self, status: int, message: str) -> Any:
        known = {
            401: (65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
            429: (
                101,
                "TOO_MANY_REQUESTS",
                "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            ),
            426: (None, "NONEXISTENT_VERSION", "Requested version 202001 is not active"),
        }
        service, code, text = known.get(status, (None, "SERVER_ERROR", message))
        body: dict[str, Any] = {"status": status, "code": code, "message": text if status in known else message}
        if service:
            body["serviceErrorCode"] = service
        return body

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") != f"Bearer {self.token}":
            return self.json(self.error_body(401, ""), 401)
        if request.header("linkedin-version") != self.version:
            return self.json(self.error_body(426, ""), 426)
        if request.header("x-restli-protocol-version") != "2.0.0":
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Rest.li 2.0.0 required"}, 400)
        return None

    @route("GET", r"/rest/adAccounts/(?P<acct>\d+)")
    def account(self, request: FakeRequest) -> FakeResponse:
        acct = request.params["acct"]
        if acct not in self.accounts:
            return self.json({"status": 404, "code": "NOT_FOUND", "message": f"Ad account {acct} not found"}, 404)
        return self.json(
            {
                "id": int(acct),
                "name": f"Account {acct}",
                "currency": self.accounts[acct],
                "status": "ACTIVE",
                "type": "BUSINESS",
                "reference": "urn:li:organization:1",
                "test": False,
            }
        )

    @route("GET", r"/rest/adAccounts/(?P<acct>\d+)/adCampaigns")
    def campaigns_of(self, request: FakeRequest) -> FakeResponse:
        acct = request.params["acct"]
        size = int(request.query.get("pageSize", "100"))
        if not 1 <= size <= 1000:
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "pageSize must be 1..1000"}, 400)
        # Cursor paging of search finders: an opaque nextPageToken, absent on the last page.
        start = int(base64.urlsafe_b64decode(request.query["pageToken"])) if request.query.get("pageToken") else 0
        elements = [
            {
                "id": cid,
                "name": name,
                "account": f"urn:li:sponsoredAccount:{acct}",
                "status": "ACTIVE",
                "type": "SPONSORED_UPDATES",
                "costType": "CPM",
            }
            for cid, name in self.campaigns.get(acct, [])
        ]
        metadata = {}
        if start + size < len(elements):
            metadata["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        page = elements[start : start + size]
        return self.json({"elements": page, "metadata": metadata, "paging": {"start": 0, "count": size, "links": []}})

    @route("GET", r"/rest/adAnalytics")
    def analytics(self, request: FakeRequest) -> FakeResponse:
        q = request.query
        pivot, granularity = q.get("pivot"), q.get("timeGranularity")
        if q.get("q") != "analytics" or pivot not in ("CAMPAIGN", "ACCOUNT") or granularity not in ("DAILY", "ALL"):
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid query parameters"}, 400)
        m = _DATE.fullmatch(q.get("dateRange", ""))
        accounts = re.fullmatch(r"List\((.*)\)", q.get("accounts", ""))
        if not m or not accounts:
            return self.json({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid dateRange/accounts"}, 400)
        low = dt.date(int(m[1]), int(m[2]), int(m[3]))
        high = dt.date(int(m[4]), int(m[5]), int(m[6]))
        # Rest.li projection: with ``fields=`` only the named fields come back.
        fields = set(q["fields"].split(",")) if q.get("fields") else None
        groups: dict[tuple[str, dt.date, dt.date], list[dict[str, Any]]] = {}
        for urn in accounts[1].split(","):
            acct = urn.rsplit(":", 1)[-1]
            for r in self.rows.get(acct, []):
                if low <= r["date"] <= high:
                    if pivot == "ACCOUNT":
                        value = f"urn:li:sponsoredAccount:{acct}"
                    else:
                        value = f"urn:li:sponsoredCampaign:{r['campaign']}"
                    days = (r["date"], r["date"]) if granularity == "DAILY" else (low, high)
                    groups.setdefault((value, *days), []).append(r)
        elements = []
        for (value, first, last), rows in groups.items():
            element = self._element(value, first, last, rows, self.totals_bias if pivot == "ACCOUNT" else 0)
            elements.append({k: v for k, v in element.items() if v is not None and (fields is None or k in fields)})
        return self.json({"paging": {"start": 0, "count": 10, "links": []}, "elements": elements})

    @staticmethod
    def _element(value: str, first: dt.date, last: dt.date, rows: list[dict[str, Any]], bias: int) -> dict[str, Any]:
        """One analytics element: the rows' sums (counts as ints, money as decimal strings)."""

        def day(d: dt.date) -> dict[str, int]:
            return {"year": d.year, "month": d.month, "day": d.day}

        def money(values: list[str | None], extra: int = 0) -> str | None:
            if any(v is None for v in values):
                return None  # a cost LinkedIn does not know: no total either
            total = sum((Decimal(v) for v in values), Decimal(0)) + extra  # type: ignore[arg-type]
            return values[0] if len(values) == 1 and not extra else str(total)

        return {
            "pivotValues": [value],
            "dateRange": {"start": day(first), "end": day(last)},
            "impressions": sum(r["impressions"] for r in rows) + bias,
            "clicks": sum(r["clicks"] for r in rows) + bias,
            "costInLocalCurrency": money([r["cost"] for r in rows], bias),
            "externalWebsiteConversions": sum(r["conversions"] for r in rows),
            "conversionValueInLocalCurrency": money([r["value"] for r in rows]),
        }
