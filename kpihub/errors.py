"""Every exception kpihub raises, in one hierarchy.

* KpihubError — base of everything below; the CLI prints its message as one line.
    * ConfigError — the project file or a source's settings are invalid.
    * PluginError — a plugin failed to load, or registered a name already taken.
    * UnknownNameError — a source, destination or KPI name nobody registered.
    * SourceError — a connector failed while reading.
        * HTTPError — a request failed after the retry budget (status, URL, body).
        * MalformedResponseError — a response body could not be parsed.
            * QuotaExhaustedError — a platform quota that will not come back within the run.
        * PaginationError — paging went wrong (a cursor loop, a total mismatch).
    * NormalizationError — a value could not be coerced to its declared type.
    * DestinationError — a destination could not write or commit.
    * KPIError — a KPI definition is wrong or cannot be computed.
        * MixedCurrencyError — money in several currencies without an FX table.
    * SyncError — one or more streams of a sync failed (carries the per-stream errors).

Messages are one line, name what and where, and never contain a secret:
every message passes through :func:`kpihub.secrets.redact` when printed.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "ConfigError",
    "DestinationError",
    "HTTPError",
    "KPIError",
    "KpihubError",
    "MalformedResponseError",
    "MixedCurrencyError",
    "NormalizationError",
    "PaginationError",
    "PluginError",
    "QuotaExhaustedError",
    "SourceError",
    "SyncError",
    "UnknownNameError",
]


class KpihubError(Exception):
    """Base class; raised by kpihub for problems a user can act on."""


class ConfigError(KpihubError):
    """Raised by kpihub.config when kpihub.toml or a setting is invalid."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.field = field


class PluginError(KpihubError):
    """Raised by the plugin manager for a plugin that failed to load or clashed."""

    def __init__(self, message: str, *, plugin: str, distribution: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.distribution = distribution


class UnknownNameError(KpihubError):
    """Raised when a source, destination or KPI name is not registered."""


class SourceError(KpihubError):
    """Raised by connectors (and the HTTP toolkit on their behalf) while reading."""

    def __init__(self, message: str, *, source: str | None = None, stream: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.stream = stream


class HTTPError(SourceError):
    """Raised by kpihub.http when a request fails for good (after retries)."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        stream: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, source=source, stream=stream)
        self.url = url
        self.status_code = status_code


class QuotaExhaustedError(HTTPError):
    """Raised by kpihub.http when a quota will not come back within the run (a daily cap, a per-day
    token quota, a throttle longer than ``max_retry_after``); the sync stops the stream cleanly.

    ``resets_at`` is when the platform says (or documents) the quota returns, if known;
    ``resets`` says it in words for the summary.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        stream: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        resets_at: dt.datetime | None = None,
        resets: str = "",
    ) -> None:
        super().__init__(message, source=source, stream=stream, url=url, status_code=status_code)
        self.resets_at = resets_at
        self.resets = resets


class MalformedResponseError(SourceError):
    """Raised by kpihub.http when a response body is not the JSON it should be."""


class PaginationError(SourceError):
    """Raised by paginators on a cursor loop or a count that disagrees with the total."""


class NormalizationError(KpihubError):
    """Raised by kpihub.normalize when a value cannot be coerced (policy ``fail``)."""

    def __init__(
        self,
        message: str,
        *,
        stream: str | None = None,
        field: str | None = None,
        record_key: object = None,
    ) -> None:
        super().__init__(message)
        self.stream = stream
        self.field = field
        self.record_key = record_key


class DestinationError(KpihubError):
    """Raised by destinations when a write or a commit fails."""


class KPIError(KpihubError):
    """Raised by the KPI engine for a wrong definition or an impossible computation."""


class MixedCurrencyError(KPIError):
    """Raised when a KPI would sum money in different currencies without FX rates."""


class SyncError(KpihubError):
    """Raised by the sync engine when streams failed; ``errors`` maps stream to error."""

    def __init__(self, message: str, *, errors: dict[str, BaseException] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}
