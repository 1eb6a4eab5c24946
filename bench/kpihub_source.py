"""The benchmark's kpihub source: a minimal third-party-style connector for the pre-rendered pages.

Written as a plugin author outside the project would write one, with the toolkit's paginators
only: ``contacts`` reads HubSpot list pages with :class:`kpihub.http.CursorPaginator`
(``paging.next.after`` sent back as ``after``), ``ga4_report`` reads GA4 report pages with
:class:`kpihub.http.OffsetPaginator` (``offset += limit`` while ``offset < rowCount``) and turns
each page's positional rows into string columns with :func:`kpihub.http.positional_batch`. The
engine casts both to the declared schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

import kpihub
from bench.pages import GA4_DIMENSIONS, GA4_METRICS, GA4_PATH, HUBSPOT_PAGE, PROPERTIES, TIMESTAMP_PROPERTIES
from kpihub.http import CursorPaginator, OffsetPaginator, positional_batch, positional_type

TS = pa.timestamp("us", tz="UTC")
#: A report row as Arrow reads it off the page (the paginator parses pages with Arrow, off the GIL).
GA4_ROW = positional_type(["dimensionValues", "metricValues"])
METRIC_TYPES = {"TYPE_INTEGER": pa.int64(), "TYPE_FLOAT": pa.float64(), "TYPE_CURRENCY": pa.float64()}


class BenchSettings(kpihub.SourceSettings):
    base_url: str = "http://127.0.0.1"
    ga4_page_size: int = 10_000


class ContactsStream(kpihub.Stream):
    def read(self, ctx: kpihub.StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        paginator = CursorPaginator("results", cursor_path="paging.next.after", param="after")
        params = {"limit": HUBSPOT_PAGE}
        for _, records in ctx.pages(paginator, "GET", "/crm/v3/objects/contacts", params=params):
            yield records


class GA4ReportStream(kpihub.Stream):
    def read(self, ctx: kpihub.StreamContext, state: Mapping[str, Any] | None) -> Iterator[pa.RecordBatch]:
        settings: BenchSettings = ctx.settings  # type: ignore[assignment]
        paginator = OffsetPaginator("rows", limit=settings.ga4_page_size, total_path="rowCount", record_type=GA4_ROW)
        for body, rows in ctx.pages(paginator, "GET", GA4_PATH):
            dims = [h["name"] for h in body["dimensionHeaders"]]
            mets = [h["name"] for h in body["metricHeaders"]]
            yield positional_batch(rows, {"dimensionValues": dims, "metricValues": mets})


CONTACTS_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False)]
    + [
        pa.field(p, TS if p in TIMESTAMP_PROPERTIES else pa.string(), metadata={"path": f"properties.{p}"})
        for p in PROPERTIES
    ]
    + [pa.field("createdAt", TS), pa.field("updatedAt", TS), pa.field("archived", pa.bool_())]
)
GA4_SCHEMA = pa.schema(
    [pa.field(d, pa.date32() if d == "date" else pa.string(), nullable=False) for d in GA4_DIMENSIONS]
    + [pa.field(m, METRIC_TYPES[t]) for m, t in GA4_METRICS]
)


class BenchSource(kpihub.Source):
    name = "benchpages"
    title = "Benchmark pages (HubSpot and GA4 shapes)"
    settings_class = BenchSettings

    def streams(self, settings: kpihub.SourceSettings) -> list[kpihub.Stream]:
        return [
            ContactsStream("contacts", CONTACTS_SCHEMA, primary_key=("id",), wire_strings=True),
            GA4ReportStream("ga4_report", GA4_SCHEMA, primary_key=tuple(GA4_DIMENSIONS), wire_strings=True),
        ]

    def check(self, settings: kpihub.SourceSettings, http: Any) -> kpihub.CheckResult:
        http.json("GET", "/crm/v3/objects/contacts", params={"limit": 1}, stream="check")
        return kpihub.CheckResult(True, "ok")


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(BenchSource())


def registry() -> Any:
    """A registry holding only this source, as an installed plugin would be registered."""
    import sys

    from kpihub.plugins import Registry

    reg = Registry(load_entrypoints=False)  # no time spent importing the installed plugins
    reg.register_plugin(sys.modules[__name__], "benchpages")
    return reg
