"""A fake HubSpot on 127.0.0.1 speaking the CRM v3 wire format, with seeded demo data.

Shapes, from HubSpot's documentation (developers.hubspot.com) as collected in
kpihub's shared API notes:

* list ``GET /crm/v3/objects/{object}``: ``{results: [{id, properties, createdAt,
  updatedAt, archived}], paging?: {next: {after, link}}}``; ``after`` is the next
  record id; limit ≤ 100; ``paging`` absent on the last page
  (docs/api-reference/legacy/crm/objects/custom-objects/guide).
* search ``POST /crm/v3/objects/{object}/search``: body ``{filterGroups, sorts,
  properties, limit, after}``; response ``{total, results, paging?: {next:
  {after}}}``. From "Search the CRM"
  (developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm):
  ``limit`` defaults to 10, at most 200; ``after`` is an integer offset into the
  result (``paging.next.after``; no ``paging`` on the last page), so it is an
  offset into the *live* result: a record modified while a client pages moves
  in a result sorted by modification time and the records behind it shift;
  "limited to 10,000 total results for any given query. Attempting to page
  beyond 10,000 will result in a 400 error" (``after`` ≥ 10,000 here, as
  HubSpot/hubspot-api-nodejs#132 reports for ``after: 10000``; the 400 body is
  HubSpot's generic one, nango.dev/blog/fix-hubspot-api-400-there-was-a-problem-with-the-request,
  as the cap's own message is not documented); filter groups are ORed, filters
  in a group ANDed, "a maximum of five filterGroups with up to six filters in
  each group, with a maximum of 18 filters in total", beyond that a
  ``VALIDATION_ERROR``; "Only one sorting rule can be applied to any search"
  (the answer to two is not documented: this fake refuses it with a
  ``VALIDATION_ERROR``); without a sort, results come "in order of object
  creation (oldest first)"; archived records never appear; ``total`` counts
  every match. The order of records that tie on the sort property is not
  documented: this fake orders ties by a scrambled id, so a client cannot lean
  on an id order HubSpot never promised. Date filter values are
  epoch-millisecond strings.
* every property value is a string or null; ``id`` is a string; ``createdAt`` /
  ``updatedAt`` are ISO-8601 with milliseconds and ``Z``.
* ``GET /crm/v3/pipelines/deals``: ``{results: [{id, label, displayOrder, archived,
  createdAt, updatedAt, stages: [{id, label, displayOrder, metadata: {isClosed:
  "false", probability: "0.2"}, …}]}]}`` (metadata values are strings).
* ``POST /oauth/v2/private-apps/get/access-token-info`` with ``{tokenKey}``: ``{userId, hubId,
  appId, scopes}`` (the private-apps overview page); ``scopes`` is :attr:`FakeHubSpot.scopes`.
* feedback submissions (``/crm/v3/objects/feedback_submissions``, list and search as above; read-only,
  scope ``crm.objects.feedback_submissions.read``: HubSpot's OpenAPI spec in
  HubSpot/HubSpot-public-api-spec-collection ``PublicApiSpecs/CRM/Feedback Submissions``): properties as
  HubSpot's example submission has them (``hs_survey_type`` NPS / CSAT / CES / CUSTOM, ``hs_value`` on
  the survey's scale, ``hs_response_group``), plus ``hs_submission_timestamp`` and ``hs_contact_id``.
* ``GET /account-info/v3/details``: ``{portalId, timeZone, companyCurrency,
  additionalCurrencies, utcOffset, utcOffsetMilliseconds, uiDomain,
  dataHostingLocation, accountType}``.
* errors: ``{status: "error", message, correlationId, category}``; 401 category
  ``INVALID_AUTHENTICATION`` with HubSpot's "Authentication credentials not
  found…" message (docs/faq/api-error-responses, HubSpot community changelog);
  429 ``{status, message, errorType: "RATE_LIMIT", correlationId, policyName}``.
* rate-limit headers ``X-HubSpot-RateLimit-*`` on non-search endpoints only.
* limits (:class:`HubSpotLimits`, off unless given; clock-injectable): a rolling 10-second
  burst window (private apps: 100 per 10 s on Free/Starter, 190 on Professional/Enterprise,
  developers.hubspot.com/changelog/increasing-our-api-limits), a daily cap (250,000 /
  650,000 / 1,000,000 by tier; "The daily limit resets at midnight based on your time zone
  setting": :meth:`FakeHubSpot.new_day`), and the search API's own per-second limit (5 per
  second; search responses carry no rate-limit headers). Over a limit: 429 with
  ``policyName`` ``TEN_SECONDLY_ROLLING``, ``SECONDLY`` (search) or ``DAILY`` (HubSpot's
  documented example body: ``{"status": "error", "message": "You have reached your daily
  limit.", "errorType": "RATE_LIMIT", "correlationId", "policyName": "DAILY"}``). Refused
  requests do not count.

Data: contacts move through lifecycle stages with HubSpot's
``hs_lifecyclestage_<stage>_date`` properties; a deal is opened for contacts
that reach opportunity and is won when the contact becomes a customer.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

__all__ = ["FakeHubSpot", "HubSpotData", "HubSpotLimits"]


@dataclass
class HubSpotLimits:
    """The limits the fake enforces (a private app on Free/Starter by default) and what it counted."""

    burst: int = 100  # per rolling 10 seconds, every endpoint but search
    interval: float = 10.0
    daily: int = 250_000
    search_per_second: int = 5
    clock: Callable[[], float] = time.monotonic
    #: Answered 200 / refused with 429, for tests.
    served: int = 0
    refused: int = 0
    _burst: deque[float] = field(default_factory=deque)
    _search: deque[float] = field(default_factory=deque)
    _today: int = 0

    def admit(self, search: bool) -> str | None:
        """Count a request; the ``policyName`` of the limit it breaks, else ``None``."""
        now = self.clock()
        window, size, seconds = (
            (self._search, self.search_per_second, 1.0) if search else (self._burst, self.burst, self.interval)
        )
        while window and window[0] <= now - seconds:
            window.popleft()
        if self._today >= self.daily:
            policy: str | None = "DAILY"
        elif len(window) >= size:
            policy = "SECONDLY" if search else "TEN_SECONDLY_ROLLING"
        else:
            policy = None
            window.append(now)
            self._today += 1
        if policy:
            self.refused += 1
        else:
            self.served += 1
        return policy

    def headers(self) -> dict[str, str]:
        now = self.clock()
        while self._burst and self._burst[0] <= now - self.interval:
            self._burst.popleft()
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self._today)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.burst),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.burst - len(self._burst))),
        }


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DEFAULT_START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
DEFAULT_END = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)
DAY_MS = 86_400_000
SEARCH_CAP = 10_000  # results per search query
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18

CURSOR_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "feedback_submissions": "hs_lastmodifieddate",
}
DATE_PROPERTIES = {
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "closedate",
    "hs_createdate",
    "hs_submission_timestamp",
    "hs_lifecyclestage_subscriber_date",
    "hs_lifecyclestage_lead_date",
    "hs_lifecyclestage_marketingqualifiedlead_date",
    "hs_lifecyclestage_salesqualifiedlead_date",
    "hs_lifecyclestage_opportunity_date",
    "hs_lifecyclestage_customer_date",
}
DEFAULT_PROPERTIES = {
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
    "deals": [
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ],
    # The object's default properties (developers.hubspot.com/docs/api/crm/feedback-submissions).
    "feedback_submissions": ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
}
#: Survey type -> (scale, detractor top, passive top): HubSpot's sentiment groups
#: (knowledge.hubspot.com/customer-feedback/feedback-submission-properties).
SURVEYS = {"NPS": ((0, 10), 6, 8), "CSAT": ((0, 2), 0, 1), "CES": ((1, 7), 3, 5)}
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
SOURCES = [
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "PAID_SOCIAL",
    "SOCIAL_MEDIA",
    "EMAIL_MARKETING",
    "REFERRALS",
    "DIRECT_TRAFFIC",
]
PIPELINES = [
    {
        "id": "default",
        "label": "Sales Pipeline",
        "stages": [
            ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
            ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
            ("presentationscheduled", "Presentation Scheduled", "false", "0.6"),
            ("decisionmakerboughtin", "Decision Maker Bought-In", "false", "0.8"),
            ("contractsent", "Contract Sent", "false", "0.9"),
            ("closedwon", "Closed Won", "true", "1.0"),
            ("closedlost", "Closed Lost", "true", "0.0"),
        ],
    },
    {
        "id": "75e28846-ad0d-4be2-a027-5e1da6590b98",
        "label": "Partner Pipeline",
        "stages": [
            ("1033512", "Discovery", "false", "0.3"),
            ("1033513", "Won", "true", "1.0"),
            ("1033514", "Lost", "true", "0.0"),
        ],
    },
]

#: Sample targets for ``kpihub demo``: Q2 2026 against a Q1 baseline (data runs 2025-01 .. 2026-06).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "leads", "period": "2026-Q2", "baseline": 6200, "target": 7200},
    {"kpi": "mqls", "period": "2026-Q2", "baseline": 2800, "target": 3300},
    {"kpi": "sqls", "period": "2026-Q2", "baseline": 1250, "target": 1500},
    {"kpi": "mql_to_sql_rate", "period": "2026-Q2", "baseline": 46, "target": 48},
    {"kpi": "new_customers", "period": "2026-Q2", "baseline": 267, "target": 330},
    {"kpi": "win_rate", "period": "2026-Q2", "baseline": 44, "target": 47},
    {"kpi": "avg_deal_size", "period": "2026-Q2", "baseline": 5420, "target": 5600},
    {"kpi": "sales_cycle_days", "period": "2026-Q2", "baseline": 32, "target": 28},
    {"kpi": "won_revenue", "period": "2026-Q2", "baseline": 1370000, "target": 1650000},
]


def iso(ms: int | None) -> str | None:
    """HubSpot's timestamp format: ISO-8601, milliseconds, ``Z``."""
    if ms is None:
        return None
    return (EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(value: dt.datetime) -> int:
    return int((value - EPOCH).total_seconds() * 1000)


def tie(rid: int) -> int:
    """Where a record falls among records that tie on the sort property: not id order (undocumented)."""
    return (rid * 2654435761) % 4294967296  # Knuth's multiplicative hash: deterministic, scrambled


@dataclass
class Record:
    id: int
    props: dict[str, Any]
    created: int
    updated: int
    archived: bool = False

    def wire_bytes(self, properties: tuple[str, ...]) -> bytes:
        """The record's JSON, cached per property list (the fake must outrun the client)."""
        cache = self.__dict__.setdefault("_cache", {})
        if cache.get("_updated") != self.updated:
            cache.clear()
            cache["_updated"] = self.updated
        data = cache.get(properties)
        if data is None:
            data = cache[properties] = orjson.dumps(self.wire(properties))
        return data

    def wire(self, properties: Iterable[str]) -> dict[str, Any]:
        props = {"hs_object_id": str(self.id)}  # always present, asked for or not
        for name in properties:
            if name in self.props:
                value = self.props[name]
                props[name] = iso(value) if (name in DATE_PROPERTIES and isinstance(value, int)) else value
        return {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated),
            "archived": self.archived,
        }


