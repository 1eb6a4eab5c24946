"""The HubSpot CRM connector: contacts, companies, deals (incremental search) and deal pipelines.

Incremental streams read ``POST /crm/v3/objects/{object}/search`` sorted by
the last-modified property (``lastmodifieddate`` for contacts,
``hs_lastmodifieddate`` for companies and deals), filtered to
``[cursor, sync start)``, by keyset: search's ``after`` is an offset into the
live result (developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm),
so a record modified while pages are read moves to the end and an offset
reader skips the record that shifts into its place. Each page is instead a
new query from the last modified time read (``GTE``, dropping the records
already read at that instant), so no record that sorts later can be skipped,
and no query pages towards the 10,000-result cap. HubSpot allows one sorting
rule per search and documents no order among ties, so when more records share
one instant than fit in a page, that instant is read on its own sorted by
``hs_object_id`` (``EQ`` instant, ``hs_object_id GT`` last id) — see
:mod:`kpihub_hubspot.keyset`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
import orjson
import pyarrow as pa
from pydantic import Field, SecretStr

from kpihub import (
    CheckResult,
    DemoSpec,
    Diagnosis,
    Estimate,
    HTTPError,
    PlanContext,
    Requests,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
)
from kpihub.http import (
    BearerAuth,
    KeysetBound,
    KeysetPaginator,
    Limit,
    Observation,
    Quota,
    Requester,
    RetryDecision,
    get_path,
)
from kpihub_hubspot import feedback, mapping

TS = pa.timestamp("us", tz="UTC")
#: Requests a day on Free and Starter (the tier ``burst_per_10s`` assumes too); Professional and
#: Enterprise 500,000, the API add-on 1,000,000 (legacydocs.hubspot.com/apps/api_guidelines).
#: The budget learns nothing of it at run time; ``kpihub plan`` works with it.
DAILY_REQUESTS = 250_000

CONTACT_PROPERTIES = [
    "hs_object_id",  # HubSpot returns it whether asked or not
    "email",
    "lifecyclestage",
    "hs_analytics_source",
    "associatedcompanyid",
    "createdate",
    "lastmodifieddate",
    *(f"hs_lifecyclestage_{s}_date" for s in mapping.HUBSPOT_STAGES),
]
COMPANY_PROPERTIES = [
    "hs_object_id",
    "name",
    "domain",
    "industry",
    "country",
    "numberofemployees",
    "annualrevenue",
    "lifecyclestage",
    "createdate",
    "hs_lastmodifieddate",
]
DEAL_PROPERTIES = [
    "hs_object_id",
    "dealname",
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "createdate",
    "closedate",
    "hs_is_closed",
    "hs_is_closed_won",
    "hs_lastmodifieddate",
]
TYPES: dict[str, pa.DataType] = {
    "createdate": TS,
    "lastmodifieddate": TS,
    "hs_lastmodifieddate": TS,
    "closedate": TS,
    "amount": pa.decimal128(38, 9),
    "annualrevenue": pa.decimal128(38, 9),
    "numberofemployees": pa.int64(),
    "hs_is_closed": pa.bool_(),
    "hs_is_closed_won": pa.bool_(),
    "hs_createdate": TS,
    "hs_submission_timestamp": TS,
    **{f"hs_lifecyclestage_{s}_date": TS for s in mapping.HUBSPOT_STAGES},
}


class HubSpotSettings(SourceSettings):
    """``[sources.hubspot]``: a private-app token and what to read."""

    base_url: str = "https://api.hubapi.com"
    #: Private-app access token (``pat-…``); better set as KPIHUB_HUBSPOT_TOKEN.
    token: SecretStr
    #: Search page size (HubSpot's maximum is 200).
    page_size: int = Field(default=200, ge=1, le=200)
    #: No flat pace: the rate budget spends HubSpot's own windows (see ``HubSpotSource.rate_limits``).
    requests_per_second: float | None = None
    #: The CRM search API's own limit (requests per second per token; its responses carry no headers).
    search_per_second: int = Field(default=5, ge=1)
    #: The burst limit per 10 s assumed until X-HubSpot-RateLimit-Max says it (Free/Starter: 100).
    burst_per_10s: int = Field(default=100, ge=1)
    #: Spend HubSpot's limits proactively (off only against a fake that enforces none).
    rate_budget: bool = True
    #: HubSpot's search index trails writes by seconds: read only records modified
    #: at least this long before the sync started, so none is skipped for good.
    search_lag_seconds: int = Field(default=60, ge=0)
    #: Custom lifecycle stage ids -> canonical stage (lead, mql, sql, opportunity, customer, …).
    lifecycle_stage_map: dict[str, str] = Field(default_factory=dict)
    #: What to do with a lifecycle stage that is neither standard nor mapped.
    on_unknown_lifecycle_stage: Literal["fail", "other"] = "fail"
    #: The portal's company currency (ISO 4217), used only when GET /account-info/v3/details is
    #: unavailable (404) for a deal whose deal_currency_code is null.
    company_currency: str | None = Field(default=None, min_length=3, max_length=3)
    #: Extra properties to read into the raw tables.
    contact_properties: list[str] = Field(default_factory=list)
    company_properties: list[str] = Field(default_factory=list)
    deal_properties: list[str] = Field(default_factory=list)
    #: Read feedback survey submissions into ``survey_responses`` (Service Hub Professional or
    #: Enterprise, scope crm.objects.feedback_submissions.read): off unless asked for, so a portal
    #: without them still syncs.
    feedback_submissions: bool = False
    #: ``hs_survey_type`` (or ``<type>:<hs_survey_id>``, which wins) -> canonical item and its scale.
    feedback_items: dict[str, feedback.FeedbackItem] = Field(default_factory=lambda: dict(feedback.DEFAULT_ITEMS))
    feedback_properties: list[str] = Field(default_factory=list)


def _schema(properties: Sequence[str]) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False)]
    fields += [pa.field(p, TYPES.get(p, pa.string()), metadata={"path": f"properties.{p}"}) for p in properties]
    fields += [
        pa.field("createdAt", TS),
        pa.field("updatedAt", TS),
        pa.field("archived", pa.bool_(), metadata={"wire": "bool"}),
    ]
    return pa.schema(fields)


class SearchStream(Stream[HubSpotSettings]):
    """An object type read incrementally through the CRM search API."""

    object_type: str = ""

    def read(
        self, ctx: StreamContext[HubSpotSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        settings = ctx.settings
        self.prepare(ctx)
        cursor = state.get("cursor") if state else None
        low = _ms(dt.datetime.fromisoformat(cursor)) if cursor else _start_ms(settings)
        started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=settings.search_lag_seconds)
        high = _ms(started)  # records changed after this wait for the next sync
        yield from search_window(
            ctx, self.object_type, self.cursor_field or "", self.properties, low, high, settings.page_size
        )

    @property
    def properties(self) -> list[str]:
        return [f.name for f in self.schema if (f.metadata or {}).get(b"path", b"").startswith(b"properties.")]

    def prepare(self, ctx: StreamContext[HubSpotSettings]) -> None:
        """Fetch what the canonical mapping needs before the first page."""

    #: The requests :meth:`prepare` sends (for ``kpihub plan``).
    lookups: tuple[Requests, ...] = ()

    def estimate(self, plan: PlanContext[HubSpotSettings]) -> Estimate:
        """One search per ``page_size`` records since the cursor (keyset pages), plus the lookups."""
        settings = plan.settings
        mode, since = plan.read_from(self)
        records, basis = plan.expected_records(self)
        pages, at_least = plan.pages(records, settings.page_size)
        search = Requests(pages, f"/crm/v3/objects/{self.object_type}/search", "POST")
        return Estimate(mode, since, None, (search, *self.lookups), records, at_least, basis)


def search_window(
    ctx: StreamContext[HubSpotSettings],
    object_type: str,
    cursor_property: str,
    properties: list[str],
    low: int | None,
    high: int,
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of records with ``low <= cursor < high``, ascending, read by keyset (see the module docstring)."""

    def query(bound: KeysetBound) -> tuple[None, dict[str, Any]]:
        if bound.tie:  # the records at one instant, in id order
            filters = [{"propertyName": cursor_property, "operator": "EQ", "value": str(bound.key)}]
            if bound.after_id is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(bound.after_id)})
            sort = "hs_object_id"
        else:
            filters = [{"propertyName": cursor_property, "operator": "LT", "value": str(high)}]
            if bound.key is not None:
                operator = "GTE" if bound.inclusive else "GT"
                filters.append({"propertyName": cursor_property, "operator": operator, "value": str(bound.key)})
            sort = cursor_property
        return None, {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],  # one sorting rule per search
            "properties": properties,
            "limit": page_size,
            "after": "0",  # never an offset: each page is a new query (the cap of 10,000 is never near)
        }

    paginator = KeysetPaginator(
        "results",
        more_path="paging.next.after",
        key=lambda record: _record_ms(record, cursor_property),
        record_id=lambda record: int(record["id"]),
        query=query,
        total_path="total",
    )
    path = f"/crm/v3/objects/{object_type}/search"
    start = KeysetBound(low) if low is not None else KeysetBound()
    pages = paginator.pages(ctx.http, "POST", path, start=start, stream=ctx.stream, on_total=ctx.report_total)
    for _, records in pages:
        yield records


