"""One stream's chunks on their way into the destination: each commit writes the raw table, the
canonical table and the state that covers them, atomically.

A :class:`ChunkCommitter` gathers normalized batches and quarantined records, and when a chunk is
full (or the stream ends) commits them. The invariants live here, where every connector's data
passes:

* the state's cursor never points past data that is not durably written — mid-stream it moves
  only for streams that read in cursor order;
* rows without a primary key are failed or quarantined; a record repeated by the API (same
  primary key in one chunk) is kept once, its last version, and counted;
* a run that replaces a table that exists (a full-table stream, ``--full-refresh``) writes its
  chunks to staging tables and swaps them in with the state in one final commit, so a stop or a
  kill before the end leaves the previous table and state as they were;
* a report stream (``ctx.report_window``) replaces exactly the days it re-read, in the raw and
  the canonical table, in that same kind of commit: rows the platform restated take their new
  values and rows it no longer reports are gone;
* canonical rows are validated against the canonical schema and aggregated to the table's
  grain (:mod:`kpihub.grain`). A stream feeding a fact table (one with additive measures: ad
  performance, web traffic …) may send rows of one canonical key in different chunks, so its
  canonical rows are added up over the whole stream and committed once, with the final state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kpihub.destinations.base import Between, DestinationSession, TableWrite, dedup_last, staging_name
from kpihub.errors import NormalizationError
from kpihub.failpoints import failpoint
from kpihub.grain import additivity, aggregate_to_grain, conform
from kpihub.model import CanonicalTable, canonical_table
from kpihub.normalize import DriftReport
from kpihub.quarantine import REJECTED_TABLE, Rejected, rejected_table
from kpihub.reconcile import Tally
from kpihub.source import Stream, StreamContext, WriteMode
from kpihub.state import encode_cursor, later, state_key
from kpihub.widening import evolve_schema

__all__ = ["ChunkCommitter"]


class ChunkCommitter:
    """Commits one stream's batches chunk by chunk (see the module docstring)."""

    def __init__(
        self,
        *,
        session: DestinationSession,
        stream: Stream,
        ctx: StreamContext,
        source_name: str,
        raw_table: str,
        first_mode: WriteMode,
        cursor: Any,
        loaded_at: dt.datetime,
        quarantine: bool,
        staged: bool = False,
    ) -> None:
        self.session = session
        self.stream = stream
        self.ctx = ctx
        self.source_name = source_name
        self.raw_table = raw_table
        self.first_mode = first_mode
        self.loaded_at = loaded_at
        self.quarantine = quarantine
        #: A replacing run over a table that exists: chunks go to staging tables, swapped in at the end.
        self._staged = staged and first_mode == "replace"
        self._held_rejected: list[Rejected] = []
        self.drift = DriftReport()
        self.target: CanonicalTable | None = canonical_table(stream.canonical_table) if stream.canonical_table else None
        #: Canonical rows wait for the final commit when the table's rows add up (see the module docstring).
        self.canonical_at_end = self.target is not None and any(additivity(f) == "additive" for f in self.target.schema)
        self._canonical_pending: pa.Table | None = None
        self._batches: list[pa.RecordBatch] = []
        self._rejected: list[Rejected] = []
        self.pending_rows = 0
        #: The cursor the destination holds, and the latest one read.
        self.start_cursor = self.committed_cursor = self.cursor = cursor
        self.commits = 0
        self.records = 0
        #: :attr:`records` when the current pass began (a stream read again counts its last pass).
        self.pass_start = 0
        self.rejected = 0
        self.duplicates = 0
        #: Canonical rows that were added into another row of the same key.
        self.aggregated = 0
        #: Sums of the columns the platform reports totals of (kpihub.reconcile).
        self.tally = Tally(stream.reconcile_by)

    @property
    def staged(self) -> bool:
        """Chunks go to staging tables swapped in at the end: a replacing run, or a report window
        (the stream called ``ctx.report_window`` before its first page)."""
        return self._staged or self.ctx.window is not None

    def _window(self, column: str | None) -> dict[str, Any]:
        """The scope of a report window's replace: its days in ``column`` (none on a first or full read)."""
        if self.ctx.window is None or self.first_mode == "replace" or column is None:
            return {}
        since, until = self.ctx.window
        return {column: Between(since, until)}

    @property
    def read(self) -> int:
        """Records read so far: committed, pending and quarantined."""
        return self.records + self.pending_rows + self.rejected + len(self._rejected)

    def restart_pass(self) -> int:
        """Forget this pass's sums and pending canonical rows: the stream is read again from its start.

        Returns :attr:`read` so far, to count the next pass's records apart.
        """
        self.tally = Tally(self.stream.reconcile_by)
        self._canonical_pending = None
        self.pass_start = self.records
        return self.read

    def add(self, batch: pa.RecordBatch, rejected: Sequence[Rejected] = ()) -> None:
        if batch.num_rows:
            self._batches.append(batch)
            self.pending_rows += batch.num_rows
        self._rejected.extend(rejected)

    def commit(self, *, final: bool, schema: pa.Schema, hold_cursor: bool = False) -> None:
        """Commit what is pending; ``final`` when the stream read everything it was going to.

        :param schema: the stream's (normalized) schema, for a commit with no rows.
        :param hold_cursor: save the cursor the stream started from, whatever was read (a gap was found).
        """
        if not final and not self._batches and not self._rejected:
            return
        table = self._raw_table(schema)
        staging = self.staged and not final
        if staging and self._rejected:
            self._held_rejected.extend(self._rejected)  # they go in with the swap
            self.rejected += len(self._rejected)
            self._rejected = []
        mode: WriteMode = self.first_mode if self.commits == 0 else self.stream.write_mode
        writes = [self._raw_write(table, mode, final)]
        canonical = self._canonical(table, mode, final)
        if canonical is not None:
            writes.append(canonical)
        if final:
            self.rejected -= len(self._held_rejected)  # counted when held; counted again below
            self._rejected = self._held_rejected + self._rejected
            self._held_rejected = []
        if self._rejected:
            kept_out = rejected_table(
                self._rejected,
                source_id=self.ctx.source_id,
                stream=self.stream.name,
                table=self.raw_table,
                loaded_at=self.loaded_at,
            )
            writes.append(TableWrite(REJECTED_TABLE, kept_out, "append"))
        if self.stream.cursor_field and table.num_rows:
            self.cursor = later(self.cursor, pc.max(table[self.stream.cursor_field]).as_py())
        # Mid-stream, the cursor may only advance when records arrive in cursor order (and the
        # canonical rows it covers are written).
        moves = final or (self.stream.sorted_by_cursor and not self.canonical_at_end and not self.staged)
        new_cursor = self.start_cursor if hold_cursor else self.cursor if moves else self.committed_cursor
        entry: dict[str, Any] = {
            "records": self.records + table.num_rows,
            "synced_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        if final and self.ctx.window is not None:  # a report stream's state is its window, not rows
            entry["window"] = [d.isoformat() for d in self.ctx.window]
        if new_cursor is not None:
            entry["cursor"], entry["cursor_type"] = encode_cursor(new_cursor)
        # Where this run read from (None: the beginning), for `kpihub plan`'s rate of change.
        entry["since"] = None if self.start_cursor is None else encode_cursor(self.start_cursor)[0]
        # A staged run leaves the state alone until the swap: the tables it describes did not change.
        states = {} if staging else {state_key(self.ctx.source_id, self.stream.name): entry}
        failpoint("sync.before_commit")
        self.session.commit(writes, states)
        failpoint("sync.committed")
        self.committed_cursor = new_cursor
        self.commits += 1
        self.tally.add(table)
        self.rejected += len(self._rejected)
        self.records += table.num_rows
        self._batches, self._rejected, self.pending_rows = [], [], 0

    # -- the raw table -------------------------------------------------------------------------

    def _raw_write(self, table: pa.Table, mode: WriteMode, final: bool) -> TableWrite:
        scope = self._window(self.stream.cursor_field) or None
        if scope is not None and table.num_rows:
            self._check_in_window(table)
        return self._staged_write(
            self.raw_table, table, mode, self.stream.primary_key, scope, final, self.ctx.source_id
        )

    def _check_in_window(self, table: pa.Table) -> None:
        """A row outside the days the stream re-reads would never be replaced again: refuse it."""
        column = self.stream.cursor_field or ""
        since, until = self.ctx.window or (None, None)
        low, high = pc.min(table[column]).as_py(), pc.max(table[column]).as_py()
        day = low if low < since else high if high > until else None
        if day is not None:
            raise NormalizationError(
                f"stream {self.stream.name!r}: a row for {column} {day} is outside the window {since}..{until} "
                "the stream said it reads (ctx.report_window); it would never be replaced",
                stream=self.stream.name,
                field=column,
            )

    def _staged_write(
        self,
        name: str,
        table: pa.Table,
        mode: WriteMode,
        key: tuple[str, ...],
        scope: dict[str, Any] | None,
        final: bool,
        namespace: str | None = None,
    ) -> TableWrite:
        """A write to ``name`` — or, in a staged run, to its staging table until the final swap."""
        if not self.staged:
            return TableWrite(name, table, mode, key, scope if mode == "replace" else None, namespace=namespace)
        stage = staging_name(name, state_key(self.ctx.source_id, self.stream.name))
        if final:
            staged_from = stage if self.commits else None  # nothing staged: a plain replace
            return TableWrite(name, table, "replace", key, scope, namespace=namespace, staged_from=staged_from)
        # The first stage write replaces what a killed run may have left there.
        return TableWrite(stage, table, "replace" if self.commits == 0 else mode, key, namespace=namespace)

    def _raw_table(self, schema: pa.Schema) -> pa.Table:
        table = _unify(self._batches, self.raw_table) if self._batches else schema.empty_table()
        loaded = pa.scalar(self.loaded_at, pa.timestamp("us", tz="UTC"))
        table = table.append_column(pa.field("_loaded_at", loaded.type), pa.repeat(loaded, table.num_rows))
        table = self._check_keys(table)
        read, table = table.num_rows, dedup_last(table, self.stream.primary_key)
        self.duplicates += read - table.num_rows
        return table

    def _check_keys(self, table: pa.Table) -> pa.Table:
        """``table`` without records lacking a primary key: an error, or (quarantine) rejected rows."""
        for name in self.stream.primary_key:
            column = table[name]
            if not column.null_count:
                continue
            if not self.quarantine:
                raise NormalizationError(
                    f"stream {self.stream.name!r}: {column.null_count} record(s) without primary key {name!r}",
                    stream=self.stream.name,
                    field=name,
                )
            missing = pc.is_null(column)
            reason = f"stream {self.stream.name!r}: record without primary key {name!r}"
            for row in table.filter(missing).drop_columns(["_loaded_at"]).to_pylist():
                self._rejected.append(Rejected(None, name, reason, row))
            self.drift.quarantined[name] += int(column.null_count)
            table = table.filter(pc.invert(missing))
        return table

    # -- the canonical table -------------------------------------------------------------------

    def _canonical(self, table: pa.Table, mode: WriteMode, final: bool) -> TableWrite | None:
        target = self.target
        if target is None:
            return None
        rows = self._to_canonical(table, target)
        if self.canonical_at_end:
            if self._canonical_pending is not None:
                rows = pa.concat_tables([self._canonical_pending, rows])
            rows, added = aggregate_to_grain(rows, target, stream=self.stream.name)
            self.aggregated += added
            if not final:
                self._canonical_pending = rows
                return None
            self._canonical_pending = None
            scope = {"source_id": self.ctx.source_id, **self.stream.canonical_scope, **self._window(target.time_column)}
            mode = "replace" if self.ctx.window is not None else self.first_mode
            return TableWrite(target.name, rows, mode, target.primary_key, scope if mode == "replace" else None)
        rows, added = aggregate_to_grain(rows, target, stream=self.stream.name)
        self.aggregated += added
        scope = {"source_id": self.ctx.source_id, **self.stream.canonical_scope, **self._window(target.time_column)}
        return self._staged_write(target.name, rows, mode, target.primary_key, scope, final)

    def _to_canonical(self, table: pa.Table, target: CanonicalTable) -> pa.Table:
        n = table.num_rows
        schema = target.schema.with_metadata(None)
        if not n:
            return schema.empty_table()
        mapped = [self.stream.to_canonical(b, self.ctx) for b in table.to_batches()]
        base = _unify(mapped, target.name)
        columns = conform(base, target, source=self.source_name, stream=self.stream.name)
        out = {}
        for f in schema:
            if f.name == "source_id":
                out[f.name] = pa.repeat(pa.scalar(self.ctx.source_id, f.type), n)
            elif f.name == "_loaded_at":
                out[f.name] = pa.repeat(pa.scalar(self.loaded_at, f.type), n)
            else:
                out[f.name] = columns.get(f.name, pa.nulls(n, f.type))
        return pa.table(out, schema=schema)


def _unify(batches: Sequence[pa.RecordBatch], name: str) -> pa.Table:
    """One table of ``batches`` whose schema grew or widened mid-stream (the one widening rule)."""
    schema = batches[0].schema
    if all(b.schema.equals(schema) for b in batches):
        return pa.Table.from_batches(batches)
    for b in batches[1:]:
        schema = evolve_schema(name, schema, b.schema)
    tables = []
    for b in batches:
        t = pa.Table.from_batches([b])
        for f in schema:
            if f.name not in t.column_names:
                t = t.append_column(f, pa.nulls(t.num_rows, f.type))
            elif t.schema.field(f.name).type != f.type:
                t = t.set_column(t.schema.get_field_index(f.name), f, t[f.name].cast(f.type))
        tables.append(t.select(schema.names))
    return pa.concat_tables(tables)
