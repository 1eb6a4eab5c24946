"""Service-account auth for Google APIs: google-auth signs the JWT, httpx carries the requests.

google-auth (Google's maintained library) builds and RS256-signs the
assertion and parses the token response; this module only adapts its
transport interface to httpx and presents the result as an ``httpx.Auth``.
The token endpoint is the key file's ``token_uri``, so tests point it at a fake.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx

from kpihub import ConfigError, register_secret
from kpihub.http import RENEWALS_ON_401, OAuthError, TokenEndpointUnavailable

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"


class _Response:
    """google.auth.transport.Response over an httpx.Response."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = dict(response.headers)
        self.data = response.content


class _Request:
    """google.auth.transport.Request made with httpx (so no requests/urllib3 stack is needed)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        with httpx.Client(timeout=timeout or self.timeout) as client:
            return _Response(client.request(method, url, content=body, headers=dict(headers or {})))


class ServiceAccountAuth(httpx.Auth):
    """Bearer tokens for a service account key file, renewed before they expire."""

    def __init__(self, key_file: str | Path, scope: str = SCOPE) -> None:
        from google.oauth2 import service_account

        path = Path(key_file).expanduser()
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"service-account key file {str(path)!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"service-account key file {str(path)!r} is not a JSON key: {exc}") from None
        if info.get("type") != "service_account" or "private_key" not in info:
            raise ConfigError(f"{str(path)!r} is not a service-account key (type 'service_account' with a private_key)")
        register_secret(info["private_key"])
        for line in info["private_key"].splitlines():
            register_secret(line if len(line) > 40 else None)
        self.token_uri = info.get("token_uri", "https://oauth2.googleapis.com/token")
        self.credentials = service_account.Credentials.from_service_account_info(info, scopes=[scope])
        self._lock = threading.Lock()

    def _token(self, renew: bool = False) -> str:
        from google.auth.exceptions import RefreshError, TransportError

        with self._lock:
            if renew or not self.credentials.valid:
                try:
                    self.credentials.refresh(_Request())
                except RefreshError as exc:
                    first = str(exc).splitlines()[0][:200]
                    if getattr(exc, "retryable", False):  # google-auth's verdict: 429/5xx of the endpoint
                        raise TokenEndpointUnavailable(f"token endpoint {self.token_uri}: {first}") from None
                    raise OAuthError(f"token endpoint {self.token_uri} refused the service account: {first}") from None
                except (TransportError, httpx.TransportError, ValueError) as exc:  # ValueError: a body not JSON
                    raise TokenEndpointUnavailable(f"token endpoint {self.token_uri}: {type(exc).__name__}") from None
                register_secret(self.credentials.token)
            return str(self.credentials.token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        response = yield request
        for _ in range(RENEWALS_ON_401):  # revoked or expired early: a fresh token, another try
            if response.status_code != 401:
                break
            request.headers["Authorization"] = f"Bearer {self._token(renew=True)}"
            response = yield request

    def __repr__(self) -> str:
        return f"ServiceAccountAuth(client_email={self.credentials.service_account_email!r})"