def _record_ms(record: Mapping[str, Any], cursor_property: str) -> int:
    """A record's cursor as epoch milliseconds (the unit of HubSpot's date filters)."""
    value = get_path(record, f"properties.{cursor_property}")
    if not value:
        return -1  # HubSpot sets it on every record; a missing one sorts first
    return _ms(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _start_ms(settings: HubSpotSettings) -> int | None:
    if settings.start_date is None:
        return None
    return _ms(dt.datetime.combine(settings.start_date, dt.time(), dt.timezone.utc))


class ContactsStream(SearchStream):
    object_type = "contacts"

    def prepare(self, ctx: StreamContext[HubSpotSettings]) -> None:
        self.stage_map = mapping.stage_map(ctx.settings.lifecycle_stage_map)

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[HubSpotSettings]) -> pa.RecordBatch:
        on_unknown = ctx.settings.on_unknown_lifecycle_stage
        return mapping.contacts(batch, self.stage_map, on_unknown=on_unknown, stream=self.name)


class DealsStream(SearchStream):
    object_type = "deals"
    lookups = (Requests(1, "/account-info/v3/details"), Requests(1, "/crm/v3/pipelines/deals"))

    def prepare(self, ctx: StreamContext[HubSpotSettings]) -> None:
        settings = ctx.settings
        account = account_details(ctx.http, ctx.stream)
        self.company_currency = (account or {}).get("companyCurrency") or settings.company_currency
        self.currency_unknown_because = ""
        if account is None:
            fallback = (
                f"company_currency = {settings.company_currency!r} from the settings"
                if settings.company_currency
                else "each deal's own deal_currency_code only"
            )
            ctx.note(f"account details unavailable ({ACCOUNT_UNAVAILABLE}): deal currencies from {fallback}")
            self.currency_unknown_because = f" ({ACCOUNT_UNAVAILABLE})"
        pipelines = ctx.http.json("GET", "/crm/v3/pipelines/deals", stream=ctx.stream)
        self.stages = mapping.StageLookup.from_pipelines(pipelines.get("results") or [])

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[HubSpotSettings]) -> pa.RecordBatch:
        return mapping.deals(
            batch, self.stages, self.company_currency, stream=self.name, why_unknown=self.currency_unknown_because
        )


