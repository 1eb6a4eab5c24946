"""The sync engine: streams -> record batches -> destination -> state.

For each stream: read pages (fetched one page ahead in a worker thread, so
I/O overlaps conversion), normalize them column-wise into record batches,
gather them into chunks of ``chunk_rows`` and commit each chunk — the raw
table, the canonical table it feeds and the stream's cursor — in one
atomic destination commit. The cursor therefore never points past data that
is not durably written.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from kpihub.commit import ChunkCommitter
from kpihub.concurrency import prefetch
from kpihub.config import Project, load_project
from kpihub.destinations.base import DestinationSession, widened_type
from kpihub.errors import (
    ConfigError,
    DestinationError,
    KpihubError,
    QuotaExhaustedError,
    SyncError,
    UnknownNameError,
)
from kpihub.failpoints import failpoint
from kpihub.http.quota import RequestBudget
from kpihub.http.requester import Requester
from kpihub.memory import use_system_pool
from kpihub.normalize import CoercePolicy, Normalizer
from kpihub.plugins import Registry, get_registry
from kpihub.secrets import redact
from kpihub.source import Source, Stream, StreamContext
from kpihub.state import decode_cursor, state_key

__all__ = ["Pipeline", "Progress", "StreamResult", "SyncResult", "sync"]

log = logging.getLogger("kpihub.sync")

#: Records converted to Arrow at once (pages are gathered up to this): enough to amortize Arrow's
#: per-call cost, few enough that the JSON objects waiting for it stay small (10,000 held ~15 MB).
NORMALIZE_ROWS = 2_000
T = TypeVar("T")


class Progress(Protocol):
    """What the engine reports while it runs (the CLI draws it with rich)."""

    def stream_started(self, key: str) -> None: ...
    def records(self, key: str, count: int) -> None: ...
    def stream_finished(self, result: StreamResult) -> None: ...


@dataclass
class StreamResult:
    """The outcome of one stream: records written, the API's total, timing, errors."""

    source_id: str
    stream: str
    status: str = "ok"
    records: int = 0
    api_total: int | None = None
    seconds: float = 0.0
    cursor: Any = None
    error: str | None = None
    drift: str = ""
    #: Records quarantined to ``_rejected`` (``on_bad_record = "quarantine"``).
    rejected: int = 0
    #: Records dropped because a later one in the same chunk had the same primary key.
    duplicates: int = 0
    #: Canonical rows added into another row of the same canonical key (a finer report grain).
    aggregated: int = 0
    #: The API declared a total that differs from the records read (shown in the summary).
    total_mismatch: bool = False
    #: What the user should know about the data (drift, connector notes, totals), one line each.
    notes: list[str] = field(default_factory=list)
    #: What normalization adapted alone (new fields, widened types, converted values).
    schema_drift: str = ""
    #: Platform totals the loaded rows do not meet: column, scope, loaded, expected.
    reconciliation: list[dict[str, Any]] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """``source_id.stream``: the stream's key in the state and in error messages (``source_id``
        alone for a source that could not start)."""
        return state_key(self.source_id, self.stream) if self.stream else self.source_id

    @property
    def rate(self) -> float:
        """Records written per second of the stream's sync (0 when it took no time)."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass
class SyncResult:
    """All stream results of one sync."""

    streams: list[StreamResult]

    @property
    def ok(self) -> bool:
        """Every stream ended ``ok`` (an ``incomplete``, ``mismatch``, ``quota`` or failed one is not)."""
        return all(r.status == "ok" for r in self.streams)

    @property
    def stopped(self) -> bool:
        """The sync was stopped on request (``Pipeline.sync(stop=...)``, Ctrl-C, SIGTERM)."""
        return any(r.status == "stopped" for r in self.streams)

    @property
    def quota(self) -> bool:
        """A stream stopped on a quota that does not come back within the run (status ``quota``)."""
        return any(r.status == "quota" for r in self.streams)

    @property
    def records(self) -> int:
        """Records written by all streams together."""
        return sum(r.records for r in self.streams)

    def raise_for_errors(self) -> None:
        """Raise :class:`~kpihub.SyncError` if any stream did not end ``ok``.

        The message names how many failed and the first one's error; ``errors`` maps each
        failed stream's key to its exception.
        """
        failed = [r for r in self.streams if r.status != "ok"]
        if failed:
            first = failed[0]
            raise SyncError(
                f"{len(failed)} stream(s) failed; {first.key}: {first.error}",
                errors={r.key: r.exception or KpihubError(r.error or "") for r in failed},
            )


class Pipeline:
    """A configured project: sources, a destination, state. ``Pipeline().sync()``.

    :param project: a loaded :class:`~kpihub.config.Project`, a path to
        ``kpihub.toml``, or ``None`` to find one from the working directory.
    :param destination: overrides the project's destination URI.
    :param sources: extra ``{source_id: settings}`` tables, merged over the file's.
    :param registry: plugin registry (default: the process-wide one).
    """

    def __init__(
        self,
        project: Project | str | Path | None = None,
        *,
        destination: str | None = None,
        sources: dict[str, dict[str, Any]] | None = None,
        registry: Registry | None = None,
        transport: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.project = project if isinstance(project, Project) else load_project(project)
        for source_id, values in (sources or {}).items():
            self.project.sources.setdefault(source_id, {}).update(values)
        self.destination_uri = destination or self.project.settings.destination
        self.registry = registry or get_registry()
        self.transport = transport  # tests inject an httpx transport …
        self.sleep = sleep  # … or record the retry waits
        self.clock = clock  # … and run the rate budget on a simulated clock

    # -- helpers -----------------------------------------------------------------

    def open_destination(self, *, read_only: bool = False) -> DestinationSession:
        """Open a session on the project's destination (the caller closes it: ``with ... as session``).

        :param read_only: for reading tables and state only (the conformance suite and ``kpihub kpis`` read so).
        """
        dest = self.registry.destination_for(self.destination_uri)
        return dest.open(self.destination_uri, root=self.project.root, read_only=read_only)

    def source_ids(self) -> list[str]:
        """The ids of the sources configured in the project (``[sources.<id>]``), in file order."""
        return list(self.project.sources)

    def resolve_source(self, source_id: str) -> tuple[Source, Any]:
        """The :class:`~kpihub.Source` plugin behind a configured source id, and its validated settings.

        :raises UnknownNameError: ``source_id`` is not configured, or no plugin provides its type.
        :raises ConfigError: the settings do not validate (missing secret, bad value).
        """
        if source_id not in self.project.sources:
            known = ", ".join(self.project.sources) or "none configured"
            raise UnknownNameError(f"source {source_id!r} is not configured in kpihub.toml (configured: {known})")
        source = self.registry.project_source(self.project, source_id)
        return source, self.project.source_settings(source_id, source.settings_class)

    def requester(self, source_id: str, source: Source, settings: Any) -> Requester:
        """A :class:`~kpihub.http.Requester` for the source, as a sync builds it.

        It carries the source's auth, headers, error classification and rate budget, and this
        pipeline's injected transport and sleep (tests). Use it as a context manager.
        """
        return Requester.from_settings(
            source_id,
            settings,
            auth=source.auth(settings),
            headers=source.headers(settings),
            classify=source.classify,
            transport=self.transport,
            budget=self.budget(source, settings),
            **({"sleep": self.sleep} if self.sleep is not None else {}),
        )

    def budget(self, source: Source, settings: Any) -> RequestBudget | None:
        """The source's rate budget, shared by its streams and accounts: its ``rate_limits(settings)``
        windows, read back from responses by its ``observe_rate`` hook (``None``: the source has none)."""
        specs = list(source.rate_limits(settings))
        if not specs:
            return None
        return RequestBudget(
            specs,
            observe=source.observe_rate,
            max_wait=settings.max_retry_after,
            **({"sleep": self.sleep} if self.sleep is not None else {}),
            **({"clock": self.clock} if self.clock is not None else {}),
        )

    # -- sync --------------------------------------------------------------------

    def sync(
        self,
        sources: Sequence[str] | None = None,
        *,
        streams: Sequence[str] | None = None,
        full_refresh: bool = False,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> SyncResult:
        """Sync the given sources (default: all configured) and return the results.

        Setting ``stop`` (another thread, a signal handler) ends the sync gracefully: each
        running stream finishes the page in hand, commits what it has read with the state
        that covers it, and reports ``status = "stopped"``; streams not started yet do not
        start. A stream that replaces its whole table keeps the previous table rather than
        commit part of a new one, unless it already committed a first chunk (its message
        then says the table holds only what this sync read).

        A configured source that cannot start (a missing secret, a bad setting, its plugin not
        installed) does not stop the others: its result has ``stream = ""``, ``status = "failed"``
        and the error; when no source can start, that error is raised.
        """
        use_system_pool()  # kpihub/memory.py: mimalloc's per-thread pages cost a sync ~50 MB
        source_ids = list(dict.fromkeys(sources or self.source_ids()))
        if not source_ids:
            raise ConfigError("no sources configured: add a [sources.<id>] table to kpihub.toml")
        plan, cannot_start = self._plan(source_ids, streams)
        if not plan and cannot_start:  # nothing can run: the error itself, as before
            raise _first_or_all([r.exception for r in cannot_start.values()])
        results: list[StreamResult] = []
        loaded_at = dt.datetime.now(dt.timezone.utc)
        with self.open_destination() as session:
            for failed in cannot_start.values():
                if progress:
                    progress.stream_started(failed.key)
                    progress.stream_finished(failed)

            def run_source(item: tuple[str, Source, Any, list[Stream]]) -> list[StreamResult]:
                source_id, source, settings, selected = item
                with self.requester(source_id, source, settings) as http:
                    run = _StreamRunner(
                        session=session,
                        source_id=source_id,
                        settings=settings,
                        http=http,
                        full_refresh=full_refresh,
                        chunk_rows=self.project.settings.chunk_rows,
                        loaded_at=loaded_at,
                        progress=progress,
                        on_bad_record=self.project.settings.on_bad_record,
                        stop=stop,
                        source_name=source.name,
                    )
                    workers = max(1, source.parallel_streams(settings))
                    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"kpihub-{source_id}") as pool:
                        return list(pool.map(run, selected))

            # Configured sources (several accounts of one platform included) run side by side,
            # each with its own connection pool and request budget; the destination serializes commits.
            limit = max(1, self.project.settings.max_parallel_sources)
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="kpihub-source") as pool:
                ran = dict(zip([item[0] for item in plan], pool.map(run_source, plan), strict=True))
        for source_id in source_ids:  # in the project's order, a source that could not start in its place
            results.extend([cannot_start[source_id]] if source_id in cannot_start else ran.get(source_id, []))
        return SyncResult(results)

    def _plan(
        self, source_ids: Sequence[str], streams: Sequence[str] | None
    ) -> tuple[list[tuple[str, Source, Any, list[Stream]]], dict[str, StreamResult]]:
        """What each source will sync, and a failed result for each configured source that cannot start
        (a missing secret, a plugin not installed): one such source does not stop the others."""
        for source_id in source_ids:  # a name that is not configured is a typo: stop before anything
            if source_id not in self.project.sources:
                self.resolve_source(source_id)
        plan, cannot_start = [], {}
        for source_id in source_ids:  # validate everything before touching the destination
            if not _names_source(source_id, streams):
                continue
            try:
                source, settings = self.resolve_source(source_id)
                available = source.streams(settings)
            except KpihubError as exc:
                log.debug("source %s cannot start", source_id, exc_info=True)
                cannot_start[source_id] = StreamResult(source_id, "", "failed", error=redact(exc), exception=exc)
                continue
            plan.append((source_id, source, settings, select_streams(source_id, available, streams)))
        return plan, cannot_start


def _names_source(source_id: str, wanted: Sequence[str] | None) -> bool:
    """Whether ``--streams`` may pick a stream of ``source_id`` (every source when it names only streams)."""
    return not wanted or any(item.rpartition(".")[0] in ("", source_id) for item in wanted)


def _first_or_all(errors: Sequence[BaseException | None]) -> KpihubError:
    found = [e for e in errors if isinstance(e, KpihubError)]
    if len(found) == 1:
        return found[0]
    return ConfigError("no source can start: " + "; ".join(redact(e) for e in found))


def select_streams(source_id: str, available: Sequence[Stream], wanted: Sequence[str] | None) -> list[Stream]:
    """The streams of ``available`` that ``wanted`` names (``name`` or ``source.name``; all when empty), as
    ``sync --streams`` and ``plan --streams`` pick them; a name no stream has is an error where it can only
    mean this source."""
    if not wanted:
        return list(available)
    names = {s.name: s for s in available}
    chosen = []
    for item in wanted:
        sid, _, name = item.rpartition(".")
        if sid and sid != source_id:
            continue
        if name not in names:
            if sid or len(wanted) == 1:
                raise UnknownNameError(f"source {source_id!r} has no stream {name!r} (streams: {', '.join(names)})")
            continue
        chosen.append(names[name])
    return chosen


class _StreamRunner:
    def __init__(
        self,
        *,
        session: DestinationSession,
        source_id: str,
        settings: Any,
        http: Requester,
        full_refresh: bool,
        chunk_rows: int,
        loaded_at: dt.datetime,
        progress: Progress | None,
        on_bad_record: CoercePolicy | None = None,
        stop: threading.Event | None = None,
        source_name: str = "",
    ) -> None:
        self.source_name = source_name or source_id
        self.on_bad_record = on_bad_record
        self.stop = stop
        self.session = session
        self.source_id = source_id
        self.settings = settings
        self.http = http
        self.full_refresh = full_refresh
        self.chunk_rows = chunk_rows
        self.loaded_at = loaded_at
        self.progress = progress

    def __call__(self, stream: Stream) -> StreamResult:
        result = StreamResult(self.source_id, stream.name)
        key = result.key
        if self.stop is not None and self.stop.is_set():
            result.status, result.error = "stopped", "not started: the sync was stopped"
            if self.progress:
                self.progress.stream_started(key)
                self.progress.stream_finished(result)
            return result
        started = time.monotonic()
        if self.progress:
            self.progress.stream_started(key)
        ctx = StreamContext(
            source_id=self.source_id,
            stream=stream.name,
            settings=self.settings,
            http=self.http,
            full_refresh=self.full_refresh,
        )
        try:
            self._run(stream, ctx, result)
        except KpihubError as exc:
            result.status, result.error, result.exception = "failed", redact(exc), exc
        except Exception as exc:  # a connector bug: report it, keep other streams going
            log.debug("stream %s crashed", key, exc_info=True)
            result.status, result.error, result.exception = "failed", redact(f"{type(exc).__name__}: {exc}"), exc
        result.seconds = time.monotonic() - started
        result.api_total = ctx.api_total
        notes = [result.drift] if result.drift else []
        notes += [f"{text} ({n})" if n > 1 else text for text, n in ctx.notes.items()]
        if result.duplicates:
            notes.append(f"{result.duplicates} repeated record(s) by primary key, the last one kept")
        if result.aggregated:
            notes.append(f"{result.aggregated} row(s) added into others of the same {stream.canonical_table} key")
        if result.status in ("ok", "incomplete") and result.api_total is not None:
            result.total_mismatch = result.api_total != result.records + result.rejected
            if result.total_mismatch and result.status == "ok":
                notes.append(f"API total {result.api_total} != {result.records + result.rejected} records read")
        result.notes = notes
        result.drift = "; ".join(notes)
        self._record_outcome(stream, result, ctx.notes)
        if self.progress:
            self.progress.stream_finished(result)
        return result

    def _record_outcome(self, stream: Stream, result: StreamResult, ctx_notes: Mapping[str, int]) -> None:
        """Save the stream's status and notes beside its cursor, for the scorecard's data-quality line.

        A state-only commit: the cursor and what the data commits wrote stay as they are.
        """
        try:
            previous = self.session.get_state(result.key) or {}
            entry = {
                **previous,
                "status": result.status,
                "notes": result.notes,
                # What the connector said about its numbers (thresholding, sampling, values left out).
                "data_notes": [f"{text} ({n})" if n > 1 else text for text, n in ctx_notes.items()],
                "canonical_table": stream.canonical_table,
                "error": result.error if result.status != "ok" else None,
                "reconciliation": {
                    f"{m['column']} ({m['scope']})": {"loaded": m["loaded"], "expected": m["expected"]}
                    for m in result.reconciliation
                },
            }
            self.session.commit([], {result.key: entry})
        except Exception:  # the stream's own outcome is what matters; this is bookkeeping
            log.warning("%s: could not record the stream's status in the state", result.key, exc_info=True)

    def _run(self, stream: Stream, ctx: StreamContext, result: StreamResult) -> None:
        key = result.key
        state = None if self.full_refresh else self.session.get_state(key)
        if state is not None and not stream.incremental:
            state = None
        # No cursor yet (a first sync, or only a failed one before): nothing durable to merge into.
        replace_first = not stream.incremental or decode_cursor(state) is None
        raw_table = f"{self.source_id}_{stream.name}"
        policy: CoercePolicy = self.on_bad_record or stream.on_coerce_error
        # Rows go into a table that may already exist (unless this run replaces it wholesale): read
        # values as the types its columns have, so a value that no longer fits is found record by record.
        existing = self.session.table_schema(raw_table)
        known = {} if replace_first else {f.name: f.type for f in existing or () if not f.name.startswith("_")}
        normalizer = _normalizer(stream, raw_table, known, policy)
        committer = ChunkCommitter(
            session=self.session,
            stream=stream,
            ctx=ctx,
            source_name=self.source_name,
            raw_table=raw_table,
            first_mode="replace" if replace_first else stream.write_mode,
            cursor=decode_cursor(state),
            loaded_at=self.loaded_at,
            quarantine=policy == "quarantine",
            # A full-table stream, or a re-read over a table that exists, swaps in whole (never partly).
            staged=existing is not None or not stream.incremental,
        )
        quota: list[QuotaExhaustedError] = []
        stopped = self._read_or_quota(stream, ctx, state, normalizer, committer, quota)
        problem = None if stopped else self._check_pass(ctx, committer, normalizer, committer.read)
        if problem is not None and stream.incremental and stream.primary_key:
            # Data changed under the API's pages (records missed, rows restated between pages):
            # read the same window once more; merging on the key keeps one row each.
            ctx.note(f"read again from the sync's start cursor: {problem[1].split(':')[0]}")
            before = committer.restart_pass()
            ctx.api_total, ctx.expectations = None, []
            stopped = self._read_or_quota(stream, ctx, state, normalizer, committer, quota)
            problem = None if stopped else self._check_pass(ctx, committer, normalizer, committer.read - before)
        if quota:
            # Like a graceful stop (what was read is committed with the state that covers it), and the
            # summary says when the quota comes back: the next run resumes from that state.
            kept = self._stop(committer, normalizer, existing is not None).replace("stopped on request", "stopped")
            result.status, result.error, result.exception = "quota", f"{quota[0]}; {kept}", quota[0]
        elif stopped:
            result.status, result.error = "stopped", self._stop(committer, normalizer, existing is not None)
        elif problem is not None and committer.staged and existing is not None:
            # A replacing run that missed records or totals does not replace a table that has them.
            result.status, result.error = problem[0], f"{problem[1]}; the table keeps its previous contents"
            result.reconciliation = committer.tally.mismatches(ctx.expectations)
        else:
            committer.commit(final=True, schema=normalizer.schema, hold_cursor=problem is not None)
            if problem is not None:
                result.status, result.error = problem
                result.reconciliation = committer.tally.mismatches(ctx.expectations)
        result.records, result.rejected = committer.records - committer.pass_start, committer.rejected
        result.duplicates, result.aggregated = committer.duplicates, committer.aggregated
        result.cursor = committer.committed_cursor
        drift = normalizer.drift
        drift.merge(committer.drift)
        if drift:
            result.drift = result.schema_drift = drift.summary()
            log.warning("%s: %s", key, result.drift)
            stream.on_drift(drift)

    def _read_or_quota(
        self,
        stream: Stream,
        ctx: StreamContext,
        state: Mapping[str, Any] | None,
        normalizer: Normalizer,
        committer: ChunkCommitter,
        quota: list[QuotaExhaustedError],
    ) -> bool:
        """:meth:`_read`; a quota that will not come back within the run stops it (kept in ``quota``)."""
        try:
            return self._read(stream, ctx, state, normalizer, committer)
        except QuotaExhaustedError as exc:
            log.warning("%s: %s", state_key(ctx.source_id, ctx.stream), redact(exc))
            quota.append(exc)
            return True

    @staticmethod
    def _stop(committer: ChunkCommitter, normalizer: Normalizer, table_exists: bool) -> str:
        """Commit what a stopped stream may keep; the message saying what it kept."""
        if committer.staged:  # the staged rows are never swapped in
            kept = "; the table keeps its previous contents" if table_exists else "; no table written"
        else:
            # What was read is written; the cursor moves only as far as a mid-stream commit may.
            committer.commit(final=False, schema=normalizer.schema)
            kept = ""
        cursor = committer.committed_cursor
        where = f"state saved at cursor {cursor}" if cursor is not None else "no cursor saved"
        return f"stopped on request after {committer.records} records ({where}{kept})"

    @staticmethod
    def _check_pass(
        ctx: StreamContext, committer: ChunkCommitter, normalizer: Normalizer, read: int
    ) -> tuple[str, str] | None:
        """``(status, message)`` when a pass read fewer records than declared or rows that miss the
        platform's totals (what is pending is committed first, so the tally sees every row)."""
        gap = _gap(ctx.api_total, read, committer)
        if gap is not None:
            return "incomplete", gap
        if ctx.expectations:
            committer.commit(final=False, schema=normalizer.schema)
            found = committer.tally.mismatches(ctx.expectations)
            if found:
                return "mismatch", _mismatch(found)
        return None

    def _read(
        self,
        stream: Stream,
        ctx: StreamContext,
        state: Mapping[str, Any] | None,
        normalizer: Normalizer,
        committer: ChunkCommitter,
    ) -> bool:
        """Read every page into ``committer``, committing full chunks; True when stopped on request."""
        key = state_key(ctx.source_id, ctx.stream)
        # Pages are converted in groups: Arrow's per-call overhead dwarfs a 100-row page.
        raw: list[Any] = []
        convert_rows = min(NORMALIZE_ROWS, self.chunk_rows)

        def convert() -> None:
            out = normalizer.normalize(raw)
            committer.add(out.batch, out.rejected)
            raw.clear()

        try:
            for page in prefetch(stream.read(ctx, state)):
                failpoint("sync.page")
                if isinstance(page, pa.RecordBatch):
                    if raw:
                        convert()
                    out = normalizer.normalize(page)  # conformed to the schema like records are
                    committer.add(out.batch, out.rejected)
                    count = page.num_rows
                else:
                    raw.extend(page)
                    count = len(page)
                    if len(raw) >= convert_rows:
                        convert()
                if committer.pending_rows >= self.chunk_rows:
                    committer.commit(final=False, schema=normalizer.schema)
                if self.progress and count:
                    self.progress.records(key, count)
                if self.stop is not None and self.stop.is_set():
                    if raw:
                        convert()
                    return True
        except QuotaExhaustedError:
            if raw:  # what was read before the quota ran out is committed like a stop's
                convert()
            raise
        if raw:
            convert()
        return False


