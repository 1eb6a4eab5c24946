"""Authentication helpers for httpx."""

from __future__ import annotations

from collections.abc import Generator

import httpx
from pydantic import SecretStr

from kpihub.secrets import register_secret


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``; the token is registered for redaction."""

    def __init__(self, token: SecretStr | str) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        register_secret(value)
        self._header = f"Bearer {value}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"
