"""Keep secrets out of logs, errors, state and files.

Every ``SecretStr`` that settings load is registered here; :func:`redact`
replaces each registered value (and credential-looking URL parameters) with
``***``. The CLI redacts everything it prints and installs :class:`RedactingFilter`
on the ``kpihub`` logger, so a secret cannot leak even from a plugin's log line.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["RedactingFilter", "masked_uri", "redact", "register_secret", "register_uri_secrets"]

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

#: URL query parameters and headers that carry credentials on the platforms we speak to.
_CREDENTIAL_PARAMS = re.compile(
    r"(?i)\b(access_token|api_key|apikey|hapikey|key|token|client_secret|refresh_token|password)=([^&\s\"']+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` hides it; short values are ignored."""
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: object) -> str:
    """Return ``str(text)`` with every known secret and credential parameter masked."""
    out = str(text)
    pattern = _pattern
    if pattern is not None:
        out = pattern.sub("***", out)
    out = _CREDENTIAL_PARAMS.sub(lambda m: f"{m.group(1)}=***", out)
    return _BEARER.sub(lambda m: f"{m.group(1)} ***", out)


def register_uri_secrets(uri: str) -> None:
    """Register a URI's password and credential-looking query options (``?secret_key=``) as secrets."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(uri)
    register_secret(parts.password)
    for name, value in parse_qsl(parts.query):
        if re.search(r"(?i)secret|password|token|access_key|session", name):
            register_secret(value)


def masked_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (and registered secrets redacted)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        uri = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return redact(uri)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Format now so the traceback text is redacted too.
            import traceback

            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text)
            record.exc_info = None
            record.msg = f"{record.msg}\n{record.exc_text}"
            record.exc_text = None
        return True


def first_line(exc: BaseException) -> str:
    """An exception's message as one redacted line (drivers and JVMs add pages of detail below it)."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
