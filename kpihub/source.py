"""What a source connector declares: a :class:`Source` with :class:`Stream` s.

A stream's ``read`` yields pages: a list of JSON records (dicts, as the API
sent them) or ready :class:`pyarrow.RecordBatch` es. The sync engine turns
pages into batches of the stream's schema (:mod:`kpihub.normalize`), maps them
to the canonical table the stream feeds, writes them and commits the cursor.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

import pyarrow as pa

if TYPE_CHECKING:
    import httpx

    from kpihub.config import SourceSettings
    from kpihub.http.paginators import Paginator
    from kpihub.http.quota import Limit, Observation
    from kpihub.http.requester import Requester, RetryDecision
    from kpihub.normalize import DriftReport
    from kpihub.reconcile import Expectation
    from kpihub.testing.server import FakeAPIServer

__all__ = [
    "CheckResult",
    "DemoSpec",
    "Diagnosis",
    "Estimate",
    "Page",
    "PlanContext",
    "Requests",
    "SettingsT",
    "Source",
    "Stream",
    "StreamContext",
    "WriteMode",
]

WriteMode = Literal["append", "replace", "merge"]
#: A connector's settings class: ``Source[MySettings]``, ``Stream[MySettings]`` and
#: ``StreamContext[MySettings]`` hand their settings on typed as ``MySettings``.
SettingsT = TypeVar("SettingsT", bound="SourceSettings")
#: One page from ``Stream.read``: raw JSON records, or batches already in the stream schema.
Page: TypeAlias = Sequence[Mapping[str, Any]] | pa.RecordBatch


@dataclass(frozen=True)
class CheckResult:
    """The verdict of :meth:`Source.check`: ``ok`` and a one-line message."""

    ok: bool
    message: str


@dataclass(frozen=True)
class Diagnosis:
    """One finding of ``kpihub doctor`` (:meth:`Source.diagnose`): a level and a one-line message.

    :param level: ``ok``; ``warn`` (works today, but look at it: a version near its sunset);
        ``error`` (something will fail: a sunset version, a missing scope). Any ``error`` makes
        ``kpihub doctor`` exit non-zero.
    :param message: one line, no secrets, saying what is wrong and where to change it.
    :param subject: what it is about; a source's findings default to ``source '<id>'``.
    """

    level: Literal["ok", "warn", "error"]
    message: str
    subject: str = ""


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


class StreamContext(Generic[SettingsT]):
    """Everything a stream's ``read`` may use: settings, HTTP, logging, options.

    ``ctx.settings`` is the source's settings instance, typed by the parameter:
    ``def read(self, ctx: kpihub.StreamContext[MySettings], state)``.
    """

    def __init__(
        self,
        *,
        source_id: str,
        stream: str,
        settings: SettingsT,
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


@dataclass(frozen=True)
class Requests:
    """``count`` requests a stream expects to send as ``method path`` (for ``kpihub plan``).

    The path is matched against the source's limits as the rate budget matches a real request,
    so a per-account or per-property window gets its own share. ``cost`` is what one request
    spends of the limits it counts in: 1 (a request), or a platform's units (GA4 tokens); a
    mapping gives it per limit name (limits it does not name count 1).
    """

    count: int
    path: str = ""
    method: str = "GET"
    cost: float | Mapping[str, float] = 1.0

    def cost_in(self, limit: str) -> float:
        """What one of these requests spends of the limit named ``limit``."""
        if isinstance(self.cost, Mapping):
            return float(self.cost.get(limit, 1.0))
        return float(self.cost)


@dataclass(frozen=True)
class Estimate:
    """What a stream's next sync would read and send (:meth:`Stream.estimate`), known without a request.

    :param mode: ``full`` (the whole table, or everything since ``start_date`` on a first sync),
        ``incremental`` (what changed since the cursor) or ``window`` (a report stream's days).
    :param since: where the read starts: the cursor, the first day; ``None`` for the beginning.
    :param until: the last day a window reads; ``None`` for "until now".
    :param requests: the requests it sends, by endpoint.
    :param records: the records it should meet (``None``: not known before reading).
    :param at_least: ``requests`` is a lower bound (what changed since the cursor is not known offline).
    :param basis: how the numbers were worked out, in one line.
    """

    mode: Literal["full", "incremental", "window"]
    since: Any = None
    until: Any = None
    requests: tuple[Requests, ...] = ()
    records: int | None = None
    at_least: bool = False
    basis: str = ""

    @property
    def request_count(self) -> int:
        """The requests of every endpoint in :attr:`requests`, added up."""
        return sum(r.count for r in self.requests)


class PlanContext(Generic[SettingsT]):
    """What :meth:`Stream.estimate` may use: the settings, the stream's committed state and the clock.

    There is no HTTP here: a plan sends no request. The helpers work out what the default
    estimate needs, and what a connector's own estimate usually needs too.
    """

    def __init__(
        self,
        *,
        source_id: str,
        stream: str,
        settings: SettingsT,
        state: Mapping[str, Any] | None,
        full_refresh: bool = False,
        now: dt.datetime | None = None,
    ) -> None:
        self.source_id = source_id
        self.stream = stream
        self.settings = settings
        self.full_refresh = full_refresh
        #: The state the next sync reads from (``None``: a first sync, or ``--full-refresh``).
        self.state = None if full_refresh else state
        #: The last run's entry whatever the next one does: what it read, and when.
        self.last: Mapping[str, Any] = state or {}
        self.now = now or dt.datetime.now(dt.timezone.utc)

    @property
    def today(self) -> dt.date:
        """The plan's date (``now`` in UTC): the last day a report window reaches."""
        return self.now.date()

    @property
    def cursor(self) -> Any:
        """The cursor the next sync starts from (``None`` on a first sync)."""
        from kpihub.state import decode_cursor

        return decode_cursor(self.state)

    @property
    def last_records(self) -> int | None:
        """Records the last run read (``None``: no run yet)."""
        value = self.last.get("records")
        return value if isinstance(value, int) else None

    @property
    def last_full_read(self) -> int | None:
        """Records of the last run if it read everything (it started from no cursor), else ``None``."""
        read_all = "since" in self.last and self.last["since"] is None
        return self.last_records if read_all else None

    @staticmethod
    def pages(records: int | None, page_size: int | None) -> tuple[int, bool]:
        """Requests to page through ``records`` at ``page_size`` a page, and whether that is only a
        lower bound (unknown records or page size: at least one request)."""
        if records is None or page_size is None:
            return 1, True
        return max(1, math.ceil(records / page_size)), False

    def report_window(self, *, lookback_days: int, start_date: dt.date | None = None) -> tuple[dt.date, dt.date]:
        """The days a report stream's next sync reads: what :meth:`StreamContext.report_window` returns then."""
        from kpihub.state import report_window

        return report_window(self.state, lookback_days=lookback_days, start_date=start_date, today=self.today)

    def records_per_day(self) -> float | None:
        """Rows per day of the last run's report window (its records over its days); ``None`` before one."""
        window, records = self.last.get("window"), self.last_records
        if not window or records is None:
            return None
        first, last = (dt.date.fromisoformat(d) for d in window)
        return records / ((last - first).days + 1)

    def read_from(self, stream: Stream[Any]) -> tuple[Literal["full", "incremental"], Any]:
        """Where the next read of a (non-report) stream starts: ``("incremental", cursor)``, else
        ``("full", start_date)`` (``None`` for a stream that always reads its whole table)."""
        cursor = self.cursor if stream.incremental else None
        if cursor is not None:
            return "incremental", cursor
        return "full", self.settings.start_date if stream.incremental else None

    def expected_records(self, stream: Stream[Any]) -> tuple[int | None, str]:
        """Records the next read should meet, and how that was worked out (``None``: not known offline).

        A stream read in full: as many as its last read. An incremental read: the last run's
        records per second of the time it covered (from its start cursor, or ``start_date``, to when
        it ran), times the time since the cursor.
        """
        last = self.last_records
        if not stream.incremental:
            if last is None:
                return None, "never read yet: records unknown"
            return last, f"as many as its last read ({last:,})"
        cursor = self.cursor
        if cursor is None and self.full_refresh and self.last_full_read is not None:
            return self.last_full_read, f"as many as its last full read ({self.last_full_read:,})"
        if cursor is None:
            why = "a full refresh" if self.full_refresh else "a first sync"
            return None, f"{why}: records unknown before reading"
        span = self._last_span()
        ahead = _as_time(cursor)
        if span is None or last is None or ahead is None:
            return None, "changes since the cursor unknown (no rate from the last run)"
        seconds, since = span
        expected = math.ceil(last / seconds * max(0.0, (self.now - ahead).total_seconds()))
        day = since.date() if isinstance(since, dt.datetime) else since
        return expected, f"~{last / seconds * 86_400:,.1f} changes/day in the last run ({last:,} since {day})"

    def _last_span(self) -> tuple[float, Any] | None:
        """Seconds of change time the last run covered, and where it started; ``None`` when unknown."""
        from kpihub.state import decode_cursor

        if "since" not in self.last:  # a state from before runs kept it
            return None
        since = decode_cursor({"cursor": self.last["since"], "cursor_type": self.last.get("cursor_type")})
        if since is None:  # it read from the beginning: from start_date, if it had one
            since = self.settings.start_date
        start, synced = _as_time(since), self.last.get("synced_at")
        if start is None or not isinstance(synced, str):
            return None
        seconds = (dt.datetime.fromisoformat(synced) - start).total_seconds()
        return (seconds, since) if seconds > 0 else None


def _as_time(value: Any) -> dt.datetime | None:
    """A cursor as a UTC datetime, when it is a time (a date is its midnight); else ``None``."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), dt.timezone.utc)
    return None


@dataclass
class Stream(Generic[SettingsT]):
    """One table a source reads. Subclass it and implement :meth:`read`.

    ``class Contacts(kpihub.Stream[MySettings])`` types ``ctx.settings`` in its methods.

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
    #: Records per request, for ``kpihub plan``'s default :meth:`estimate` (``None``: not declared).
    page_size: int | None = None

    @property
    def write_mode(self) -> WriteMode:
        """``merge`` for keyed streams, ``append`` for unkeyed ones."""
        return "merge" if self.primary_key else "append"

    @property
    def incremental(self) -> bool:
        """The stream syncs incrementally: it declares a ``cursor_field``."""
        return self.cursor_field is not None

    def read(self, ctx: StreamContext[SettingsT], state: Mapping[str, Any] | None) -> Iterator[Page]:
        """Yield pages: lists of JSON records (dicts as the API sent them) or ``pyarrow.RecordBatch`` es.

        ``state`` is what the last successful sync committed for this stream (``None`` on a first
        sync and with ``--full-refresh``). For an incremental stream ``state["cursor"]`` is the
        largest ``cursor_field`` value committed so far, JSON-encoded (an ISO 8601 string for a
        time); :func:`kpihub.decode_cursor` gives it back as the field's Python type. Read records
        with a cursor newer than it (the engine keeps the newest copy of a key, so re-reading the
        cursor's own instant is safe and recommended); on a first sync start at
        ``ctx.settings.start_date`` when it is set — the stream applies it, not the engine.
        """
        raise NotImplementedError(f"stream {self.name!r} does not implement read()")

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[SettingsT]) -> pa.RecordBatch:
        """Map a normalized batch (the stream's ``schema``) to ``canonical_table``'s columns, column-wise.

        Return a batch whose columns are columns of the canonical table (``kpihub.canonical_table(name)``
        gives its schema and docs), values castable to their types. The engine fills ``source_id``
        and ``_loaded_at`` itself; a column the table does not have, a required column left out or a
        value that cannot be cast fails the chunk naming stream and column; optional columns left
        out are null. Rows sharing the table's key are added up by each measure's additivity.
        """
        raise NotImplementedError(f"stream {self.name!r} feeds {self.canonical_table!r} but has no to_canonical()")

    def on_drift(self, report: DriftReport) -> None:  # pragma: no cover - default is to log
        """Called when normalization saw new fields or coerced values; default logs them."""

    def estimate(self, plan: PlanContext[SettingsT]) -> Estimate:
        """What the next sync of this stream reads and the requests it sends, for ``kpihub plan``.

        Called without HTTP: work it out from ``plan.settings`` and ``plan.state``. The default
        fits a stream that pages one endpoint: it reads from the cursor (or ``start_date``), expects
        the records :meth:`PlanContext.expected_records` works out from the last run, and sends one
        request per :attr:`page_size` of them (at least one, when either is unknown). Override it
        where the stream sends more (lookups before the first page, one report per account), reads
        a report window (:meth:`PlanContext.report_window`) or costs more than one unit a request.
        """
        mode, since = plan.read_from(self)
        records, basis = plan.expected_records(self)
        count, at_least = plan.pages(records, self.page_size)
        if self.page_size is None:
            basis += "; no page_size declared"
        return Estimate(mode, since, None, (Requests(count),), records, at_least, basis)


