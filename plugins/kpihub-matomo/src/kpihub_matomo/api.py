"""Matomo's Reporting API on the wire: the request, the token, the error body, date-keyed answers.

Every call is ``POST {base_url}/index.php?module=API&method=<Module.method>&idSite=…&period=day
&date=YYYY-MM-DD,YYYY-MM-DD&format=JSON`` with ``token_auth`` in the form body, never in the URL:
"If you enable the setting, Only allow secure requests, the token is valid for secure requests only
(via POST requests) and will not be valid when used as an URL parameter for a GET request"
(matomo.org/faq/general/faq_114), and Matomo only counts a token as sent securely when it is in
``$_POST`` and not in ``$_GET`` (``Request::isTokenAuthProvidedSecurely``, core/API/Request.php).
The other parameters may stay in the query: Matomo reads ``$_GET + $_POST``.

Matomo answers most errors with HTTP 200 and ``{"result": "error", "message": "…"}``
(plugins/API/Renderer/Json.php ``renderException``); only exceptions that carry an HTTP code
(``NoAccessException``: 401) change the status (core/API/ResponseBuilder.php). With ``period=day`` and a
date range the body is an object keyed by ``YYYY-MM-DD``, each day a list of rows (a report) or a
row object (``API.get``), ``[]`` for a day without data (developer.matomo.org/api-reference/reporting-api:
"All reports are returned for the dates based on the website's time zone").
"""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from collections.abc import Generator, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from kpihub import register_secret
from kpihub.http import Requester

__all__ = ["API_PATH", "MatomoAPIError", "TokenAuth", "WireError", "call", "count", "days", "number", "per_day"]

API_PATH = "/index.php"


class WireError(ValueError):
    """A Matomo answer that is not in the shape this connector reads (the caller names the stream)."""


class MatomoAPIError(Exception):
    """Matomo's own error body (``{"result": "error", "message": …}``), sent with HTTP 200."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method
        self.message = message


class TokenAuth(httpx.Auth):
    """``token_auth`` as a POST form field on every request (registered for redaction)."""

    def __init__(self, token: SecretStr | str) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        register_secret(value)
        self._body = urllib.parse.urlencode({"token_auth": value}).encode()
        register_secret(self._body.decode())

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request as a POST whose form body carries the token (its query is unchanged)."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "content-type")}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        yield httpx.Request("POST", request.url, headers=headers, content=self._body, extensions=request.extensions)

    def __repr__(self) -> str:
        return "TokenAuth(token_auth=***)"


def call(http: Requester, method: str, params: Mapping[str, Any], *, stream: str) -> Any:
    """The parsed answer of ``method``; Matomo's HTTP-200 error body raises :class:`MatomoAPIError`."""
    query = {"module": "API", "method": method, "format": "JSON", **params}
    body = http.json("POST", API_PATH, stream=stream, params=query)
    if isinstance(body, dict) and body.get("result") == "error":
        raise MatomoAPIError(method, " ".join(str(body.get("message", "(no message)")).split()))
    return body


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def per_day(body: Any, first: dt.date, last: dt.date) -> dict[dt.date, Any]:
    """The answer for ``date=first,last&period=day``: each asked day's value, and no other day."""
    if not isinstance(body, dict):
        raise WireError(f"expected an object keyed by date for {first}..{last}, got {type(body).__name__}")
    asked = {d.isoformat(): d for d in days(first, last)}
    missing = sorted(set(asked) - set(body))
    extra = sorted(set(body) - set(asked))
    if missing or extra:
        said = f"missing {', '.join(missing[:3])}" if missing else f"days not asked for: {', '.join(extra[:3])}"
        raise WireError(f"the answer for {first}..{last} does not hold each day once ({said})")
    return {asked[key]: value for key, value in body.items()}


def number(row: Mapping[str, Any], column: str, *, default: float | None = 0) -> float | None:
    """A metric of a row: Matomo sends numbers as JSON numbers or as strings (``"12.3450"``)."""
    value = row.get(column)
    if value is None:
        return default
    if isinstance(value, bool):
        raise WireError(f"{column} is {value!r}, not a number")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise WireError(f"{column} is {value!r}, not a number") from None
    else:
        raise WireError(f"{column} is {value!r}, not a number")
    if not math.isfinite(out) or out < 0:
        raise WireError(f"{column} is {value!r}, not a count or a duration")
    return out


def count(row: Mapping[str, Any], column: str) -> int:
    """A count metric (hits, visits): a whole number, however Matomo wrote it."""
    value = number(row, column)
    assert value is not None
    if value != int(value):
        raise WireError(f"{column} is {row.get(column)!r}, not a whole number")
    return int(value)
