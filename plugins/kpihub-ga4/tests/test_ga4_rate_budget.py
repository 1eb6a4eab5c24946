"""GA4's token quotas, enforced by the fake on a simulated clock: tokens per hour spent fully, per day stops cleanly."""

from __future__ import annotations

import datetime as dt

from kpihub_ga4 import GA4Source
from kpihub_ga4.fake import FakeGA4, GA4Quota
from kpihub_ga4.source import observe_rate

from kpihub.http import SimulatedClock
from kpihub.testing.conformance import SourceConformance


class _GA4(SourceConformance):  # its helpers only: the suite itself runs in test_ga4.py
    __test__ = False
    source = GA4Source()


def pipeline(tmp_path, server, clock, **overrides):
    c = _GA4()
    settings = {
        "base_url": server.url,
        "token_url": f"{server.url}/token",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "refresh_token": server.refresh_token,
        "lookback_days": 2,
        "property_ids": ["312345678"],
        "page_size": 10,
        "max_concurrency": 1,
        "max_retry_after": 4_000,  # an hour's tokens come back within the run
        "landing_pages": False,  # one report stream: the quotas' arithmetic below is its
        **overrides,
    }
    p = c.pipeline(tmp_path, settings, sleep=clock.sleep)
    p.clock = clock
    return p


def rows(p):
    with p.open_destination(read_only=True) as s:
        table = s.read_table("web_traffic_daily").to_pylist()
    return sorted((tuple(v for k, v in r.items() if "loaded" not in k) for r in table), key=str)


def test_tokens_per_hour_are_spent_fully_without_a_429(tmp_path):
    clock = SimulatedClock()
    quota = GA4Quota(tokens_per_hour=40, clock=clock)
    with FakeGA4(start=dt.date(2026, 3, 1), quota=quota) as server:
        p = pipeline(tmp_path, server, clock, start_date="2026-03-01", page_size=5)
        start = clock()
        result = p.sync()
        elapsed = clock() - start
    assert result.ok, [s.error for s in result.streams]
    # Each hour the run waited through was spent: the sync took no longer than the budget forces.
    used = quota.consumed / (40 * (elapsed / 3600))
    assert quota.served >= 120 and quota.refused == 0
    assert used >= 0.95, (quota.consumed, elapsed)


def test_tokens_per_day_stop_cleanly_and_the_next_day_resumes(tmp_path):
    clock = SimulatedClock()
    quota = GA4Quota(tokens_per_day=8, clock=clock)
    with FakeGA4(start=dt.date(2026, 6, 1), quota=quota) as server:
        p = pipeline(tmp_path / "a", server, clock, start_date="2026-06-01")
        first = p.sync()
        (stream,) = first.streams
        assert stream.status == "quota" and "tokens per day" in stream.error and "UTC" in stream.error
        assert quota.refused == 0  # propertyQuota said the day was spent: the next report was never sent
        # A report window is replaced in one commit (docs/reliability.md): a part of it is not committed.
        assert quota.served == 8
        server.new_day()
        quota.tokens_per_day = 10_000
        assert p.sync().ok
        resumed = rows(p)
        fresh = pipeline(tmp_path / "b", server, clock, start_date="2026-06-01")
        assert fresh.sync().ok
        assert resumed == rows(fresh)  # the same table as one uninterrupted sync


def test_an_exhausted_day_from_a_429_is_a_quota_too(tmp_path):
    clock = SimulatedClock()
    with FakeGA4(start=dt.date(2026, 6, 25)) as server:
        server.fail(status=429, body=server.quota_per_day(), path=":runReport$", times=1)
        p = pipeline(tmp_path, server, clock, start_date="2026-06-25")
        result = p.sync()
    assert result.streams[0].status == "quota" and result.quota
    assert clock.slept == []  # not retried


def test_property_quota_is_read_from_the_end_of_the_body():
    import httpx

    body = b'{"rows": [{"dimensionValues": [{"value": "{"}]}], "propertyQuota": {"tokensPerHour": {"consumed": 3, "remaining": 7}, "tokensPerDay": {"consumed": 3, "remaining": 0}}}'
    request = httpx.Request("POST", "https://x/v1beta/properties/42:runReport")
    found = observe_rate(httpx.Response(200, content=body, request=request))
    assert [(o.name, o.key, o.remaining, o.cost) for o in found[:2]] == [
        ("tokens_hour", "42", 7.0, 3.0),
        ("tokens_day", "42", 0.0, 3.0),
    ]
    assert found[2].quota is not None
