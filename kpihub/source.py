"""What a source connector declares: a :class:`Source` with :class:`Stream` s.

A stream's ``read`` yields pages: a list of JSON records (dicts, as the API
sent them) or ready :class:`pyarrow.RecordBatch` es. The sync engine turns
pages into batches of the stream's schema (:mod:`kpihub.normalize`), maps them
to the canonical table the stream feeds, writes them and commits the cursor.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import pyarrow as pa

if TYPE_CHECKING:
    import httpx

    from kpihub.config import SourceSettings
    from kpihub.http.paginators import Paginator
    from kpihub.http.quota import Limit, Observation
    from kpihub.http.requester import Requester
    from kpihub.normalize import DriftReport
    from kpihub.reconcile import Expectation
    from kpihub.testing.server import FakeAPIServer

__all__ = ["CheckResult", "DemoSpec", "Page", "Source", "Stream", "StreamContext", "WriteMode"]

WriteMode = Literal["append", "replace", "merge"]
#: One page from ``Stream.read``: raw JSON records, or batches already in the stream schema.
Page: TypeAlias = Sequence[Mapping[str, Any]] | pa.RecordBatch


@dataclass(frozen=True)
class CheckResult:
    """The verdict of :meth:`Source.check`: ``ok`` and a one-line message."""

    ok: bool
    message: str


@dataclass
class DemoSpec:
    """What a source offers ``kpihub demo``: a fake server or files, settings for them, sample targets.

    ``kpihub demo`` starts ``server`` and sets ``base_url`` to its address itself;
    ``{base_url}`` inside other string settings is replaced by it too. ``files``
    (name → text) are written into the demo's ``data`` directory, which
    ``{demo_dir}`` in string settings points to. ``targets`` are rows of a
    targets file (``kpi``, ``period``, ``baseline``, ``target``).
    """

    server: FakeAPIServer | None
    settings: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


class StreamContext:
    """Everything a stream's ``read`` may use: settings, HTTP, logging, options."""

    def __init__(
        self,
        *,
        source_id: str,
        stream: str,
        settings: SourceSettings,
        http: Requester,
        full_refresh: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.source_id = source_id
        self.stream = stream
        self.settings = settings
        self.http = http
        self.full_refresh = full_refresh
        self.log = logger or logging.getLogger(f"kpihub.source.{source_id}.{stream}")
        #: The API's own total for this stream, when it declares one (reported in the summary).
        self.api_total: int | None = None
        #: Notes for the sync summary, with how often each was made (see :meth:`note`).
        self.notes: Counter[str] = Counter()
        self._notes_lock = threading.Lock()
        #: The platform's own totals to reconcile the loaded rows with (see :meth:`expect_total`).
        self.expectations: list[Expectation] = []
        #: The days a report stream re-reads (see :meth:`report_window`); the engine replaces them.
        self.window: tuple[dt.date, dt.date] | None = None

    def report_window(
        self, state: Mapping[str, Any] | None, *, lookback_days: int, start_date: dt.date | None = None
    ) -> tuple[dt.date, dt.date]:
        """``(first, last)`` day a report stream reads now, and the window the engine replaces.

        Platforms revise recent days (late conversions, GA4's processing), so each sync reads
        ``lookback_days`` before its cursor again (a first sync starts at ``start_date``, or 90
        days ago). The engine then replaces the rows whose ``cursor_field`` lies in the window —
        deleting those the platform no longer reports — and moves the state in the same commit.
        """
        from kpihub.state import report_window

        self.window = report_window(state, lookback_days=lookback_days, start_date=start_date)
        return self.window

    def note(self, message: str, count: int = 1) -> None:
        """Say something the user should know about this stream's data (shown in the sync summary).

        For what is not an error but changes how the numbers read: a value the API left out and the
        stream stored as null, a fallback taken. The same message made many times is shown once
        with its count, so call it per record or per page as is natural: ``ctx.note("rows without
        costInLocalCurrency: spend stored as null", count=n)``.
        """
        if count > 0:
            with self._notes_lock:  # connectors may note from several worker threads
                self.notes[message] += count

    def report_total(self, total: int) -> None:
        """Record the total number of records the API says the stream has."""
        self.api_total = (self.api_total or 0) + total

    def expect_total(
        self, column: str, total: Any, *, where: Mapping[str, Any] | None = None, tolerance: float | None = None
    ) -> None:
        """Say what the platform reports as the total of ``column`` over the rows matching ``where``.

        The engine adds up ``column`` over the rows this stream commits with those values (e.g.
        ``where={"property_id": "123"}``; its keys are the stream's ``reconcile_by`` columns)
        and, when the stream ends, a difference beyond
        ``tolerance`` (absolute; default 0.01, for per-row rounding) makes its status
        ``mismatch`` with both numbers (:mod:`kpihub.reconcile`). Call it once per scope, for
        additive columns only (a platform's distinct-user total is not the sum of its rows).
        """
        from kpihub.reconcile import expectation

        with self._notes_lock:
            self.expectations.append(expectation(column, total, where, tolerance))

    def pages(
        self,
        paginator: Paginator,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        """``paginator.pages`` for this stream: errors name it, the API's total is reported."""
        return paginator.pages(
            self.http, method, url, stream=self.stream, params=params, json=json, on_total=self.report_total
        )


@dataclass
class Stream:
    """One table a source reads. Subclass it and implement :meth:`read`.

    :param name: stream name; the raw table is ``<source_id>_<name>``.
    :param schema: Arrow schema of the raw table. A field's metadata may hold
        ``path`` (dotted path in the JSON record, default the field name).
    :param primary_key: fields that identify a record (merge key).
    :param cursor_field: field whose maximum is the incremental cursor.
    :param canonical_table: the canonical table (kpihub.model) this stream feeds.
    """

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    canonical_table: str | None = None
    #: How coercion failures are handled: ``fail`` (default) or ``null`` (reported).
    on_coerce_error: Literal["fail", "null"] = "fail"
    #: A field the schema does not know: ``evolve`` adds it as a column (reported);
    #: ``ignore`` keeps the declared fields only (APIs whose objects carry dozens of fields).
    on_new_field: Literal["evolve", "ignore"] = "evolve"
    #: The API sends every value as a JSON string (HubSpot properties): read all as strings.
    wire_strings: bool = False
    #: ``read`` yields records in ascending cursor order, so the cursor may be
    #: committed after every chunk (else only when the stream completes).
    sorted_by_cursor: bool = False
    #: Column values that mark this stream's rows in its canonical table, when several
    #: streams of one source feed it (Stripe charges and refunds -> orders): a full
    #: refresh then replaces only these rows.
    canonical_scope: dict[str, Any] = field(default_factory=dict)
    #: Columns whose values scope the platform totals this stream reconciles with
    #: (:meth:`StreamContext.expect_total`), e.g. ``("property_id",)``.
    reconcile_by: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def write_mode(self) -> WriteMode:
        """``merge`` for keyed streams, ``append`` for unkeyed ones."""
        return "merge" if self.primary_key else "append"

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None

    def read(self, ctx: StreamContext, state: Mapping[str, Any] | None) -> Iterator[Page]:
        """Yield pages of records newer than ``state["cursor"]`` (all when ``None``)."""
        raise NotImplementedError(f"stream {self.name!r} does not implement read()")

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext) -> pa.RecordBatch:
        """Map a normalized batch to ``canonical_table``'s schema (column-wise)."""
        raise NotImplementedError(f"stream {self.name!r} feeds {self.canonical_table!r} but has no to_canonical()")

    def on_drift(self, report: DriftReport) -> None:  # pragma: no cover - default is to log
        """Called when normalization saw new fields or coerced values; default logs them."""


class Source:
    """A source connector. Subclass, set the class attributes, implement the methods.

    ``name`` is the source type users configure; a project may configure the
    same type several times under different ids (``[sources.hubspot_eu]
    type = "hubspot"``).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    settings_class: ClassVar[type[SourceSettings]]

    def streams(self, settings: SourceSettings) -> Sequence[Stream]:
        """Return the streams this source offers with these settings."""
        raise NotImplementedError

    def auth(self, settings: SourceSettings) -> httpx.Auth | None:
        """Return the httpx auth for requests (default: none)."""
        return None

    def headers(self, settings: SourceSettings) -> dict[str, str]:
        """Extra headers sent with every request."""
        return {}

    #: Reads a response's rate-limit headers back into the budget (HubSpot ``X-HubSpot-RateLimit-*``,
    #: GA4 ``propertyQuota``): ``observe_rate(response) -> list[Observation]``; None reads nothing.
    observe_rate: ClassVar[Callable[[httpx.Response], list[Observation]] | None] = None

    def rate_limits(self, settings: SourceSettings) -> Sequence[Limit]:
        """The platform's documented rate windows, spent proactively by every stream and account of
        the source together (:mod:`kpihub.http.quota`); default: none (429s are still honoured)."""
        return []

    def check(self, settings: SourceSettings, http: Requester) -> CheckResult:
        """Make one cheap authenticated request and say whether the connection works."""
        raise NotImplementedError

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        """Optionally return a fake server with demo data for ``kpihub demo``."""
        return None

    def __repr__(self) -> str:
        return f"<Source {self.name!r}>"
