"""``kpihub doctor``'s verdict on ``api_version``, on fixed days (LinkedIn's migrations table)."""

from __future__ import annotations

import datetime as dt

import pytest
from kpihub_linkedin_ads.versions import sunset, version_finding


def test_the_sunset_estimate_matches_linkedins_table():
    # learn.microsoft.com/en-us/linkedin/marketing/integrations/migrations: 202410 on Oct 15, 2025;
    # 202411 on Nov 17, 2025 (the estimate says the 15th).
    assert sunset(dt.date(2024, 10, 1)) == dt.date(2025, 10, 15)
    assert abs(sunset(dt.date(2024, 11, 1)) - dt.date(2025, 11, 17)) <= dt.timedelta(days=3)


@pytest.mark.parametrize(
    ("version", "level", "start"),
    [
        ("202510", "ok", "api_version 202510 is supported until about 2026-10-15"),
        ("202505", "warn", "api_version 202505 is sunset about 2026-05-15: move to a newer version"),
        ("202503", "error", "api_version 202503 was sunset about 2026-03-15"),
        ("202205", "error", "api_version 202205 predates LinkedIn's first versioned release 202206"),
        ("202605", "error", "api_version 202605 is not released yet (today is 2026-04)"),
        ("202613", "error", "api_version '202613' is not a LinkedIn version"),
        ("2025-10", "error", "api_version '2025-10' is not a LinkedIn version"),
    ],
)
def test_version_verdicts(version, level, start):
    finding = version_finding(version, dt.date(2026, 4, 1))
    assert (finding.level, finding.message[: len(start)]) == (level, start)
