"""Authentication helpers for httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import httpx
from pydantic import SecretStr

from kpihub.errors import SourceError
from kpihub.secrets import register_secret

#: Fresh tokens an auth flow tries on a request answered 401 before that answer stands. A renewed
#: token can be revoked too before the request is retried (with pages in flight, another request's
#: renewal or a revocation lands in between): each revocation costs a request one renewal.
RENEWALS_ON_401 = 3


class OAuthError(SourceError):
    """Raised when the OAuth token endpoint refuses to issue an access token."""


class TokenEndpointUnavailable(OAuthError):
    """The token endpoint failed in a way that may pass (429, 5xx, a body that is not JSON): retried."""


_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``; the token is registered for redaction."""

    def __init__(self, token: SecretStr | str) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        register_secret(value)
        self._header = f"Bearer {value}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's auth hook: set the ``Authorization: Bearer`` header on each request."""
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class OAuthRefreshToken(httpx.Auth):
    """OAuth 2.0 refresh-token grant (RFC 6749 §6): fetch, cache and renew an access token.

    Google (Ads, GA4) and LinkedIn issue short-lived access tokens from a long-lived
    refresh token. The token endpoint is configurable so tests use a fake. A 401
    on an API call renews the token once and retries the request.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        *,
        client_id: str,
        client_secret: SecretStr | str,
        refresh_token: SecretStr | str,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret.get_secret_value() if isinstance(client_secret, SecretStr) else client_secret
        self._refresh = refresh_token.get_secret_value() if isinstance(refresh_token, SecretStr) else refresh_token
        register_secret(self._secret)
        register_secret(self._refresh)
        self.scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        #: Tokens fetched so far (tests and logs).
        self.fetches = 0

    def _token_request(self) -> httpx.Request:
        data = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "refresh_token": self._refresh,
        }
        if self.scope:
            data["scope"] = self.scope
        return httpx.Request("POST", self.token_url, data=data, headers={"Accept": "application/json"})

    def _store(self, response: httpx.Response) -> None:
        if response.status_code in _TRANSIENT:
            raise TokenEndpointUnavailable(f"token endpoint {self.token_url}: HTTP {response.status_code}")
        if response.status_code != 200:
            try:
                body = response.json()
                reason = body.get("error_description") or body.get("error") or response.text
            except ValueError:
                reason = response.text
            raise OAuthError(
                f"token endpoint {self.token_url} refused the refresh token: HTTP "
                f"{response.status_code}: {str(reason)[:200]}"
            )
        try:
            body = response.json()
        except ValueError:
            raise TokenEndpointUnavailable(f"token endpoint {self.token_url}: the answer is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise OAuthError(f"token endpoint {self.token_url} answered without an access_token")
        register_secret(token)
        self._token = token
        # Renew a minute early so a token never expires mid-request.
        self._expires = self._clock() + float(body.get("expires_in", 3600)) - 60
        self.fetches += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's auth hook: fetch an access token when there is none or it expired, then send.

        A 401 renews the token and sends again, up to :data:`RENEWALS_ON_401` times; a 401 after
        that is the platform's answer and is returned as it is.
        """
        with self._lock:
            fresh = self._token is None or self._clock() >= self._expires
        if fresh:
            self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        # A token revoked or expired early: renew it and try again; a 401 that persists is the
        # platform's answer.
        for _ in range(RENEWALS_ON_401):
            if response.status_code != 401:
                break
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            response = yield request

    def __repr__(self) -> str:
        return f"OAuthRefreshToken(token_url={self.token_url!r}, client_id={self.client_id!r}, secrets=***)"


def _reveal(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class ApiKeyAuth(httpx.Auth):
    """An API key in a header (``X-API-Key: <key>``) or a query parameter (``?api_key=<key>``).

    The key is registered for redaction, so a URL carrying it is logged with ``***``.
    """

    def __init__(self, name: str, key: SecretStr | str, *, where: str = "header", prefix: str = "") -> None:
        if where not in ("header", "query"):
            raise ValueError(f"an API key goes in a header or the query, not {where!r}")
        self.name, self.where = name, where
        self._value = prefix + _reveal(key)
        register_secret(_reveal(key))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header, or add the query parameter, on every request."""
        if self.where == "header":
            request.headers[self.name] = self._value
        else:
            request.url = request.url.copy_merge_params({self.name: self._value})
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyAuth(name={self.name!r}, where={self.where!r}, key=***)"


class BasicAuth(httpx.BasicAuth):
    """HTTP Basic auth (RFC 7617) whose password and header are registered for redaction
    (Zendesk's ``{email}/token:{api_token}``, Delighted's API key as the user name)."""

    def __init__(self, username: SecretStr | str, password: SecretStr | str = "") -> None:
        super().__init__(_reveal(username), _reveal(password))
        for secret in (_reveal(password), self._auth_header.split(" ", 1)[1]):
            if secret:
                register_secret(secret)
        if isinstance(username, SecretStr):
            register_secret(_reveal(username))

    def __repr__(self) -> str:
        return "BasicAuth(credentials=***)"