@dataclass
class ObjectStore:
    """Records of one object type with a (cursor, id) index for search."""

    name: str
    records: dict[int, Record] = field(default_factory=dict)
    _index: list[tuple[int, int, int]] = field(default_factory=list)  # (cursor, tie, id)
    _ids: list[int] = field(default_factory=list)

    @property
    def cursor_property(self) -> str:
        return CURSOR_PROPERTY[self.name]

    def add(self, record: Record) -> None:
        self.records[record.id] = record

    def reindex(self) -> None:
        prop = self.cursor_property
        self._index = sorted((r.props[prop], tie(r.id), r.id) for r in self.records.values() if not r.archived)
        self._ids = sorted(self.records)

    def in_search_order(self) -> list[int]:
        """Ids of the searchable records as a search sorted by the cursor ascending returns them."""
        return [entry[-1] for entry in self._index]

    def cursor_bounds(self, filters: list[dict[str, Any]]) -> tuple[int, int]:
        """Index positions ``[lo, hi)`` of the records matching range filters on the cursor."""
        lo, hi = 0, len(self._index)
        for f in filters:
            value, op = _filter_value(f.get("value")), f.get("operator")
            if op == "GTE":
                lo = max(lo, bisect.bisect_left(self._index, (value, -1)))
            elif op == "GT":
                lo = max(lo, bisect.bisect_right(self._index, (value, math.inf)))
            elif op == "LT":
                hi = min(hi, bisect.bisect_left(self._index, (value, -1)))
            elif op == "LTE":
                hi = min(hi, bisect.bisect_right(self._index, (value, math.inf)))
        return lo, max(lo, hi)

    def by_cursor(self, low: int | None, high: int | None, low_inclusive: bool, high_inclusive: bool) -> list[int]:
        lo = 0
        if low is not None:
            lo = (
                bisect.bisect_left(self._index, (low, -1))
                if low_inclusive
                else bisect.bisect_right(self._index, (low, math.inf))
            )
        hi = len(self._index)
        if high is not None:
            hi = (
                bisect.bisect_right(self._index, (high, math.inf))
                if high_inclusive
                else bisect.bisect_left(self._index, (high, -1))
            )
        return [entry[-1] for entry in self._index[lo:hi]]


