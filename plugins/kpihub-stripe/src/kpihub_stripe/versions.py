"""Is ``stripe_version`` a real Stripe API version, and one the streams are written for? (``kpihub doctor``)

Since ``2024-09-30.acacia`` a version is ``YYYY-MM-DD.<release>``: twice a year a major release
with breaking changes starts, and "each monthly release includes only backward-compatible changes,
and uses the same name as the last major release" (docs.stripe.com/api/versioning; the release
model: docs.stripe.com/sdks/versioning). Versions before acacia are bare dates. Stripe does not
sunset versions; what ages is the shape of the objects: the streams read basil's (2025-03-31)
and, for invoices, the older top-level fields too. Later major releases have not been checked.
"""

from __future__ import annotations

import datetime as dt
import re

from kpihub import Diagnosis, HTTPError
from kpihub.http import Requester

#: Major releases and the day each began (docs.stripe.com/changelog: acacia, basil, clover,
#: dahlia 2026-03-25, endive 2026-09-30). Names run in alphabetical order.
RELEASES = (
    (dt.date(2024, 9, 30), "acacia"),
    (dt.date(2025, 3, 31), "basil"),
    (dt.date(2025, 9, 30), "clover"),
    (dt.date(2026, 3, 25), "dahlia"),
    (dt.date(2026, 9, 30), "endive"),
)
#: The major release whose object shapes the streams are written and tested for.
WRITTEN_FOR = "basil"
_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?")


def release_of(day: dt.date) -> str | None:
    """The major release a version dated ``day`` belongs to (``None`` before acacia)."""
    names = [name for start, name in RELEASES if start <= day]
    return names[-1] if names else None


def version_finding(version: str, today: dt.date) -> Diagnosis:
    """The offline verdict on ``version``."""
    match = _VERSION.fullmatch(version)
    try:
        day = dt.date.fromisoformat(match[1]) if match else None
    except ValueError:
        day = None
    if match is None or day is None:
        return Diagnosis("error", f"stripe_version {version!r} is not a Stripe API version (e.g. 2025-03-31.basil)")
    name, expected = match[2], release_of(day)
    if day > today:
        return Diagnosis("error", f"stripe_version {version} is dated after today ({today})")
    if name == "preview":
        return Diagnosis("warn", f"stripe_version {version} is a preview version: pin a stable release for syncs")
    if expected is None and name:
        return Diagnosis("error", f"stripe_version {version}: versions before 2024-09-30.acacia carry no release name")
    if expected is not None and name is None:
        return Diagnosis("warn", f"stripe_version {version} lacks the name of its release: write {day}.{expected}")
    if expected is not None and name != expected and not (day >= RELEASES[-1][0] and name > expected):
        return Diagnosis("error", f"stripe_version {version}: a version of {day} belongs to {expected}, not {name}")
    if expected is None or expected < WRITTEN_FOR:
        return Diagnosis(
            "ok", f"stripe_version {version} predates {WRITTEN_FOR}: invoices are read from their older fields"
        )
    if expected > WRITTEN_FOR:
        return Diagnosis(
            "warn",
            f"stripe_version {version} is newer than the {WRITTEN_FOR} shapes the streams are written for: "
            "check docs.stripe.com/changelog for breaking changes to customers, charges, refunds, invoices, "
            "subscriptions",
        )
    return Diagnosis("ok", f"stripe_version {version} is the release the streams are written for")


def diagnose(version: str, today: dt.date, http: Requester | None) -> Diagnosis:
    """:func:`version_finding`, then (with ``http``) whether Stripe accepts the version: one list
    request of one customer, refused with 400 "Invalid Stripe API version" when it does not."""
    offline = version_finding(version, today)
    if http is None or offline.level == "error":
        return offline
    try:
        http.json("GET", "/v1/customers", stream="doctor", params={"limit": 1})
    except HTTPError as exc:
        return Diagnosis("error", f"Stripe refuses the request with stripe_version {version}: {exc}")
    return Diagnosis(offline.level, f"{offline.message}; Stripe accepts it")
