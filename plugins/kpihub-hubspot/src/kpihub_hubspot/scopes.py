"""Does the token hold the scopes the streams need? For ``kpihub doctor`` (:meth:`HubSpotSource.diagnose`).

A private-app token's scopes come from ``POST /oauth/v2/private-apps/get/access-token-info`` with
``{"tokenKey": <token>}``, answered ``{userId, hubId, appId, scopes: [...]}``
(developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview, at the end). The token goes
in the body only to the configured ``base_url``, the host its ``Authorization`` header already
reaches. OAuth access tokens have their own endpoint (``GET /oauth/v1/access-tokens/{token}``);
this connector is configured with private-app tokens (``pat-…``), so only those are checked.
Each stream's read scope: developers.hubspot.com/docs/api/working-with-oauth#scopes (deal
pipelines are read with the deals scope).
"""

from __future__ import annotations

from collections.abc import Sequence

from kpihub import Diagnosis, HTTPError
from kpihub.http import Requester

TOKEN_INFO = "/oauth/v2/private-apps/get/access-token-info"
#: The scope each stream's requests need.
STREAM_SCOPES = {
    "contacts": "crm.objects.contacts.read",
    "companies": "crm.objects.companies.read",
    "deals": "crm.objects.deals.read",
    "deal_pipelines": "crm.objects.deals.read",
    # HubSpot's OpenAPI spec for the object (PublicApiSpecs/CRM/Feedback Submissions/…/v3).
    "feedback_submissions": "crm.objects.feedback_submissions.read",
}


def missing_scopes(granted: Sequence[str], streams: Sequence[str]) -> dict[str, list[str]]:
    """Scope → the streams that need it, for the scopes the token lacks."""
    out: dict[str, list[str]] = {}
    for stream in streams:
        scope = STREAM_SCOPES.get(stream)
        if scope is not None and scope not in granted:
            out.setdefault(scope, []).append(stream)
    return out


def diagnose(token: str, streams: Sequence[str], http: Requester | None) -> Diagnosis | None:
    """The token's scopes against the streams', or ``None`` when there is nothing to ask (offline)."""
    if http is None:
        return None
    if not token.startswith("pat-"):
        return Diagnosis("warn", "scopes not checked: the token is not a private-app token (pat-…)")
    try:
        info = http.json("POST", TOKEN_INFO, stream="doctor", json={"tokenKey": token})
    except HTTPError as exc:
        return Diagnosis("error", f"could not read the token's scopes: {exc}")
    missing = missing_scopes(info.get("scopes") or [], streams)
    if missing:
        lacks = "; ".join(f"{scope} (for {', '.join(names)})" for scope, names in missing.items())
        return Diagnosis("error", f"the private app's token lacks {lacks}: add the scope to the app in HubSpot")
    return Diagnosis("ok", f"the token holds the scopes of every stream (portal {info.get('hubId')})")
