"""The HTTP toolkit every connector uses: client factory, retries, rate budget, paginators.

Connectors never write their own retry loops: they call a :class:`Requester`,
which retries 429, 5xx, connection errors and truncated bodies with
exponential backoff and jitter, honours ``Retry-After``, gives up after a
bounded number of attempts and then raises :class:`~kpihub.errors.HTTPError`
naming the source, stream and URL (secrets redacted).
"""

from kpihub.http.auth import (
    RENEWALS_ON_401,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuthError,
    OAuthRefreshToken,
    TokenEndpointUnavailable,
)
from kpihub.http.body import ArrowRecords, RecordsMismatch
from kpihub.http.client import make_client
from kpihub.http.keyset import KeysetBound, KeysetPaginator
from kpihub.http.paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageTokenPaginator,
    Paginator,
    get_path,
)
from kpihub.http.quota import Limit, Observation, Quota, QuotaWait, RequestBudget, SimulatedClock
from kpihub.http.ratelimit import RateLimiter
from kpihub.http.requester import Requester, RetryDecision, parse_retry_after
from kpihub.http.rows import positional_batch, positional_type

__all__ = [
    "RENEWALS_ON_401",
    "ApiKeyAuth",
    "ArrowRecords",
    "BasicAuth",
    "BearerAuth",
    "CursorPaginator",
    "KeysetBound",
    "KeysetPaginator",
    "Limit",
    "LinkHeaderPaginator",
    "NextLinkPaginator",
    "OAuthError",
    "OAuthRefreshToken",
    "Observation",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageTokenPaginator",
    "Paginator",
    "Quota",
    "QuotaWait",
    "RateLimiter",
    "RecordsMismatch",
    "RequestBudget",
    "Requester",
    "RetryDecision",
    "SimulatedClock",
    "TokenEndpointUnavailable",
    "get_path",
    "parse_retry_after",
    "positional_batch",
    "positional_type",
    "make_client",
]
