"""The conformance suite every source plugin runs against its fake server.

Subclass :class:`SourceConformance` in the plugin's tests (the class name must
start with ``Test``) and say how to start the fake and configure the source::

    from kpihub.testing.conformance import SourceConformance

    class TestThingConformance(SourceConformance):
        source = ThingSource()

        def make_server(self):
            return FakeThing(seed=1)

        def settings(self, server):
            return {"base_url": server.url, "api_key": server.api_key}

        def change_data(self, server):
            server.touch(fraction=0.05)   # some records change, some are new

pytest then runs every ``test_*`` below against it: the declared Arrow schema
is what ``read`` yields, primary keys are unique after syncs, an incremental
re-sync reads only new or changed records, its cursor never goes back, and its
tables then equal a fresh full sync of the changed data (so ``change_data`` must
really change and add records), the canonical output has the model's columns,
unique keys and more than keys,
``check`` passes with good settings and fails clearly with bad ones, a 429
with ``Retry-After`` is honoured, a sync with 10% of requests failing (every
kind in :data:`~kpihub.testing.server.FAULT_KINDS` that applies) writes exactly
the tables and state of a sync without faults, and secrets never reach logs,
errors, state or output files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa
import pytest
from pydantic import SecretStr

from kpihub.config import Project, ProjectSettings, SourceSettings
from kpihub.plugins import Registry
from kpihub.source import Source
from kpihub.state import decode_cursor
from kpihub.sync import Pipeline, SyncResult
from kpihub.testing.destination_conformance import DestinationConformance
from kpihub.testing.kpi_conformance import KPIConformance
from kpihub.testing.server import FAULT_KINDS, FakeAPIServer, FakeRequest

__all__ = ["DestinationConformance", "KPIConformance", "SourceConformance", "secret_fields"]

CANARY = "kpihub-canary-7f3e91c2d4"


def secret_fields(settings_class: type[SourceSettings]) -> list[str]:
    """The names of a settings class's secret (``SecretStr``) fields."""
    fields = settings_class.model_fields
    return [name for name, f in fields.items() if f.annotation in (SecretStr, SecretStr | None)]


#: The plugin's fake server class: ``class TestThing(SourceConformance[FakeThing])`` types ``server``.
ServerT = TypeVar("ServerT", bound=FakeAPIServer)


