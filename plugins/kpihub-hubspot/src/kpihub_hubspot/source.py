"""The HubSpot CRM connector: contacts, companies, deals (incremental search) and deal pipelines.

Incremental streams read ``POST /crm/v3/objects/{object}/search`` sorted by
the last-modified property (``lastmodifieddate`` for contacts,
``hs_lastmodifieddate`` for companies and deals), filtered to
``[cursor, sync start)``. A search query returns at most 10,000 results, so
when paging reaches that cap the window is restarted at the last modified
time seen (``GTE``; the overlap is merged away on the primary key). If 10,000
records share one timestamp, that instant is read in ``hs_object_id`` order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr

from kpihub import CheckResult, DemoSpec, HTTPError, Source, SourceSettings, Stream, StreamContext
from kpihub.http import BearerAuth, CursorPaginator, get_path
from kpihub_hubspot import mapping

SEARCH_CAP = 10_000
TS = pa.timestamp("us", tz="UTC")

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
    **{f"hs_lifecyclestage_{s}_date": TS for s in mapping.HUBSPOT_STAGES},
}


class HubSpotSettings(SourceSettings):
    """``[sources.hubspot]``: a private-app token and what to read."""

    base_url: str = "https://api.hubapi.com"
    #: Private-app access token (``pat-…``); better set as KPIHUB_HUBSPOT_TOKEN.
    token: SecretStr
    #: Search page size (HubSpot's maximum is 200).
    page_size: int = Field(default=200, ge=1, le=200)
    #: The search API allows 5 requests/s per account; stay under it.
    requests_per_second: float | None = 4.0
    max_parallel_streams: int = Field(default=2, ge=1, le=8)
    #: HubSpot's search index trails writes by seconds: read only records modified
    #: at least this long before the sync started, so none is skipped for good.
    search_lag_seconds: int = Field(default=60, ge=0)
    #: Custom lifecycle stage ids -> canonical stage (lead, mql, sql, opportunity, customer, …).
    lifecycle_stage_map: dict[str, str] = Field(default_factory=dict)
    #: What to do with a lifecycle stage that is neither standard nor mapped.
    on_unknown_lifecycle_stage: Literal["fail", "other"] = "fail"
    #: Extra properties to read into the raw tables.
    contact_properties: list[str] = Field(default_factory=list)
    company_properties: list[str] = Field(default_factory=list)
    deal_properties: list[str] = Field(default_factory=list)


def _schema(properties: Sequence[str]) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False)]
    fields += [pa.field(p, TYPES.get(p, pa.string()), metadata={"path": f"properties.{p}"}) for p in properties]
    fields += [
        pa.field("createdAt", TS),
        pa.field("updatedAt", TS),
        pa.field("archived", pa.bool_(), metadata={"wire": "bool"}),
    ]
    return pa.schema(fields)


class SearchStream(Stream):
    """An object type read incrementally through the CRM search API."""

    object_type: str = ""

    def read(self, ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        settings: HubSpotSettings = ctx.settings  # type: ignore[assignment]
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

    def prepare(self, ctx: StreamContext) -> None:
        """Fetch what the canonical mapping needs before the first page."""


def search_window(
    ctx: StreamContext,
    object_type: str,
    cursor_property: str,
    properties: list[str],
    low: int | None,
    high: int,
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of records with ``low <= cursor < high``, ascending, restarting at the 10,000 cap."""
    path = f"/crm/v3/objects/{object_type}/search"
    paginator = CursorPaginator("results", cursor_path="paging.next.after", param="after", where="body")
    first = True
    seen = _Tail(cursor_property)
    while True:
        filters = [{"propertyName": cursor_property, "operator": "LT", "value": str(high)}]
        if low is not None:
            filters.append({"propertyName": cursor_property, "operator": "GTE", "value": str(low)})
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": cursor_property, "direction": "ASCENDING"}],
            "properties": properties,
            "limit": page_size,
            "after": "0",
        }
        last: dict[str, Any] | None = None
        first_value: str | None = None
        capped = False
        tail = _Tail(cursor_property)
        for page_body, records in _capped(paginator.pages(ctx.http, "POST", path, stream=ctx.stream, json=body)):
            if first:
                ctx.report_total(int(page_body.get("total", 0)))
                first = False
            if first_value is None and records:
                first_value = get_path(records[0], f"properties.{cursor_property}")
            records = seen.drop_repeats(records)
            if records:
                last = records[-1]
                tail.add(records)
                yield records
            capped = _at_cap(page_body)
        if not capped:
            return
        boundary = tail.value if last is not None else (first_value or "")
        last_ms = _ms(dt.datetime.fromisoformat(boundary.replace("Z", "+00:00")))
        if first_value == boundary:
            # A whole window of 10,000 records shares one instant: read it by id, then move past it.
            yield from _same_instant(ctx, object_type, cursor_property, properties, last_ms, page_size)
            low, seen = last_ms + 1, _Tail(cursor_property)
        else:
            # The next window starts at the last instant read (GTE): skip what was already yielded there.
            low, seen = last_ms, tail