def _mismatch(found: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{m['column']} ({m['scope']}): loaded {m['loaded']}, the platform says {m['expected']}" for m in found
    )
    return (
        f"the loaded rows do not add up to the platform's totals: {shown} (if the platform revised the data "
        "while it was read, the next sync reads it again: the state was kept)"
    )


def _gap(declared: int | None, read: int, committer: ChunkCommitter) -> str | None:
    """Why the stream is incomplete, when it read fewer distinct records than the API declared."""
    if declared is None or read >= declared:
        return None
    start = committer.start_cursor
    where = f"state kept at cursor {start}" if start is not None else "no cursor saved"
    return (
        f"read {read} distinct records but the API declared {declared}: records were missed while paging "
        f"({where}, so the next sync reads them again)"
    )


def _normalizer(stream: Stream, raw_table: str, known: Mapping[str, pa.DataType], policy: CoercePolicy) -> Normalizer:
    return Normalizer(
        stream.name,
        _fit_declared(stream, raw_table, known, policy),
        primary_key=stream.primary_key,
        on_coerce_error=policy,
        wire_strings=stream.wire_strings,
        on_new_field=stream.on_new_field,
        known_types=known,
    )


def _fit_declared(stream: Stream, table: str, known: Mapping[str, pa.DataType], policy: str) -> pa.Schema:
    """The stream's schema, checked against the table's existing column types.

    A declared type the column cannot widen to (a connector now sends text where the table holds
    numbers) fails at once, naming table, column and both types — or, with ``quarantine``, values
    are read as the column's type and those that do not fit are quarantined.
    """
    fields = []
    for f in stream.schema:
        old = known.get(f.name)
        if old is not None:
            try:
                widened_type(table, f.name, old, f.type)
            except DestinationError:
                if policy != "quarantine":
                    raise DestinationError(
                        f"table {table!r}, column {f.name!r}: the table holds {old}, the stream now declares "
                        f"{f.type}, which cannot be migrated safely; run `kpihub sync --full-refresh` to rebuild "
                        'it, or set on_bad_record = "quarantine" to keep the table and quarantine what does not fit'
                    ) from None
                f = f.with_type(old)
        fields.append(f)
    return pa.schema(fields, metadata=stream.schema.metadata)


def sync(
    project: Project | str | Path | None = None,
    sources: Iterable[str] | None = None,
    *,
    destination: str | None = None,
    streams: Sequence[str] | None = None,
    full_refresh: bool = False,
    raise_on_error: bool = True,
    progress: Progress | None = None,
) -> SyncResult:
    """Sync a project in one call: ``kpihub.sync("kpihub.toml")``.

    Raises :class:`~kpihub.errors.SyncError` if a stream failed (unless
    ``raise_on_error=False``); committed chunks stay committed either way.
    """
    pipeline = Pipeline(project, destination=destination)
    result = pipeline.sync(
        list(sources) if sources else None, streams=streams, full_refresh=full_refresh, progress=progress
    )
    if raise_on_error:
        result.raise_for_errors()
    return result