class Source(Generic[SettingsT]):
    """A source connector. Subclass, set the class attributes, implement the methods.

    ``name`` is the source type users configure; a project may configure the
    same type several times under different ids (``[sources.hubspot_eu]
    type = "hubspot"``). ``class MySource(kpihub.Source[MySettings])`` with
    ``settings_class = MySettings`` types ``settings`` in every method.

    Required: :meth:`streams` and :meth:`check`. Everything else is an optional hook with a
    working default: :meth:`auth`, :meth:`headers`, :meth:`classify`, :meth:`observe_rate`,
    :meth:`rate_limits`, :meth:`plan_limits`, :meth:`parallel_streams`, :meth:`diagnose`, :meth:`demo`.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    settings_class: type[SettingsT]

    def streams(self, settings: SettingsT) -> Sequence[Stream[SettingsT]]:
        """Return the streams this source offers with these settings."""
        raise NotImplementedError

    def auth(self, settings: SettingsT) -> httpx.Auth | None:
        """Return the httpx auth for requests (default: none): ``kpihub.http.BearerAuth``,
        ``OAuthRefreshToken``, or any ``httpx.Auth``. An API key sent in a header goes in
        :meth:`headers` instead."""
        return None

    def headers(self, settings: SettingsT) -> dict[str, str]:
        """Extra headers sent with every request: an API version (``LinkedIn-Version``), or an API
        key the platform reads from a header (``{"X-Api-Key": settings.api_key.get_secret_value()}``;
        secrets of the settings never reach a log or an error)."""
        return {}

    def classify(self, response: httpx.Response) -> RetryDecision | None:
        """Say how to treat a response the generic rules would get wrong (default: ``None``, they decide).

        The generic rules retry 429 (honouring ``Retry-After``), 5xx and connection errors, and fail
        other 4xx. Return a :class:`kpihub.http.RetryDecision` where the platform says more: a 400
        whose body means "rate limited" (Meta's error codes 4/17/32), a 403 that is a quota (Google's
        ``RESOURCE_EXHAUSTED``), a daily cap that will not come back within the run.
        """
        return None

    def parallel_streams(self, settings: SettingsT) -> int:
        """How many of this source's streams a sync reads at once (default: the
        ``max_parallel_streams`` setting, 2). Return 1 where the API forbids concurrent requests."""
        return settings.max_parallel_streams

    @staticmethod
    def observe_rate(response: httpx.Response) -> list[Observation]:
        """What a response says of the rate windows, read back into the budget (HubSpot's
        ``X-HubSpot-RateLimit-*`` headers, GA4's ``propertyQuota``); default: nothing.

        A static method (or a plain function assigned with ``staticmethod``): it is called for
        every response of every stream of the source, from several threads.
        """
        return []

    def rate_limits(self, settings: SettingsT) -> Sequence[Limit]:
        """The platform's documented rate windows, spent proactively by every stream and account of
        the source together (:mod:`kpihub.http.quota`); default: none (429s are still honoured)."""
        return []

    def plan_limits(self, settings: SettingsT) -> Sequence[Limit]:
        """The limits ``kpihub plan`` works out the time with: default :meth:`rate_limits`.

        Override it to give the sizes the budget only learns from responses at run time (HubSpot's
        daily cap, GA4's tokens per hour), as the platform documents them, so the plan can say how
        long a sync takes; a limit left without a size is shown as unknown.
        """
        return self.rate_limits(settings)

    def check(self, settings: SettingsT, http: Requester) -> CheckResult:
        """Make one cheap authenticated request and say whether the connection works.

        Return ``CheckResult(False, message)`` for a refused token or an unreachable API — catch
        :class:`kpihub.HTTPError` (every failed request raises one, after the retries) — rather
        than raising: ``kpihub check`` prints the message as one line.
        """
        raise NotImplementedError

    def diagnose(self, settings: SettingsT, http: Requester | None) -> Sequence[Diagnosis]:
        """Say what ``kpihub doctor`` should report about these (already valid) settings; default: nothing.

        For what settings validation cannot see: an API version that is old or sunset, a token
        missing a scope the streams need. Work offline from ``settings`` first; ``http`` (requests
        to the configured ``base_url`` only, authenticated as a sync would be) is ``None`` under
        ``kpihub doctor --offline``, so network checks are skipped then. Catch
        :class:`kpihub.HTTPError` and return it as a finding, as :meth:`check` does; make only
        cheap read requests the platform documents. Return one :class:`Diagnosis` per finding.
        """
        return ()

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        """Optionally return a fake server with demo data for ``kpihub demo``."""
        return None

    def __repr__(self) -> str:
        return f"<Source {self.name!r}>"