class HubSpotData:
    """Deterministic synthetic CRM data: contacts, companies, deals."""

    def __init__(
        self,
        *,
        seed: int = 7,
        contacts: int = 2_000,
        start: dt.datetime = DEFAULT_START,
        end: dt.datetime = DEFAULT_END,
        currency: str = "EUR",
        customer_email: Callable[[int], str] | None = None,
        feedback: int = 0,
    ) -> None:
        """``feedback``: feedback survey submissions, from their own random stream (the CRM data of a
        seed stays what it was without them)."""
        self.rng = random.Random(seed)
        self.start_ms, self.end_ms = to_ms(start), to_ms(end)
        self.clock_ms = self.end_ms
        self.currency = currency
        self.stores = {name: ObjectStore(name) for name in (*CURSOR_PROPERTY,)}
        self._next_id = {"contacts": 101, "companies": 5_000_001, "deals": 9_000_000_001, "feedback_submissions": 512}
        self._feedback_rng = random.Random(seed * 7919 + 17)
        n_companies = max(1, contacts // 5)
        for _ in range(n_companies):
            self._company()
        self._company_ids = sorted(self.stores["companies"].records)
        for _ in range(contacts):
            self._contact()
        if customer_email is not None:
            # The business's customers, in the order they became customers (the billing fake uses the same emails).
            customers = sorted(
                (r for r in self.stores["contacts"].records.values() if r.props["hs_lifecyclestage_customer_date"]),
                key=lambda r: (r.props["hs_lifecyclestage_customer_date"], r.id),
            )
            for i, record in enumerate(customers):
                record.props["email"] = customer_email(i)
        span = self.end_ms - self.start_ms
        for _ in range(feedback):  # more answers later, as there are more contacts later
            self._feedback(self.start_ms + int(span * math.sqrt(self._feedback_rng.random())))
        for store in self.stores.values():
            store.reindex()

    # -- generation -------------------------------------------------------------

    def _id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += self.rng.randint(1, 3)
        return value

    def _when(self) -> int:
        # Growth: more contacts later in the period (density ∝ t).
        span = self.end_ms - self.start_ms
        return self.start_ms + int(span * math.sqrt(self.rng.random()))

    def _company(self) -> None:
        rid = self._id("companies")
        created = self._when()
        modified = min(self.end_ms - self.rng.randint(1, DAY_MS), created + self.rng.randint(0, 90) * DAY_MS)
        props = {
            "name": f"Company {rid}",
            "domain": f"company{rid}.example",
            "industry": self.rng.choice(["COMPUTER_SOFTWARE", "RETAIL", "MARKETING_AND_ADVERTISING", "HOSPITALITY"]),
            "country": self.rng.choice(["Norway", "Sweden", "Denmark", "Finland", "Germany"]),
            "numberofemployees": str(self.rng.choice([5, 12, 40, 150, 800])),
            "annualrevenue": f"{self.rng.randint(1, 500) * 100000}",
            "createdate": created,
            "hs_lastmodifieddate": modified,
        }
        self.stores["companies"].add(Record(rid, props, created, modified))

    def _contact(self) -> None:
        rng = self.rng
        rid = self._id("contacts")
        created = self._when()
        dates: dict[str, int | None] = dict.fromkeys(STAGES)
        t = created
        first = "subscriber" if rng.random() < 0.3 else "lead"
        dates[first] = t
        reached = first
        chain = [
            ("marketingqualifiedlead", 0.45, 1, 20),
            ("salesqualifiedlead", 0.45, 2, 30),
            ("opportunity", 0.6, 1, 20),
            ("customer", 0.4, 5, 60),
        ]
        if first == "subscriber":
            chain.insert(0, ("lead", 0.5, 1, 30))
        for stage, p, lo, hi in chain:
            if rng.random() >= p:
                break
            t = t + rng.randint(lo, hi) * DAY_MS + rng.randint(0, DAY_MS - 1)
            if t >= self.end_ms:
                break
            # Some contacts skip the lead stage in the CRM (go straight to MQL).
            if not (stage == "lead" and rng.random() < 0.05):
                dates[stage] = t
            reached = stage
        modified = min(self.end_ms - rng.randint(1, DAY_MS), t + rng.randint(0, 5) * DAY_MS)
        companies = self._company_ids
        company_id = rng.choice(companies) if companies and rng.random() < 0.8 else None
        props: dict[str, Any] = {
            "email": f"contact{rid}@example.com",
            "firstname": f"First{rid % 997}",
            "lastname": f"Last{rid % 991}",
            "lifecyclestage": reached,
            "hs_analytics_source": rng.choice(SOURCES),
            "associatedcompanyid": str(company_id) if company_id else None,
            "createdate": created,
            "lastmodifieddate": modified,
        }
        for stage in STAGES:
            props[f"hs_lifecyclestage_{stage}_date"] = dates[stage]
        self.stores["contacts"].add(Record(rid, props, created, modified))
        if dates["opportunity"] is not None:
            self._deal(dates["opportunity"], dates["customer"])

    def _deal(self, opened: int, won_at: int | None) -> None:
        rng = self.rng
        rid = self._id("deals")
        pipeline = PIPELINES[0] if rng.random() < 0.85 else PIPELINES[1]
        stages = pipeline["stages"]
        won_stage, lost_stage = stages[-2][0], stages[-1][0]
        if won_at is not None:
            stage, closed, is_closed, won = won_stage, won_at, True, True
        else:
            closed = opened + rng.randint(10, 90) * DAY_MS
            if closed < self.end_ms:
                stage, is_closed, won = lost_stage, True, False
            else:
                stage, is_closed, won = stages[rng.randint(0, len(stages) - 3)][0], False, False
        amount = round(math.exp(rng.gauss(8.4, 0.6)), 2)
        modified = min(
            self.end_ms - rng.randint(1, DAY_MS),
            max(opened, closed if is_closed else opened) + rng.randint(0, 3) * DAY_MS,
        )
        props = {
            "dealname": f"Deal {rid}",
            "amount": f"{amount:.2f}" if rng.random() > 0.03 else None,
            "deal_currency_code": None,  # null means the account's company currency
            "dealstage": stage,
            "pipeline": pipeline["id"],
            "createdate": opened,
            "closedate": closed,
            "hs_is_closed": "true" if is_closed else "false",
            "hs_is_closed_won": "true" if won else "false",
            "hs_lastmodifieddate": modified,
        }
        self.stores["deals"].add(Record(rid, props, opened, modified))

    # -- mutation (incremental tests) ---------------------------------------------

    def tick(self, seconds: int = 1) -> int:
        self.clock_ms += seconds * 1000
        return self.clock_ms

    def touch(self, kind: str, fraction: float, *, seed: int = 99) -> list[int]:
        """Modify ``fraction`` of the records of ``kind`` now (a later cursor); return their ids."""
        rng = random.Random(seed)
        store = self.stores[kind]
        ids = sorted(rng.sample(sorted(store.records), max(1, int(len(store.records) * fraction))))
        for rid in ids:
            record = store.records[rid]
            now = self.tick()
            record.updated = now
            record.props[store.cursor_property] = now
            if kind == "contacts":
                record.props["firstname"] = f"Changed{rid}"
                stage = record.props["lifecyclestage"]
                if stage in STAGES[:-1]:
                    nxt = STAGES[STAGES.index(stage) + 1]
                    record.props["lifecyclestage"] = nxt
                    record.props[f"hs_lifecyclestage_{nxt}_date"] = now
            elif kind == "deals":
                record.props["amount"] = "1234.50"
            elif kind == "feedback_submissions":
                record.props["hs_content"] = f"Edited {rid}"
            else:
                record.props["name"] = f"Renamed {rid}"
        store.reindex()
        return ids

    def churn(self, kind: str, rng: random.Random, *, touch: int = 0, add: int = 0, delete: int = 0) -> None:
        """Live changes to ``kind`` now: ``touch`` records modified (each moves to the end of a result
        sorted by modification time), ``add`` new ones, ``delete`` archived (search never shows those)."""
        store = self.stores[kind]
        live = [rid for rid, r in store.records.items() if not r.archived]
        for rid in rng.sample(live, min(len(live), touch + delete)):
            record = store.records[rid]
            if delete > 0:
                record.archived, delete = True, delete - 1
                continue
            now = self.tick()
            record.updated = record.props[store.cursor_property] = now
        for _ in range(add):
            before = {name: set(s.records) for name, s in self.stores.items()}
            add_one = {"contacts": self._contact, "companies": self._company, "deals": self._new_deal}
            add_one.get(kind, lambda: self._feedback(self.clock_ms))()
            for name, s in self.stores.items():  # a contact may bring a deal: all created now, modified now
                for rid in sorted(set(s.records) - before[name]):
                    new, now = s.records[rid], self.tick()
                    created = "hs_createdate" if name == "feedback_submissions" else "createdate"
                    new.created = new.updated = new.props[created] = new.props[s.cursor_property] = now
        for s in self.stores.values():
            s.reindex()

    def _feedback(self, submitted: int) -> None:
        """One submission to a standard survey (or, one in ten, a custom one) by a known contact.

        Shaped as HubSpot's example submission: ``hs_value`` a string on the survey's scale,
        ``hs_response_group`` its sentiment, ``hs_survey_id``/``name``/``channel`` and ``hs_content``.
        """
        rng = self._feedback_rng
        rid = self._next_id["feedback_submissions"]
        self._next_id["feedback_submissions"] += rng.randint(1, 4)
        kind = "CUSTOM" if rng.random() < 0.1 else rng.choice(list(SURVEYS))
        (low, high), detractor, passive = SURVEYS.get(kind, ((1, 5), 2, 3))
        value = rng.randint(low, high)
        group = "DETRACTOR" if value <= detractor else "PASSIVE" if value <= passive else "PROMOTER"
        survey = {"NPS": 3, "CSAT": 5, "CES": 8, "CUSTOM": 13}[kind]
        contacts = self.stores["contacts"].records
        created = submitted + rng.randint(1_000, 60_000)  # the record is written just after the answer
        props = {
            "hs_survey_id": str(survey),
            "hs_survey_name": f"{kind.title()} survey",
            "hs_survey_type": kind,
            "hs_survey_channel": rng.choice(["EMAIL", "WEB", "LINK"]),
            "hs_value": str(value),
            "hs_response_group": group,
            "hs_content": rng.choice([None, "Great product!", "Support was slow", "Fine"]),
            "hs_contact_id": str(rng.choice(sorted(contacts))) if contacts else None,
            "hs_submission_timestamp": submitted,
            "hs_createdate": created,
            "hs_lastmodifieddate": created,
        }
        self.stores["feedback_submissions"].add(Record(rid, props, created, created))

    def new_feedback(self, n: int) -> list[int]:
        """``n`` submissions answered now (a later cursor than everything before); their ids."""
        store = self.stores["feedback_submissions"]
        before = set(store.records)
        for _ in range(n):
            self._feedback(self.tick(60))
        store.reindex()
        return sorted(set(store.records) - before)

    def _new_deal(self) -> None:
        self._deal(self.clock_ms, None)

    def add_contacts(self, n: int) -> list[int]:
        before = set(self.stores["contacts"].records)
        saved = self.start_ms, self.end_ms
        self.start_ms, self.end_ms = self.clock_ms, self.clock_ms + 60 * DAY_MS + 1000
        for _ in range(n):
            self._contact()
        self.start_ms, self.end_ms = saved
        for store in self.stores.values():
            store.reindex()
        return sorted(set(self.stores["contacts"].records) - before)


class FakeHubSpot(FakeAPIServer):
    """The fake server. ``token`` is the only accepted private-app token."""

    paging = (
        Paging(r"/crm/v3/objects/\w+", records="results", param="after", next="paging.next.after"),
        Paging(
            r"/crm/v3/objects/\w+/search",
            method="POST",
            records="results",
            param="after",
            where="body",
            next="paging.next.after",
            opaque=False,  # search's ``after`` is the result offset, capped at 10,000
        ),
    )

    def __init__(
        self,
        *,
        seed: int = 7,
        contacts: int = 2_000,
        token: str = "pat-na1-fake-token",
        data: HubSpotData | None = None,
        time_zone: str = "Europe/Oslo",
        port: int = 0,
        limits: HubSpotLimits | None = None,
    ) -> None:
        super().__init__(seed=seed, port=port)
        self.limits = limits
        self.token = token
        self.time_zone = time_zone
        self.data = data or HubSpotData(seed=seed, contacts=contacts)
        #: What the private app was granted, as ``access-token-info`` reports it.
        self.scopes: list[str] = [
            "crm.objects.contacts.read",
            "crm.objects.companies.read",
            "crm.objects.deals.read",
            "crm.objects.feedback_submissions.read",
        ]

    # -- live data ---------------------------------------------------------------------

    def live_changes(
        self, share: float = 0.0, *, touch: int = 0, add: int = 0, delete: int = 0, seed: int = 13
    ) -> Callable[[FakeRequest], None]:
        """A function for :meth:`between_pages`: after a page of an object, change that object's records.

        Each call modifies ``share`` of them plus ``touch`` more (they move to the end of a result
        sorted by modification time), adds ``add`` and archives ``delete`` (see :meth:`HubSpotData.churn`)::

            server.between_pages(server.live_changes(0.002, add=1, delete=1), path="/search$")
        """
        rng = random.Random(seed)

        def change(request: FakeRequest) -> None:
            match = re.match(r"/crm/v3/objects/(\w+)", request.path)
            store = self.data.stores.get(match.group(1)) if match else None
            if store is not None:
                n = touch + round(len(store.records) * share)
                self.data.churn(store.name, rng, touch=n, add=add, delete=delete)

        return change

    # -- protocol helpers ------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return self.rate_limit_body()
        category = {
            400: "VALIDATION_ERROR",
            401: "INVALID_AUTHENTICATION",
            403: "MISSING_SCOPES",
            404: "OBJECT_NOT_FOUND",
        }.get(status, "INTERNAL_ERROR")
        return {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "category": category,
        }

    def new_day(self) -> None:
        """Midnight in the account's time zone: the daily limit starts again."""
        if self.limits is not None:
            with self.data_lock:
                self.limits._today = 0

    def rate_limit_body(self, policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
        return {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "policyName": policy,
            "groupName": "publicapi:private-app:1234567",
        }

    def error_headers(self, status: int) -> dict[str, str]:
        # A 429 from the ten-second window: the rolling-window headers at zero remaining.
        if status != 429:
            return {}
        return {
            **self._rate_headers(),
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Secondly-Remaining": "0",
        }

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") == f"Bearer {self.token}":
            return self._admit(request)
        return self.json(
            self.error_body(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
            401,
        )

    def _admit(self, request: FakeRequest) -> FakeResponse | None:
        """The limits: a 429 with the policy broken, or ``None`` (the request is counted)."""
        if self.limits is None:
            return None
        search = request.path.endswith("/search")
        policy = self.limits.admit(search)
        if policy is None:
            return None
        headers = {} if search else self.limits.headers()
        return self.json(self.rate_limit_body(policy), 429, headers)

    def _rate_headers(self) -> dict[str, str]:
        if self.limits is not None:
            return self.limits.headers()
        return {
            "X-HubSpot-RateLimit-Daily": "500000",
            "X-HubSpot-RateLimit-Daily-Remaining": "499000",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "189",
            "X-HubSpot-RateLimit-Secondly": "19",
            "X-HubSpot-RateLimit-Secondly-Remaining": "18",
        }

    def _store(self, request: FakeRequest) -> Any:
        name = request.params["object"]
        return self.data.stores.get(name)

    # -- endpoints ---------------------------------------------------------------------

    @route("POST", r"/oauth/v2/private-apps/get/access-token-info")
    def access_token_info(self, request: FakeRequest) -> FakeResponse:
        """A private-app token's portal, app and scopes (developers.hubspot.com/docs/apps/legacy-apps/
        private-apps/overview: ``POST`` with ``{"tokenKey": …}`` in the body)."""
        if (request.json() or {}).get("tokenKey") != self.token:
            return self.json(self.error_body(401, "The access token provided is invalid"), 401)
        return self.json({"userId": 4242, "hubId": 1234567, "appId": 987654, "scopes": list(self.scopes)})

    @route("GET", r"/account-info/v3/details")
    def account_details(self, request: FakeRequest) -> FakeResponse:
        return self.json(
            {
                "portalId": 1234567,
                "accountType": "STANDARD",
                "timeZone": self.time_zone,
                "companyCurrency": self.data.currency,
                "additionalCurrencies": [],
                "utcOffset": "+01:00",
                "utcOffsetMilliseconds": 3600000,
                "uiDomain": "app-eu1.hubspot.com",
                "dataHostingLocation": "eu1",
            },
            headers=self._rate_headers(),
        )

    @route("GET", r"/crm/v3/pipelines/deals")
    def pipelines(self, request: FakeRequest) -> FakeResponse:
        stamp = "2024-01-15T09:30:00.000Z"
        results = []
        for order, p in enumerate(PIPELINES):
            results.append(
                {
                    "id": p["id"],
                    "label": p["label"],
                    "displayOrder": order,
                    "archived": False,
                    "createdAt": stamp,
                    "updatedAt": stamp,
                    "stages": [
                        {
                            "id": sid,
                            "label": label,
                            "displayOrder": i,
                            "metadata": {"isClosed": closed, "probability": prob},
                            "archived": False,
                            "createdAt": stamp,
                            "updatedAt": stamp,
                            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                        }
                        for i, (sid, label, closed, prob) in enumerate(p["stages"])
                    ],
                }
            )
        return self.json({"results": results}, headers=self._rate_headers())

    @route("GET", r"/crm/v3/objects/(?P<object>contacts|companies|deals|feedback_submissions)")
    def list_objects(self, request: FakeRequest) -> FakeResponse:
        store = self._store(request)
        limit = int(request.query.get("limit", "10"))
        if limit > 100:
            return self.json(self.error_body(400, "limit must be less than or equal to 100"), 400)
        props = [p for p in request.query.get("properties", "").split(",") if p] or DEFAULT_PROPERTIES[store.name]
        after = int(request.query.get("after", "0") or 0)
        pos = bisect.bisect_left(store._ids, after)
        ids = store._ids[pos : pos + limit + 1]
        page = [store.records[i].wire(props) for i in ids[:limit]]
        body: dict[str, Any] = {"results": page}
        if len(ids) > limit:
            nxt = str(ids[limit])
            link = f"https://api.hubapi.com/crm/v3/objects/{store.name}?limit={limit}&after={nxt}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return self.json(body, headers=self._rate_headers())

    @route("POST", r"/crm/v3/objects/(?P<object>contacts|companies|deals|feedback_submissions)/search")
    def search(self, request: FakeRequest) -> FakeResponse:
        store = self._store(request)
        body = request.json() or {}
        limit = int(body.get("limit", 10))
        if limit > 200:
            return self.json(self.error_body(400, "limit must be less than or equal to 200"), 400)
        after = int(body.get("after") or 0)
        if after >= SEARCH_CAP:  # HubSpot's generic 400 body; the cap's own message is undocumented
            correlation = str(uuid.UUID(int=self.rng.getrandbits(128)))
            body = {"status": "error", "message": "There was a problem with the request.", "correlationId": correlation}
            return self.json(body, 400)
        groups = body.get("filterGroups") or []
        sorts = body.get("sorts") or []
        problem = _search_limits(groups, sorts)
        if problem:
            return self.json(self.error_body(400, problem), 400)
        props = body.get("properties") or DEFAULT_PROPERTIES[store.name]
        fast = self._fast_page(store, groups, sorts, after, limit)
        if fast is not None:
            total, page_ids = fast
            return self._search_response(store, total, page_ids, props, after, limit)
        ids = self._filter(store, groups)
        if sorts:
            sort = sorts[0]
            name = sort.get("propertyName")
            reverse = sort.get("direction", "ASCENDING") == "DESCENDING"
            if name == "hs_object_id":
                ids.sort(reverse=reverse)
            else:
                ids.sort(key=lambda i: (store.records[i].props.get(name) or 0, tie(i), i), reverse=reverse)
        else:
            ids.sort()
        return self._search_response(store, len(ids), ids[after : after + limit], props, after, limit)

    def _search_response(
        self, store: ObjectStore, total: int, page_ids: list[int], props: list[str], after: int, limit: int
    ) -> FakeResponse:
        key = tuple(props)
        results = b",".join(store.records[i].wire_bytes(key) for i in page_ids)
        body = b'{"total":%d,"results":[%s]' % (total, results)
        if after + limit < total:
            nxt = after + limit
            body += b',"paging":{"next":{"after":"%d","link":"?after=%d"}}' % (nxt, nxt)
        return FakeResponse(200, body + b"}", {"Content-Type": "application/json;charset=utf-8"})

    @staticmethod
    def _fast_page(
        store: ObjectStore, groups: list[dict[str, Any]], sorts: list[dict[str, Any]], after: int, limit: int
    ) -> tuple[int, list[int]] | None:
        """Cursor-range filters sorted ascending by the cursor: answer from the index slice."""
        if len(groups) > 1 or (
            sorts
            and (
                sorts[0].get("propertyName") != store.cursor_property
                or sorts[0].get("direction", "ASCENDING") != "ASCENDING"
            )
        ):
            return None
        filters = groups[0].get("filters", []) if groups else []
        if any(
            f.get("propertyName") != store.cursor_property or f.get("operator") not in ("GT", "GTE", "LT", "LTE")
            for f in filters
        ):
            return None
        lo, hi = store.cursor_bounds(filters)
        return hi - lo, [entry[-1] for entry in store._index[lo + after : min(hi, lo + after + limit)]]

    def _filter(self, store: ObjectStore, groups: list[dict[str, Any]]) -> list[int]:
        if not groups:
            return store.in_search_order()
        found: set[int] = set()
        for group in groups:
            filters = group.get("filters") or []
            candidates = self._cursor_range(store, filters)
            for f in filters:
                candidates = [i for i in candidates if _match(store.records[i], f)]
            found.update(candidates)
        return list(found)

    @staticmethod
    def _cursor_range(store: ObjectStore, filters: list[dict[str, Any]]) -> list[int]:
        # Use the index for range filters on the cursor property; the rest filter linearly.
        low = high = None
        low_inc = high_inc = True
        for f in filters:
            if f.get("propertyName") != store.cursor_property:
                continue
            op, value = f.get("operator"), _filter_value(f.get("value"))
            if op in ("GTE", "GT", "EQ"):
                low, low_inc = value, op != "GT"
            if op in ("LTE", "LT", "EQ"):
                high, high_inc = value, op != "LT"
        return store.by_cursor(low, high, low_inc, high_inc)


def _search_limits(groups: list[dict[str, Any]], sorts: list[dict[str, Any]]) -> str | None:
    """The documented search limits a request breaks, as HubSpot's VALIDATION_ERROR would say it."""
    counts = [len(g.get("filters") or []) for g in groups]
    if len(groups) > MAX_FILTER_GROUPS:
        return f"too many filterGroups: {len(groups)} (the maximum is {MAX_FILTER_GROUPS})"
    if any(n > MAX_FILTERS_PER_GROUP for n in counts):
        return f"too many filters in a filterGroup: {max(counts)} (the maximum is {MAX_FILTERS_PER_GROUP})"
    if sum(counts) > MAX_FILTERS:
        return f"too many filters: {sum(counts)} (the maximum is {MAX_FILTERS})"
    if len(sorts) > 1:
        return f"only one sorting rule can be applied to any search, got {len(sorts)}"
    return None


def _filter_value(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return to_ms(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def _match(record: Record, f: dict[str, Any]) -> bool:
    name, op = f.get("propertyName"), f.get("operator")
    actual = record.id if name == "hs_object_id" else record.props.get(name)
    if op == "HAS_PROPERTY":
        return actual is not None
    if op == "NOT_HAS_PROPERTY":
        return actual is None
    if actual is None:
        return False
    if isinstance(actual, str) and actual.lstrip("-").replace(".", "", 1).isdigit():
        actual = float(actual)
    value = _filter_value(f.get("value"))
    if op == "IN":
        return str(actual) in {str(v) for v in f.get("values", [])}
    if op == "BETWEEN":
        return value <= actual <= _filter_value(f.get("highValue"))
    compare = {"EQ": actual == value, "NEQ": actual != value}
    if op in compare:
        return compare[op]
    if isinstance(value, str) or isinstance(actual, str):
        actual, value = str(actual), str(value)
    return {"GT": actual > value, "GTE": actual >= value, "LT": actual < value, "LTE": actual <= value}[op]


def main() -> None:  # pragma: no cover - used by bench/ and by hand
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake HubSpot on 127.0.0.1")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeHubSpot(seed=args.seed, contacts=args.contacts, port=args.port)
    server.record_requests = False
    server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
