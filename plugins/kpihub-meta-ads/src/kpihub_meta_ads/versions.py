"""Is a Marketing API version still served? For ``kpihub doctor`` (:meth:`MetaAdsSource.diagnose`).

Meta supports a Marketing API version for at least 90 days after the next one is released; then
"any calls made to that version number may fail or be upgraded to the next available version"
(developers.facebook.com/docs/marketing-api/overview/versioning). An upgrade changes what the
insights fields mean without a word, so an expired version is an error, not a warning. The dates
are the Marketing API version history's (developers.facebook.com/docs/marketing-api/
marketing-api-changelog/versions), which are not the Graph API's: Marketing API v21.0 expired on
2025-09-09, its Graph API namesake lives until 2027.
"""

from __future__ import annotations

import datetime as dt
import re

from kpihub import Diagnosis

DOCS = "developers.facebook.com/docs/marketing-api/marketing-api-changelog/versions"
#: Marketing API version → (released, expires; None: not announced yet).
VERSIONS: dict[int, tuple[dt.date, dt.date | None]] = {
    18: (dt.date(2023, 9, 12), dt.date(2024, 8, 13)),
    19: (dt.date(2024, 1, 23), dt.date(2025, 2, 4)),
    20: (dt.date(2024, 5, 21), dt.date(2025, 5, 6)),
    21: (dt.date(2024, 10, 2), dt.date(2025, 9, 9)),
    22: (dt.date(2025, 1, 21), dt.date(2026, 2, 19)),
    23: (dt.date(2025, 5, 29), dt.date(2026, 6, 9)),
    24: (dt.date(2025, 10, 8), dt.date(2026, 11, 10)),
    25: (dt.date(2026, 2, 18), dt.date(2027, 2, 23)),
    26: (dt.date(2026, 7, 29), None),
    27: (dt.date(2026, 11, 4), None),
}
#: Warn this long before a version expires.
WARN_BEFORE = dt.timedelta(days=60)
_VERSION = re.compile(r"v(\d+)\.0")


def diagnose(version: str, today: dt.date) -> Diagnosis:
    """Malformed, expired, expiring soon, newer than this table, or fine: offline, from the dates above."""
    match = _VERSION.fullmatch(version)
    if not match:
        return Diagnosis("error", f"api_version {version!r} is not a Marketing API version (like 'v26.0')")
    number = int(match[1])
    served = [n for n, (released, expires) in VERSIONS.items() if released <= today and (expires or today) >= today]
    newest = f"v{max(served)}.0" if served else "the newest"
    if number not in VERSIONS:
        if number < min(VERSIONS):
            return Diagnosis("error", f"api_version {version} expired years ago ({DOCS}): set api_version = {newest!r}")
        return Diagnosis("ok", f"api_version {version} is newer than the versions kpihub-meta-ads knows ({DOCS})")
    released, expires = VERSIONS[number]
    if released > today:
        return Diagnosis("error", f"api_version {version} is not released yet (it is due {released})")
    if expires is not None and expires <= today:
        return Diagnosis(
            "error",
            f"Marketing API {version} expired on {expires}: Meta fails its calls or upgrades them to another "
            f"version ({DOCS}); set api_version = {newest!r}",
        )
    if expires is not None and expires - today <= WARN_BEFORE:
        return Diagnosis("warn", f"Marketing API {version} expires on {expires}: move to api_version = {newest!r}")
    return Diagnosis("ok", f"Marketing API {version} is served" + (f" until {expires}" if expires else ""))