class _Tail:
    """Ids of the records read at the latest cursor value (the boundary of a restarted window)."""

    def __init__(self, cursor_property: str) -> None:
        self.cursor_property = cursor_property
        self.value: str = ""
        self.ids: set[str] = set()

    def add(self, records: list[dict[str, Any]]) -> None:
        value = get_path(records[-1], f"properties.{self.cursor_property}") or ""
        if value != self.value:
            self.value, self.ids = value, set()
        for record in reversed(records):  # only the tail shares the last value
            if get_path(record, f"properties.{self.cursor_property}") != value:
                break
            self.ids.add(str(record.get("id")))

    def drop_repeats(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.ids or not records:
            return records
        prop = f"properties.{self.cursor_property}"
        kept = [r for r in records if not (get_path(r, prop) == self.value and str(r.get("id")) in self.ids)]
        if len(kept) == len(records) or get_path(records[-1], prop) != self.value:
            self.ids = set()  # past the boundary instant: nothing more to skip
        return kept


def _at_cap(body: Any) -> bool:
    after = get_path(body, "paging.next.after")
    return after is not None and int(after) >= SEARCH_CAP


def _capped(pages: Iterator[tuple[Any, list[Any]]]) -> Iterator[tuple[Any, list[Any]]]:
    """Stop before requesting an ``after`` at or past HubSpot's 10,000 cap (a 400)."""
    for body, records in pages:
        yield body, records
        if _at_cap(body):
            pages.close()  # type: ignore[attr-defined]
            return


def _same_instant(
    ctx: StreamContext, object_type: str, cursor_property: str, properties: list[str], at_ms: int, page_size: int
) -> Iterator[list[dict[str, Any]]]:
    path = f"/crm/v3/objects/{object_type}/search"
    last_id = 0
    while True:
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": cursor_property, "operator": "EQ", "value": str(at_ms)},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": page_size,
            "after": "0",
        }
        got = 0
        paginator = CursorPaginator("results", cursor_path="paging.next.after", param="after", where="body")
        for _, records in _capped(paginator.pages(ctx.http, "POST", path, stream=ctx.stream, json=body)):
            if records:
                got += len(records)
                last_id = int(records[-1]["id"])
                yield records
        if got < SEARCH_CAP - page_size:
            return


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _start_ms(settings: HubSpotSettings) -> int | None:
    if settings.start_date is None:
        return None
    return _ms(dt.datetime.combine(settings.start_date, dt.time(), dt.timezone.utc))


class ContactsStream(SearchStream):
    object_type = "contacts"

    def prepare(self, ctx: StreamContext) -> None:
        settings: HubSpotSettings = ctx.settings  # type: ignore[assignment]
        self.stage_map = mapping.stage_map(settings.lifecycle_stage_map)

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        settings: HubSpotSettings = ctx.settings  # type: ignore[assignment]
        return mapping.contacts(batch, self.stage_map, on_unknown=settings.on_unknown_lifecycle_stage, stream=self.name)


class DealsStream(SearchStream):
    object_type = "deals"

    def prepare(self, ctx: StreamContext) -> None:
        account = ctx.http.json("GET", "/account-info/v3/details", stream=ctx.stream)
        self.company_currency = account.get("companyCurrency")
        pipelines = ctx.http.json("GET", "/crm/v3/pipelines/deals", stream=ctx.stream)
        self.stages = mapping.StageLookup.from_pipelines(pipelines.get("results") or [])

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        return mapping.deals(batch, self.stages, self.company_currency)


class PipelinesStream(Stream):
    """Deal pipelines and their stages, one row per stage (small; replaced on every sync)."""

    def read(self, ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
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


class HubSpotSource(Source):
    """HubSpot CRM (private-app token)."""

    name = "hubspot"
    title = "HubSpot CRM"
    settings_class = HubSpotSettings

    def streams(self, settings: SourceSettings) -> list[Stream]:
        s: HubSpotSettings = settings  # type: ignore[assignment]
        # CRM v3 sends every property value as a string (top-level "archived" is a JSON bool).
        common: dict[str, Any] = {"primary_key": ("id",), "wire_strings": True, "sorted_by_cursor": True}
        return [
            ContactsStream(
                "contacts",
                _schema(_unique(CONTACT_PROPERTIES + s.contact_properties)),
                cursor_field="lastmodifieddate",
                canonical_table="crm_contacts",
                **common,
            ),
            CompaniesStream(
                "companies",
                _schema(_unique(COMPANY_PROPERTIES + s.company_properties)),
                cursor_field="hs_lastmodifieddate",
                **common,
            ),
            DealsStream(
                "deals",
                _schema(_unique(DEAL_PROPERTIES + s.deal_properties)),
                cursor_field="hs_lastmodifieddate",
                canonical_table="crm_deals",
                **common,
            ),
            PipelinesStream("deal_pipelines", PIPELINES_SCHEMA, primary_key=("pipeline_id", "stage_id")),
        ]

    def auth(self, settings: SourceSettings) -> httpx.Auth:
        return BearerAuth(settings.token)  # type: ignore[attr-defined]

    def check(self, settings: SourceSettings, http: Any) -> CheckResult:
        try:
            account = http.json("GET", "/account-info/v3/details", stream="check")
            http.json("GET", "/crm/v3/objects/contacts", stream="check", params={"limit": 1})
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(
            True,
            f"connected to HubSpot portal {account.get('portalId')} "
            f"({account.get('companyCurrency')}, {account.get('timeZone')})",
        )

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub.testing.business import DEMO_BUSINESS
        from kpihub_hubspot.fake import DEMO_TARGETS, FakeHubSpot, HubSpotData

        data = HubSpotData(seed=seed, contacts=30_000 * scale, customer_email=DEMO_BUSINESS.customer_email)
        server = FakeHubSpot(seed=seed, data=data)
        return DemoSpec(
            server=server,
            settings={"token": server.token, "requests_per_second": None},
            targets=DEMO_TARGETS,
        )


class CompaniesStream(SearchStream):
    object_type = "companies"


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
