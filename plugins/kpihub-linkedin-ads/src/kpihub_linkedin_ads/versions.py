"""Is a ``LinkedIn-Version`` still supported? For ``kpihub doctor`` (:meth:`LinkedInAdsSource.diagnose`).

LinkedIn's Marketing API versions are ``YYYYMM`` (monthly since 202206) and each is "supported and
stable for a minimum of one year before sunset" (learn.microsoft.com/en-us/linkedin/marketing/
versioning). The migrations page dates each sunset about a year and two weeks after the release:
202410 on October 15, 2025, 202411 on November 17, 2025 (learn.microsoft.com/en-us/linkedin/
marketing/integrations/migrations). A sunset version is answered ``426 NONEXISTENT_VERSION``.
"""

from __future__ import annotations

import datetime as dt
import re

from kpihub import Diagnosis, HTTPError
from kpihub.http import Requester

FIRST = dt.date(2022, 6, 1)
#: Warn this long before the estimated sunset.
WARN_BEFORE = dt.timedelta(days=60)
_VERSION = re.compile(r"(\d{4})(\d{2})(?:\.\d{2})?")
DOCS = "learn.microsoft.com/en-us/linkedin/marketing/versioning"


def sunset(release: dt.date) -> dt.date:
    """When a version released in ``release``'s month is sunset, about: the 15th a year later."""
    return dt.date(release.year + 1, release.month, 15)


def version_finding(version: str, today: dt.date) -> Diagnosis:
    """The offline verdict on ``version``: malformed, not released yet, sunset, near sunset, or fine."""
    match = _VERSION.fullmatch(version)
    if not match or not 1 <= int(match[2]) <= 12:
        return Diagnosis("error", f"api_version {version!r} is not a LinkedIn version (YYYYMM, e.g. 202510)")
    release = dt.date(int(match[1]), int(match[2]), 1)
    if release < FIRST:
        return Diagnosis("error", f"api_version {version} predates LinkedIn's first versioned release 202206")
    if release > today:
        return Diagnosis("error", f"api_version {version} is not released yet (today is {today:%Y-%m})")
    end = sunset(release)
    if today >= end:
        return Diagnosis(
            "error",
            f"api_version {version} was sunset about {end} (LinkedIn supports a version about a year, {DOCS}): "
            "set api_version to one released in the last 12 months",
        )
    if today >= end - WARN_BEFORE:
        return Diagnosis("warn", f"api_version {version} is sunset about {end}: move to a newer version before then")
    return Diagnosis("ok", f"api_version {version} is supported until about {end}")


def diagnose(version: str, account: str, today: dt.date, http: Requester | None) -> Diagnosis:
    """The verdict on ``version``: :func:`version_finding`, then (with ``http``) what LinkedIn says.

    A version that is malformed, older than versioning or not released yet is not asked about.
    """
    offline = version_finding(version, today)
    if http is None or (offline.level == "error" and "sunset about" not in offline.message):
        return offline
    return online_finding(version, account, offline, http)


def online_finding(version: str, account: str, offline: Diagnosis, http: Requester) -> Diagnosis:
    """What LinkedIn says of ``version``: one ad-account read (the request ``check`` makes) with it.

    LinkedIn's answer beats the estimate: a version past its estimated sunset that is still
    accepted is a warning, and any version it refuses with 426 is an error.
    """
    try:
        http.json("GET", f"/rest/adAccounts/{account}", stream="doctor")
    except HTTPError as exc:
        if exc.status_code == 426:
            return Diagnosis("error", f"LinkedIn refuses api_version {version} (426): {exc}")
        return Diagnosis("error", f"could not check api_version {version}: {exc}")
    if offline.level == "ok":
        return Diagnosis("ok", f"{offline.message}; LinkedIn accepts it")
    end = sunset(dt.date(int(version[:4]), int(version[4:6]), 1))
    return Diagnosis(
        "warn",
        f"api_version {version} is past or near its sunset (about {end}) but LinkedIn still "
        "accepts it: move to a newer version",
    )
