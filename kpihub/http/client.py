"""The httpx client factory: timeouts, user agent, connection reuse."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from kpihub import __version__

USER_AGENT = f"kpihub/{__version__} (+https://github.com/kpihub/kpihub)"


def make_client(
    base_url: str,
    *,
    timeout: float = 30.0,
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    user_agent: str | None = None,
    max_connections: int = 8,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """Return an ``httpx.Client`` for one source: keep-alive pool, timeouts, user agent."""
    all_headers = {"User-Agent": user_agent or USER_AGENT, "Accept": "application/json"}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        auth=auth,
        headers=all_headers,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        transport=transport,
        follow_redirects=True,
    )