ACCOUNT_DETAILS = "/account-info/v3/details"
ACCOUNT_UNAVAILABLE = f"GET {ACCOUNT_DETAILS} answered 404"


def account_details(http: Any, stream: str) -> dict[str, Any] | None:
    """The portal's account details (company currency, time zone), or ``None`` where the endpoint answers 404.

    A 404 there must not stop deals that carry their own ``deal_currency_code``; any other failure still does.
    """
    try:
        return http.json("GET", ACCOUNT_DETAILS, stream=stream)  # type: ignore[no-any-return]
    except HTTPError as exc:
        if exc.status_code == 404:
            return None
        raise


class PipelinesStream(Stream[HubSpotSettings]):
    """Deal pipelines and their stages, one row per stage (small; replaced on every sync)."""

    def read(
        self, ctx: StreamContext[HubSpotSettings], state: Mapping[str, Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        body = ctx.http.json("GET", "/crm/v3/pipelines/deals", stream=ctx.stream)
        rows = []
        for p in body.get("results") or []:
            for s in p.get("stages") or []:
                rows.append(
                    {
                        "pipeline_id": p.get("id"),
                        "pipeline_label": p.get("label"),
                        "pipeline_display_order": p.get("displayOrder"),
                        "stage_id": s.get("id"),
                        "stage_label": s.get("label"),
                        "stage_display_order": s.get("displayOrder"),
                        "is_closed": get_path(s, "metadata.isClosed"),
                        "probability": get_path(s, "metadata.probability"),
                        "archived": s.get("archived"),
                        "updatedAt": s.get("updatedAt"),
                    }
                )
        ctx.report_total(len(rows))
        yield rows

    def estimate(self, plan: PlanContext[HubSpotSettings]) -> Estimate:
        records, basis = plan.expected_records(self)
        return Estimate("full", None, None, (Requests(1, "/crm/v3/pipelines/deals"),), records, False, basis)


PIPELINES_SCHEMA = pa.schema(
    [
        pa.field("pipeline_id", pa.string(), nullable=False),
        pa.field("pipeline_label", pa.string()),
        pa.field("pipeline_display_order", pa.int64(), metadata={"wire": "int"}),
        pa.field("stage_id", pa.string(), nullable=False),
        pa.field("stage_label", pa.string()),
        pa.field("stage_display_order", pa.int64(), metadata={"wire": "int"}),
        pa.field("is_closed", pa.bool_(), metadata={"wire": "string"}),
        pa.field("probability", pa.float64(), metadata={"wire": "string"}),
        pa.field("archived", pa.bool_(), metadata={"wire": "bool"}),
        pa.field("updatedAt", TS),
    ]
)


class HubSpotSource(Source[HubSpotSettings]):
    """HubSpot CRM (private-app token)."""

    name = "hubspot"
    title = "HubSpot CRM"
    settings_class = HubSpotSettings

    def streams(self, settings: HubSpotSettings) -> list[Stream[HubSpotSettings]]:
        # CRM v3 sends every property value as a string (top-level "archived" is a JSON bool).
        common: dict[str, Any] = {"primary_key": ("id",), "wire_strings": True, "sorted_by_cursor": True}
        streams: list[Stream[HubSpotSettings]] = [
            ContactsStream(
                "contacts",
                _schema(_unique(CONTACT_PROPERTIES + settings.contact_properties)),
                cursor_field="lastmodifieddate",
                canonical_table="crm_contacts",
                **common,
            ),
            CompaniesStream(
                "companies",
                _schema(_unique(COMPANY_PROPERTIES + settings.company_properties)),
                cursor_field="hs_lastmodifieddate",
                **common,
            ),
            DealsStream(
                "deals",
                _schema(_unique(DEAL_PROPERTIES + settings.deal_properties)),
                cursor_field="hs_lastmodifieddate",
                canonical_table="crm_deals",
                **common,
            ),
            PipelinesStream("deal_pipelines", PIPELINES_SCHEMA, primary_key=("pipeline_id", "stage_id")),
        ]
        if settings.feedback_submissions:
            streams.append(
                FeedbackStream(
                    "feedback_submissions",
                    _schema(_unique(feedback.FEEDBACK_PROPERTIES + settings.feedback_properties)),
                    cursor_field="hs_lastmodifieddate",
                    canonical_table="survey_responses",
                    **common,
                )
            )
        return streams

    def auth(self, settings: HubSpotSettings) -> httpx.Auth:
        return BearerAuth(settings.token)

    def diagnose(self, settings: HubSpotSettings, http: Requester | None) -> list[Diagnosis]:
        """Whether the private-app token holds each stream's read scope (asked of HubSpot; none offline)."""
        from kpihub_hubspot.scopes import diagnose

        streams = [s.name for s in self.streams(settings)]
        finding = diagnose(settings.token.get_secret_value(), streams, http)
        return [] if finding is None else [finding]

    # -- rate budget (developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines) -----

    def rate_limits(self, settings: HubSpotSettings) -> list[Limit]:
        return _limits(settings, daily=None) if settings.rate_budget else []

    def plan_limits(self, settings: HubSpotSettings) -> list[Limit]:
        """HubSpot's limits whether or not this run paces itself by them, with the daily cap's size."""
        return _limits(settings, daily=DAILY_REQUESTS)

    @staticmethod
    def observe_rate(response: httpx.Response) -> list[Observation]:
        """``X-HubSpot-RateLimit-Max`` / ``-Remaining`` per ``-Interval-Milliseconds``; ``-Daily-Remaining``."""
        h = response.headers
        out = []
        try:
            if "X-HubSpot-RateLimit-Max" in h:
                out.append(
                    Observation(
                        "burst",
                        limit=float(h["X-HubSpot-RateLimit-Max"]),
                        remaining=float(h.get("X-HubSpot-RateLimit-Remaining", h["X-HubSpot-RateLimit-Max"])),
                        seconds=float(h.get("X-HubSpot-RateLimit-Interval-Milliseconds", 10_000)) / 1000,
                    )
                )
            if float(h.get("X-HubSpot-RateLimit-Daily-Remaining", 1)) <= 0:
                out.append(Observation("daily", quota=daily_quota()))
        except ValueError:
            pass  # a header that is not a number says nothing
        return out

    @staticmethod
    def classify(response: httpx.Response) -> RetryDecision | None:
        """429 ``policyName``: ``DAILY`` is a quota for the rest of the day; a window waits in the budget."""
        if response.status_code != 429:
            return None
        try:
            policy = orjson.loads(response.content).get("policyName")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if policy == "DAILY":
            return RetryDecision(False, reason="quota", quota=daily_quota())
        return RetryDecision(True, None, "rate")

    def check(self, settings: HubSpotSettings, http: Requester) -> CheckResult:
        try:
            account = account_details(http, "check")
            http.json("GET", "/crm/v3/objects/contacts", stream="check", params={"limit": 1})
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        if account is None:  # deals can still carry their own currency: connected, with a warning
            configured = settings.company_currency
            fallback = (
                f"deals use their own deal_currency_code, else company_currency {configured}"
                if configured
                else "deals need their own deal_currency_code, or set company_currency"
            )
            return CheckResult(
                True, f"connected to HubSpot; account details unavailable ({ACCOUNT_UNAVAILABLE}): {fallback}"
            )
        return CheckResult(
            True,
            f"connected to HubSpot portal {account.get('portalId')} "
            f"({account.get('companyCurrency')}, {account.get('timeZone')})",
        )

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing import DEMO_BUSINESS
        from kpihub_hubspot.fake import DEMO_TARGETS, FakeHubSpot, HubSpotData

        data = HubSpotData(seed=seed, contacts=30_000 * scale, customer_email=DEMO_BUSINESS.customer_email)
        server = FakeHubSpot(seed=seed, data=data)
        return DemoSpec(
            server=server,
            settings={"token": server.token, "requests_per_second": None, "rate_budget": False},
            targets=DEMO_TARGETS,
        )


class CompaniesStream(SearchStream):
    object_type = "companies"


class FeedbackStream(SearchStream):
    """Feedback survey submissions, one ``survey_responses`` row each (see :mod:`kpihub_hubspot.feedback`)."""

    object_type = "feedback_submissions"

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[HubSpotSettings]) -> pa.RecordBatch:
        items = {key.upper(): item for key, item in ctx.settings.feedback_items.items()}
        rows, unmapped = feedback.survey_responses(batch, items, stream=self.name)
        ctx.note(feedback.UNMAPPED, count=unmapped)
        return rows


def _limits(s: HubSpotSettings, *, daily: float | None) -> list[Limit]:
    return [
        Limit("search", s.search_per_second, 1.0, path=r"/search$"),
        Limit("burst", s.burst_per_10s, 10.0, path=r"^(?!.*/search$)"),
        Limit("daily", daily, 86_400.0),
    ]


def daily_quota() -> Quota:
    """HubSpot's daily limit: "resets at midnight based on your time zone setting" (not in the headers)."""
    now = dt.datetime.now(dt.timezone.utc)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    return Quota(
        "HubSpot's daily API limit is reached",
        resets_at=midnight,
        resets="resets at midnight in the HubSpot account's time zone",
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
