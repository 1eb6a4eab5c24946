"""Pre-rendered API pages, written once as files for nginx to serve.

Two shapes, both read with GET so that static files can answer them:

* ``hubspot``: HubSpot CRM v3 list pages, ``GET /crm/v3/objects/contacts?limit=100&after=<id>``
  answered with ``{results: [{id, properties, createdAt, updatedAt, archived}], paging?: {next:
  {after, link}}}``: ``after`` is the next record's id, ``link`` the full URL of the next page,
  ``paging`` absent on the last page, every property value a string or null, at most 100 records
  a page (shared API notes §1, HubSpot's legacy custom-objects guide). The file holding the page
  that starts at id ``N`` is ``hubspot/N.json`` (the first is ``first.json``): nginx maps the
  ``after`` query parameter to it.
* ``ga4``: GA4 Data API ``runReport`` pages, ``{dimensionHeaders: [{name}], metricHeaders:
  [{name, type}], rows: [{dimensionValues: [{value}], metricValues: [{value}]}], rowCount,
  metadata, kind}``; every value a string, ``date`` as ``YYYYMMDD``, ``rowCount`` the total
  whatever the offset (shared API notes §2). The real endpoint is a POST with ``offset`` and
  ``limit`` in the body; a static file cannot answer a POST, so here they are query
  parameters of a GET: ``ga4/<offset>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import orjson

HUBSPOT_PAGE = 100  # the list endpoint's maximum
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
PROPERTIES = [
    "hs_object_id",
    "email",
    "lifecyclestage",
    "hs_analytics_source",
    "associatedcompanyid",
    "createdate",
    "lastmodifieddate",
] + [f"hs_lifecyclestage_{s}_date" for s in STAGES]
TIMESTAMP_PROPERTIES = ["createdate", "lastmodifieddate"] + [f"hs_lifecyclestage_{s}_date" for s in STAGES]
SOURCES = ["ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "DIRECT_TRAFFIC"]

GA4_DIMENSIONS = ["date", "sessionDefaultChannelGroup", "country", "deviceCategory"]
GA4_METRICS = [
    ("sessions", "TYPE_INTEGER"),
    ("totalUsers", "TYPE_INTEGER"),
    ("screenPageViews", "TYPE_INTEGER"),
    ("bounceRate", "TYPE_FLOAT"),
    ("totalRevenue", "TYPE_CURRENCY"),
]
CHANNELS = ["Organic Search", "Paid Search", "Direct", "Email", "Referral", "Organic Social", "Paid Social", "Display"]
COUNTRIES = [f"Country {i:02d}" for i in range(50)]
DEVICES = ["desktop", "mobile", "tablet"]
GA4_PROPERTY = "123456789"

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def hubspot_record(i: int) -> dict[str, object]:
    created = BASE + dt.timedelta(seconds=37 * i)
    modified = created + dt.timedelta(hours=i % 500)
    reached = i % len(STAGES)
    props: dict[str, object] = {
        "hs_object_id": str(i),
        "email": f"contact{i}@example.com",
        "lifecyclestage": STAGES[reached],
        "hs_analytics_source": SOURCES[i % len(SOURCES)],
        "associatedcompanyid": str(1000 + i % 997) if i % 3 else None,
        "createdate": _iso(created),
        "lastmodifieddate": _iso(modified),
    }
    for k, stage in enumerate(STAGES):
        props[f"hs_lifecyclestage_{stage}_date"] = _iso(created + dt.timedelta(days=k)) if k <= reached else None
    return {"id": str(i), "properties": props, "createdAt": _iso(created), "updatedAt": _iso(modified), "archived": False}


def render_hubspot(root: Path, records: int, base_url: str) -> int:
    """Write ``records`` contacts as list pages under ``root/hubspot``; returns the page count."""
    out = root / "hubspot"
    out.mkdir(parents=True, exist_ok=True)
    pages = 0
    for start in range(1, records + 1, HUBSPOT_PAGE):
        end = min(start + HUBSPOT_PAGE, records + 1)
        body: dict[str, object] = {"results": [hubspot_record(i) for i in range(start, end)]}
        if end <= records:
            link = f"{base_url}/crm/v3/objects/contacts?limit={HUBSPOT_PAGE}&after={end}"
            body["paging"] = {"next": {"after": str(end), "link": link}}
        name = "first" if start == 1 else str(start)
        (out / f"{name}.json").write_bytes(orjson.dumps(body))
        pages += 1
    return pages


def ga4_row(i: int) -> dict[str, object]:
    per_day = len(CHANNELS) * len(COUNTRIES) * len(DEVICES)
    day, rest = divmod(i, per_day)
    channel, rest = divmod(rest, len(COUNTRIES) * len(DEVICES))
    country, device = divmod(rest, len(DEVICES))
    date = (BASE.date() + dt.timedelta(days=day)).strftime("%Y%m%d")
    sessions = 1 + (i * 7919) % 500
    users = 1 + sessions * 3 // 4
    views = sessions * 3 + i % 11
    bounce = ((i * 31) % 1000) / 1000
    revenue = ((i * 104729) % 100000) / 100
    return {
        "dimensionValues": [{"value": v} for v in (date, CHANNELS[channel], COUNTRIES[country], DEVICES[device])],
        "metricValues": [{"value": str(v)} for v in (sessions, users, views, bounce, revenue)],
    }


def render_ga4(root: Path, records: int, page_size: int) -> int:
    """Write ``records`` report rows as runReport pages of ``page_size`` under ``root/ga4``."""
    out = root / "ga4"
    out.mkdir(parents=True, exist_ok=True)
    headers = {
        "dimensionHeaders": [{"name": d} for d in GA4_DIMENSIONS],
        "metricHeaders": [{"name": m, "type": t} for m, t in GA4_METRICS],
    }
    pages = 0
    for offset in range(0, records, page_size):
        rows = [ga4_row(i) for i in range(offset, min(offset + page_size, records))]
        body = {
            **headers,
            "rows": rows,
            "rowCount": records,
            "metadata": {"currencyCode": "USD", "timeZone": "America/Los_Angeles"},
            "kind": "analyticsData#runReport",
        }
        (out / f"{offset}.json").write_bytes(orjson.dumps(body))
        pages += 1
    return pages


def render(root: Path, shape: str, records: int, *, base_url: str, ga4_page: int) -> list[str]:
    """Render one shape; returns the URL paths of its pages in order (for the curl loop)."""
    marker = root / shape / "_rendered.json"
    key = {"records": records, "base_url": base_url, "ga4_page": ga4_page}
    if marker.exists() and json.loads(marker.read_text()) == key:
        pass  # the same pages are already there (a second latency mode, or a reused --pages-dir)
    elif shape == "hubspot":
        render_hubspot(root, records, base_url)
    else:
        render_ga4(root, records, ga4_page)
    marker.write_text(json.dumps(key))
    if shape == "hubspot":
        starts = range(1, records + 1, HUBSPOT_PAGE)
        return [HUBSPOT_PATH + ("" if s == 1 else f"&after={s}") for s in starts]
    return [f"{GA4_PATH}?limit={ga4_page}&offset={o}" for o in range(0, records, ga4_page)]


HUBSPOT_PATH = f"/crm/v3/objects/contacts?limit={HUBSPOT_PAGE}"
GA4_PATH = f"/v1beta/properties/{GA4_PROPERTY}:runReport"


def disk_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.json") if f.is_file()) if os.path.isdir(root) else 0
