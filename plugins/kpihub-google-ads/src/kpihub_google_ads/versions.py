"""Is a Google Ads API version still served? For ``kpihub doctor`` (:meth:`GoogleAdsSource.diagnose`).

A major version lives about a year; "after a version's sunset date, that version is no longer
available" and every request to it fails (developers.google.com/google-ads/api/docs/sunset-dates).
The sunsets below are Google's announcements (the Ads developer blog's sunset reminders: v19 on
2026-02-11, v20 on 2026-06-10, v21 on 2026-08-05, v22 on 2026-10-07) and, for the versions not
yet announced, the month the 2026 release schedule projects (developers.google.com/ads/blog/
posts/2025/09/more-frequent-releases-coming-for), taken as that month's first day to warn early.
"""

from __future__ import annotations

import datetime as dt
import re

from kpihub import Diagnosis

DOCS = "developers.google.com/google-ads/api/docs/sunset-dates"
#: Major version → its sunset (a projected one: the first day of its projected month).
SUNSETS: dict[int, dt.date] = {
    19: dt.date(2026, 2, 11),
    20: dt.date(2026, 6, 10),
    21: dt.date(2026, 8, 5),
    22: dt.date(2026, 10, 7),
    23: dt.date(2027, 2, 1),
    24: dt.date(2027, 5, 1),
    25: dt.date(2027, 8, 1),
    26: dt.date(2027, 11, 1),
}
#: Warn this long before a version's sunset.
WARN_BEFORE = dt.timedelta(days=60)
_VERSION = re.compile(r"v(\d+)")


def diagnose(version: str, today: dt.date) -> Diagnosis:
    """Malformed, sunset, near its sunset, newer than this table, or fine: offline, from the dates above
    (a version not released yet is Google's to refuse: the check names it)."""
    match = _VERSION.fullmatch(version)
    if not match:
        return Diagnosis("error", f"api_version {version!r} is not a Google Ads API version (like 'v26')")
    number = int(match[1])
    served = [n for n, sunset in SUNSETS.items() if sunset > today]
    newest = f"v{max(served)}" if served else "the newest"
    if number not in SUNSETS:
        if number < min(SUNSETS):
            return Diagnosis("error", f"api_version {version} was sunset long ago ({DOCS}): use {newest!r}")
        return Diagnosis("ok", f"api_version {version} is newer than the versions kpihub-google-ads knows ({DOCS})")
    sunset = SUNSETS[number]
    if sunset <= today:
        return Diagnosis(
            "error", f"Google Ads API {version} was sunset on {sunset}: every request fails ({DOCS}); "
            f"set api_version = {newest!r}",
        )  # fmt: skip
    if sunset - today <= WARN_BEFORE:
        return Diagnosis("warn", f"Google Ads API {version} is sunset about {sunset}: move to api_version = {newest!r}")
    return Diagnosis("ok", f"Google Ads API {version} is served until about {sunset}")