class SourceConformance(Generic[ServerT]):
    """Base class of a plugin's conformance tests (see the module docstring)."""

    #: The source under test.
    source: ClassVar[Source[Any]]
    #: The path (regex) of requests that may get an injected 429 (default: any).
    rate_limited_path: ClassVar[str | None] = None
    #: Share of requests that fail in :meth:`test_faults_leave_tables_and_state_unchanged`,
    #: and how many requests it sees at least (it syncs again until then).
    fault_rate: ClassVar[float] = 0.10
    fault_requests: ClassVar[int] = 150

    # -- what a plugin provides ------------------------------------------------------

    def make_server(self) -> ServerT:
        """A fake API server (not started) with seeded data."""
        raise NotImplementedError

    def settings(self, server: ServerT) -> dict[str, Any]:
        """Settings that work against ``server`` (``base_url`` and credentials)."""
        raise NotImplementedError

    def bad_settings(self, server: ServerT) -> dict[str, Any]:
        """Settings the server rejects; default: every secret replaced by a canary."""
        good = self.settings(server)
        secrets = self._secret_fields()
        assert secrets, "the source has no SecretStr setting; override bad_settings()"
        return {**good, **dict.fromkeys(secrets, CANARY)}

    def fault_settings(self, server: ServerT) -> dict[str, Any]:
        """Settings for the fault test; override to make the fake page more (smaller pages)."""
        return self.settings(server)

    def change_data(self, server: ServerT) -> None:
        """Change some records and add some on the server (for the incremental test)."""
        pytest.skip("the plugin does not say how to change its fake's data")

    def live_changes(self, server: ServerT) -> Callable[[FakeRequest], Any] | None:
        """A function that changes the fake's data between page requests (modify, add, delete), as the
        platform's data changes while a sync pages through it; ``None`` when the API has no pages
        to change between. The suite passes it to :meth:`~kpihub.testing.server.FakeAPIServer.between_pages`.
        """
        return None

    # -- fixtures and helpers --------------------------------------------------------------

    @pytest.fixture
    def server(self) -> Iterator[ServerT]:
        with self.make_server() as server:
            yield server

    def registry(self) -> Registry:
        """A registry of the built-ins and :attr:`source` alone (no entry points are loaded)."""
        registry = Registry(load_entrypoints=False)
        source = self.source

        class _Plugin:
            @staticmethod
            def kpihub_register_sources(register: Any) -> None:
                register(source)

        from kpihub.hookspecs import hookimpl

        hookimpl(_Plugin.kpihub_register_sources)
        registry.register_plugin(_Plugin, f"conformance-{source.name}")
        return registry

    def pipeline(
        self, tmp_path: Path, settings: dict[str, Any], *, dest: str = "duckdb", sleep: Any = None
    ) -> Pipeline:
        """A :class:`~kpihub.Pipeline` of :attr:`source` with ``settings`` into ``tmp_path``.

        :param dest: ``duckdb`` (one DuckDB file) or ``parquet`` (a Parquet directory).
        :param sleep: records the retry waits instead of sleeping.
        """
        uri = f"duckdb:///{tmp_path}/conformance.duckdb" if dest == "duckdb" else f"parquet:///{tmp_path}/pq"
        project = Project(
            path=tmp_path / "kpihub.toml",
            settings=ProjectSettings(destination=uri),
            sources={self.source.name: {"max_attempts": 3, **settings}},
        )
        return Pipeline(project, registry=self.registry(), sleep=sleep)

    def sync(self, pipeline: Pipeline) -> SyncResult:
        """Sync ``pipeline`` and fail the test, naming each stream and its error, unless every stream is ``ok``."""
        result = pipeline.sync()
        failed = [f"{r.key}: {r.error}" for r in result.streams if r.status != "ok"]
        assert not failed, failed
        return result

    def _secret_fields(self) -> list[str]:
        return secret_fields(self.source.settings_class)

    def _streams(self, server: ServerT) -> list[Any]:
        from kpihub.config import build_source_settings

        settings = build_source_settings(self.source.name, self.source.settings_class, self.settings(server))
        return list(self.source.streams(settings))

    # -- the suite ------------------------------------------------------------------------------

    def test_declared_schema_is_what_read_yields(self, server: ServerT, tmp_path: Path) -> None:
        """A sync adapts no schema (no drift), and each raw table has the stream's declared columns and types."""
        result = self.sync(self.pipeline(tmp_path, self.settings(server)))
        drifted = {r.key: r.schema_drift for r in result.streams if r.schema_drift}
        assert not drifted, drifted
        p = self.pipeline(tmp_path, self.settings(server))
        with p.open_destination(read_only=True) as session:
            for stream in self._streams(server):
                table = session.read_table(f"{self.source.name}_{stream.name}")
                got = table.schema.remove(table.schema.get_field_index("_loaded_at"))
                want = pa.schema([pa.field(f.name, f.type) for f in stream.schema])
                assert [(f.name, f.type) for f in got] == [(f.name, f.type) for f in want], stream.name

    def test_primary_keys_are_unique_after_syncs(self, server: ServerT, tmp_path: Path) -> None:
        """Two syncs into Parquet leave no duplicate primary key: the re-read boundary merges, not appends."""
        p = self.pipeline(tmp_path, self.settings(server), dest="parquet")
        self.sync(p)
        self.sync(p)  # a second run re-reads its boundary; merge must not duplicate
        with p.open_destination(read_only=True) as session:
            for stream in self._streams(server):
                if not stream.primary_key:
                    continue
                table = session.read_table(f"{self.source.name}_{stream.name}")
                keys = table.group_by(list(stream.primary_key)).aggregate([])
                assert keys.num_rows == table.num_rows, f"{stream.name}: duplicate primary keys"

    def test_incremental_resync_reads_only_new_and_changed(self, server: ServerT, tmp_path: Path) -> None:
        """After :meth:`change_data`, a re-sync reads fewer records than the first, its cursor does not go
        back, and the tables equal a fresh full sync of the changed data (which really changed).
        """
        p = self.pipeline(tmp_path / "incremental", self.settings(server))
        first = {r.stream: r for r in self.sync(p).streams}
        before = self._tables(p, server)
        self.change_data(server)
        second = {r.stream: r for r in self.sync(p).streams}
        incremental = [s for s in self._streams(server) if s.incremental]
        assert incremental, "no incremental stream to test"
        with p.open_destination(read_only=True) as session:
            for stream in incremental:
                old, new = first[stream.name], second[stream.name]
                assert new.records < old.records or old.records == 0, (
                    f"{stream.name}: re-sync read {new.records} records, the first sync {old.records}"
                )
                cursor = decode_cursor(session.get_state(f"{self.source.name}.{stream.name}"))
                assert old.cursor is None or cursor >= old.cursor, f"{stream.name}: cursor went back"
        # The changes arrived with their new values: the tables equal a fresh full sync of the
        # changed data, and change_data really changed something.
        after = self._tables(p, server)
        fresh = self._tables(self.sync_fresh(tmp_path / "fresh", server), server)
        for name in fresh:
            assert after[name] == fresh[name], f"{name}: the incremental re-sync differs from a full sync"
        changed = [name for name in after if after[name] != before.get(name)]
        assert changed, "change_data changed nothing the connector reads: make it change and add records"

    def sync_fresh(self, where: Path, server: ServerT) -> Pipeline:
        """A full sync of the server's current data into a new destination at ``where``."""
        p = self.pipeline(where, self.settings(server))
        self.sync(p)
        return p

    def assert_nothing_lost(self, p: Pipeline, fresh: Pipeline, server: ServerT, when: str) -> None:
        """Every row of ``fresh`` (a full sync of the data as it is now) is in ``p``'s tables, same values.

        ``p`` may hold more: rows the platform deleted, which an incremental read does not see.
        """
        after = self._tables(p, server)
        for name, rows in self._tables(fresh, server).items():
            have = {repr(sorted(r.items())) for r in after.get(name, [])}
            lost = [r for r in rows if repr(sorted(r.items())) not in have]
            assert not lost, f"{name}: {len(lost)} of {len(rows)} rows lost or stale {when}, e.g. {lost[0]}"

    def _tables(self, p: Pipeline, server: ServerT) -> dict[str, list[dict[str, Any]]]:
        """Every raw and canonical table the source writes, rows sorted, columns ``_*`` left out."""
        names = {f"{self.source.name}_{s.name}" for s in self._streams(server)}
        names |= {s.canonical_table for s in self._streams(server) if s.canonical_table}
        found = {}
        with p.open_destination(read_only=True) as session:
            present = set(session.tables())
            for name in sorted(names & present):
                table = session.read_table(name)
                table = table.drop_columns([c for c in table.column_names if c.startswith("_")])
                found[name] = sorted(table.to_pylist(), key=repr)
        return found

    def test_canonical_output_is_the_models(self, server: ServerT, tmp_path: Path) -> None:
        """Each canonical table fed has rows, exactly the model's columns, unique keys, and more than keys filled."""
        from kpihub.model import canonical_table

        p = self.pipeline(tmp_path, self.settings(server))
        self.sync(p)
        with p.open_destination(read_only=True) as session:
            for stream in self._streams(server):
                if not stream.canonical_table:
                    continue
                target = canonical_table(stream.canonical_table)
                table = session.read_table(target.name)
                raw = session.read_table(f"{self.source.name}_{stream.name}")
                assert table.num_rows, f"{stream.name}: no rows in {target.name}"
                assert set(table.column_names) == set(target.schema.names), target.name
                keys = table.group_by(list(target.primary_key)).aggregate([])
                assert keys.num_rows == table.num_rows, f"{target.name}: duplicate primary keys"
                if raw.num_rows:
                    filled = [c for c in table.column_names if table[c].null_count < table.num_rows]
                    assert len(filled) > len(target.primary_key), f"{stream.name}: {target.name} holds keys only"

    def test_live_data_during_a_sync_loses_nothing(self, server: ServerT, tmp_path: Path) -> None:
        """Data changing while a sync pages loses nothing, and the next incremental sync brings every change.

        After a sync with :meth:`live_changes` running between pages and one more (quiet) incremental
        sync, every row a fresh full sync of the final data finds is in the tables with the same
        values. Rows the platform deleted may remain (an incremental read does not see deletions).
        """
        change = self.live_changes(server)
        if change is None:
            pytest.skip("the plugin's API has no pages to change data between")
        hook = server.between_pages(change)
        p = self.pipeline(tmp_path / "live", self.settings(server))
        first = p.sync()
        server.clear_page_hooks()
        assert hook.error is None, hook.error
        assert hook.runs, "live_changes never ran: no page was served between others"
        # Rows restated between pages may not add up to the totals of the first page: that sync may
        # say so ("mismatch", or "incomplete" when records went missing) and hold its cursor, but
        # never fail otherwise, and the next sync must bring everything.
        failed = {r.key: r.error for r in first.streams if r.status not in ("ok", "mismatch", "incomplete")}
        assert not failed, failed
        self.sync(p)
        self.assert_nothing_lost(p, self.sync_fresh(tmp_path / "fresh", server), server, "after live changes")
        print(f"{self.source.name}: live changes ran {hook.runs} times over {hook.pages} pages; nothing lost")

    def test_check_passes_and_fails_clearly(self, server: ServerT, tmp_path: Path) -> None:
        """``check`` passes with :meth:`settings` and fails with :meth:`bad_settings`, in one line without a secret."""
        for settings, ok in ((self.settings(server), True), (self.bad_settings(server), False)):
            p = self.pipeline(tmp_path, settings)
            source, validated = p.resolve_source(self.source.name)
            with p.requester(self.source.name, source, validated) as http:
                verdict = source.check(validated, http)
            assert verdict.ok is ok, verdict.message
            assert verdict.message and "\n" not in verdict.message
            assert CANARY not in verdict.message

    def test_retry_after_is_honoured(self, server: ServerT, tmp_path: Path) -> None:
        """A 429 with ``Retry-After: 2`` is waited out for 2 seconds and the sync still succeeds."""
        server.fail(status=429, headers={"Retry-After": "2"}, path=self.rate_limited_path, times=1)
        slept: list[float] = []
        self.sync(self.pipeline(tmp_path, self.settings(server), sleep=slept.append))
        assert 2.0 in slept

    def test_faults_leave_tables_and_state_unchanged(self, server: ServerT, tmp_path: Path) -> None:
        """With :attr:`fault_rate` of the requests failing (every applicable fault kind), syncs write
        exactly the tables and state of a sync without faults.
        """
        with self.make_server() as clean_server:
            clean = self._tables_and_state(tmp_path / "clean", self.fault_settings(clean_server), clean_server)
        # A timeout holds the answer past the client's read timeout; waits are recorded, not slept.
        fault = server.inject(self.fault_rate, kinds=FAULT_KINDS, delay=1.5)
        settings = {**self.fault_settings(server), "timeout": 1.0, "max_attempts": 10}
        rounds = 0
        # Sync again (into a new destination) until enough requests went by for the rate to bite.
        while fault.seen < self.fault_requests and rounds < 20:
            rounds += 1
            where = tmp_path / f"faulty-{rounds}"
            faulty = self._tables_and_state(where, settings, server, sleep=lambda s: None)
            assert set(faulty) == set(clean)
            for name in clean:
                assert faulty[name] == clean[name], f"round {rounds}: {name} differs after {fault.applied}"
        assert fault.hits >= self.fault_rate * fault.seen / 2, f"{fault.hits} of {fault.seen} requests failed"
        print(f"{self.source.name}: {rounds} syncs, {fault.hits} of {fault.seen} requests failed: {fault.applied}")

    def _tables_and_state(
        self, where: Path, settings: dict[str, Any], server: ServerT, sleep: Any = None
    ) -> dict[str, Any]:
        p = self.pipeline(where, settings, dest="parquet", sleep=sleep)
        self.sync(p)
        found: dict[str, Any] = dict(self._tables(p, server))
        with p.open_destination(read_only=True) as session:
            for stream in self._streams(server):
                name = f"{self.source.name}_{stream.name}"
                found[f"state:{name}"] = decode_cursor(session.get_state(f"{self.source.name}.{stream.name}"))
        return found

    def test_secrets_never_leak(
        self,
        server: ServerT,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Secrets (and a canary) never reach errors, debug logs, the settings' repr, state or files written."""
        # Raw records, as a library user with plain logging would see them (no redacting filter).
        monkeypatch.setattr(logging.getLogger("kpihub"), "propagate", True)
        caplog.set_level(logging.DEBUG, logger="kpihub")
        server.fail(status=503, times=1)  # so the retry path logs too
        bad = self.pipeline(tmp_path / "bad", self.bad_settings(server))
        errors = [r.error or "" for r in bad.sync().streams]
        assert all(errors), "bad credentials should fail every stream"
        good = self.settings(server)
        secrets = [str(good[name]) for name in self._secret_fields() if good.get(name)] + [CANARY]
        p = self.pipeline(tmp_path / "good", good, dest="parquet")
        self.sync(p)
        _, settings = p.resolve_source(self.source.name)
        texts = [*errors, caplog.text, repr(settings), str(settings.model_dump())]
        files = [f for f in (tmp_path / "good").rglob("*") if f.is_file()]
        files += [f for f in (tmp_path / "bad").rglob("*") if f.is_file()]
        for secret in secrets:
            for text in texts:
                assert secret not in text
            for file in files:
                assert secret.encode() not in file.read_bytes(), f"{secret!r} found in {file}"
