"""HubSpot search while the data changes: records modified, added and deleted between page requests.

The search API's ``after`` is an offset into the live result sorted by modification time
(developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm, "Paging through results"),
so a record modified mid-sync moves to the end and every record behind it shifts one place
earlier. The fake does the same (``FakeHubSpot.live_changes`` through ``between_pages``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from kpihub_hubspot.fake import EPOCH, FakeHubSpot, HubSpotData

from kpihub import Pipeline, Project
from kpihub.testing import ProjectSettings, Registry

CURSOR = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}


@pytest.fixture
def registry() -> Registry:
    import kpihub_hubspot

    reg = Registry(load_entrypoints=False)
    reg.register_plugin(kpihub_hubspot, "hubspot", distribution="kpihub-hubspot")
    return reg


def pipeline(tmp_path: Path, server: FakeHubSpot, registry: Registry, page_size: int) -> Pipeline:
    source = {
        "base_url": server.url,
        "token": server.token,
        "requests_per_second": None,
        "rate_budget": False,  # the fake enforces no limits here: nothing to pace
        "search_lag_seconds": 0,
        "page_size": page_size,
    }
    project = Project(
        path=tmp_path / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{tmp_path}/hs.duckdb", chunk_rows=500),
        sources={"hubspot": source},
    )
    return Pipeline(project, registry=registry)


def ms_to_dt(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def loaded(p: Pipeline, kind: str) -> dict[str, dict]:
    with p.open_destination(read_only=True) as s:
        return {r["id"]: r for r in s.read_table(f"hubspot_{kind}").to_pylist()}


def cursor_of(p: Pipeline, kind: str) -> dt.datetime:
    with p.open_destination(read_only=True) as s:
        return dt.datetime.fromisoformat(s.get_state(f"hubspot.{kind}")["cursor"])


def live_ids(data: HubSpotData, kind: str) -> set[int]:
    return {rid for rid, r in data.stores[kind].records.items() if not r.archived}


def assert_nothing_lost(p: Pipeline, data: HubSpotData, kind: str, before: set[int]) -> None:
    """Every record that existed before the sync (and still exists) was read, and the cursor is not past a gap."""
    rows, cursor = loaded(p, kind), cursor_of(p, kind)
    store = data.stores[kind].records
    missing = sorted(rid for rid in before & live_ids(data, kind) if str(rid) not in rows)
    behind_cursor = [rid for rid in missing if ms_to_dt(store[rid].props[CURSOR[kind]]) <= cursor]
    assert not behind_cursor, f"{len(behind_cursor)} {kind} lost for good (the cursor moved past them)"
    assert not missing, f"{len(missing)} of {len(before)} {kind} that existed before the sync are missing"


def test_contacts_modified_while_a_full_sync_pages_are_not_lost(tmp_path, registry):
    """~1 % of 3,000 contacts move to the end of the sort order while 60 pages are read."""
    data = HubSpotData(seed=31, contacts=3_000)
    with FakeHubSpot(data=data) as server:
        before = live_ids(data, "contacts")
        hook = server.between_pages(server.live_changes(touch=1), every=2, path=r"/contacts/search$")
        p = pipeline(tmp_path, server, registry, page_size=50)
        result = p.sync(streams=["contacts"])
    assert result.ok, result.streams[0].error
    assert hook.error is None and hook.runs >= 29  # about 30 contacts moved mid-sync
    assert_nothing_lost(p, data, "contacts", before)


@pytest.mark.parametrize("kind", ["contacts", "companies", "deals"])
def test_ten_percent_changed_added_deleted_during_paging_loses_nothing_and_the_next_sync_has_every_change(
    tmp_path, registry, kind
):
    data = HubSpotData(seed=41, contacts=3_000)
    n = len(data.stores[kind].records)
    page_size = max(10, n // 50)
    per_page = -(-n // 10 // (n // page_size))  # ~10 % of the records over the pages of one pass
    with FakeHubSpot(data=data) as server:
        before = live_ids(data, kind)
        hook = server.between_pages(
            server.live_changes(touch=per_page, add=1, delete=1, seed=7), path=rf"/{kind}/search$"
        )
        p = pipeline(tmp_path, server, registry, page_size=page_size)
        first = p.sync(streams=[kind])
        assert first.ok, first.streams[0].error
        server.clear_page_hooks()
        assert hook.error is None and hook.runs * per_page >= n // 10  # at least 10 % modified mid-sync
        created = set(data.stores[kind].records) - before
        assert len(created) == hook.runs and len(before - live_ids(data, kind)) > 0  # adds and deletes too
        assert_nothing_lost(p, data, kind, before)

        second = p.sync(streams=[kind])
        assert second.ok, second.streams[0].error
    rows, store = loaded(p, kind), data.stores[kind].records
    stale = [
        rid
        for rid in live_ids(data, kind)
        if str(rid) not in rows or rows[str(rid)][CURSOR[kind]] != ms_to_dt(store[rid].props[CURSOR[kind]])
    ]
    assert not stale, f"{len(stale)} {kind} differ from the fake's truth after the next incremental sync"


def test_more_ties_than_a_page_at_one_instant_while_data_changes(tmp_path, registry):
    """HubSpot documents no order among ties (the fake scrambles them): 130 and 75 contacts share two instants."""
    data = HubSpotData(seed=43, contacts=600)
    store = data.stores["contacts"]
    order = store.in_search_order()
    for i, rid in enumerate(order[100:305]):
        store.records[rid].props["lastmodifieddate"] = data.start_ms + (1000 if i < 130 else 2000)
    store.reindex()
    with FakeHubSpot(data=data) as server:
        before = live_ids(data, "contacts")
        server.between_pages(server.live_changes(touch=2), path=r"/contacts/search$")
        p = pipeline(tmp_path, server, registry, page_size=50)
        assert p.sync(streams=["contacts"]).ok
        by_id = [
            r.json()["filterGroups"][0]["filters"][0]["value"]
            for r in server.requests
            if r.path.endswith("/search") and r.json()["sorts"][0]["propertyName"] == "hs_object_id"
        ]
    assert_nothing_lost(p, data, "contacts", before)
    assert len(loaded(p, "contacts")) == 600
    assert str(data.start_ms + 1000) in by_id  # the 130-record instant was read in id order
