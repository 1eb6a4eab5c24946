"""Every case of the bad-input corpus (tests/corpus/cases.py) gives its documented outcome.

Record and wire cases go over HTTP from a fake API on 127.0.0.1 through a real connector and sync into
DuckDB; config cases run the ``kpihub`` command on a project file. Nothing may crash with a traceback and
nothing may be dropped silently: a record is stored, quarantined with its reason, or stops the stream
with one line that names stream, record key and field.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from kpihub.cli.main import cli
from kpihub.config import Project, ProjectSettings
from kpihub.plugins import Registry
from kpihub.sync import Pipeline, SyncResult
from tests.corpus import source as corpus_source
from tests.corpus.cases import CONFIGS, GOOD_A, GOOD_B, RECORDS, WIRE, ConfigCase, RecordCase, WireCase
from tests.corpus.source import TOKEN, FakeCorpusAPI

OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api():
    with FakeCorpusAPI() as server:
        yield server


def _sync(tmp_path: Path, api: FakeCorpusAPI, policy: str | None) -> tuple[SyncResult, Pipeline]:
    registry = Registry(load_entrypoints=False)
    registry.register_plugin(corpus_source, "corpus")
    where = tmp_path / (policy or "default")
    where.mkdir()
    project = Project(
        path=where / "kpihub.toml",
        settings=ProjectSettings(destination=f"duckdb:///{where}/data.duckdb", on_bad_record=policy),
        sources={"corpus": {"base_url": api.url, "token": TOKEN, "max_attempts": 2}},
    )
    pipeline = Pipeline(project, registry=registry, sleep=lambda seconds: None)
    return pipeline.sync(), pipeline


def _table(pipeline: Pipeline, name: str = "corpus_records") -> list[dict]:
    with pipeline.open_destination(read_only=True) as session:
        return session.read_table(name).to_pylist() if name in session.tables() else []


def _one_line(text: str | None) -> str:
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


@pytest.mark.parametrize("case", RECORDS, ids=lambda c: c.id)
def test_record_case(case: RecordCase, api: FakeCorpusAPI, tmp_path: Path) -> None:
    api.pages, api.status = [case.raw or case.page or [GOOD_A, case.record(), GOOD_B]], 200
    key = str(case.record().get("id"))
    if case.outcome == "quarantined":
        result, p = _sync(tmp_path, api, "quarantine")
        (stream,) = result.streams
        assert stream.status == "ok" and stream.rejected == 1, stream.error
        assert sorted(r["id"] for r in _table(p)) == ["a1", "b2"]  # the rest of the page loads
        (rejected,) = _table(p, "_rejected")
        assert rejected["field"] == case.field and case.value in rejected["reason"], rejected
        assert rejected["stream"] == "records" and "Alpha" in rejected["record"] or "not a record" in rejected["record"]
        # The default policy: the stream stops with one line naming stream, record and field; nothing written.
        result, p = _sync(tmp_path, api, None)
        (stream,) = result.streams
        error = _one_line(stream.error)
        assert stream.status == "failed" and "stream 'records'" in error and repr(case.field) in error, error
        if case.page is None and case.record().get("id") is not None:
            assert f"id={key!r}" in error
        assert _table(p) == []
    elif case.outcome == "error":
        result, p = _sync(tmp_path, api, "quarantine")
        (stream,) = result.streams
        assert stream.status == "failed" and case.value in _one_line(stream.error), stream.error
        assert _table(p) == []
    else:
        result, p = _sync(tmp_path, api, None)
        (stream,) = result.streams
        assert stream.status == "ok", stream.error
        rows = {r["id"]: r for r in _table(p)}
        if case.outcome == "deduplicated":
            assert len(rows) == 2 and stream.duplicates == 1 and rows[key][case.field] == case.value
            assert "repeated record(s) by primary key, the last one kept" in stream.drift
        elif case.outcome == "evolved":
            with p.open_destination(read_only=True) as session:
                schema = session.table_schema("corpus_records")
            assert schema is not None and str(schema.field(case.field).type) == case.value
            assert case.field in stream.drift and len(rows) == 3
        else:
            assert case.outcome == "coerced"
            assert len(rows) == 3 and rows[key][case.field] == case.value, rows[key][case.field]
    OUTCOMES[case.outcome] += 1


@pytest.mark.parametrize("case", WIRE, ids=lambda c: c.id)
def test_wire_case(case: WireCase, api: FakeCorpusAPI, tmp_path: Path) -> None:
    api.pages, api.status = [case.body], case.status
    try:
        result, p = _sync(tmp_path, api, "quarantine")
    finally:
        api.status = 200
    (stream,) = result.streams
    assert stream.status == case.outcome and case.value in _one_line(stream.error), stream.error
    if case.outcome == "failed":
        assert stream.error.startswith("corpus/records: ") or "stream 'records'" in stream.error, stream.error
    with p.open_destination(read_only=True) as session:
        state = session.get_state("corpus.records")  # never moves past what is not written
    assert "cursor" not in state and state["status"] == case.outcome
    OUTCOMES["error"] += 1


@pytest.mark.parametrize("case", CONFIGS, ids=lambda c: c.id)
def test_config_case(case: ConfigCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kpihub.toml"
    path.write_bytes(case.toml if isinstance(case.toml, bytes) else case.toml.encode())
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["-p", str(path), *case.command])
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert len(err) == 1 and err[0].startswith("Error: "), err
    assert case.value in err[0] and "Traceback" not in result.output, err[0]
    assert "s3cretpw" not in result.output
    OUTCOMES["error"] += 1


def test_more_records_than_the_api_declares_is_flagged_in_the_summary(api: FakeCorpusAPI, tmp_path: Path) -> None:
    from rich.console import Console

    from kpihub.cli.progress import summary_table

    api.pages, api.status, api.declared_total = [[GOOD_A], [GOOD_B, {**GOOD_A, "id": "c3"}]], 200, 2
    try:
        result, _ = _sync(tmp_path, api, None)
    finally:
        api.declared_total = None
    (stream,) = result.streams
    assert stream.status == "ok" and stream.records == 3 and stream.api_total == 2 and stream.total_mismatch
    assert "API total 2 != 3 records read" in stream.drift
    console = Console(width=160, record=True)
    console.print(summary_table(result.streams))
    assert "≠ 2" in console.export_text()


def test_the_corpus_is_large_enough_and_covers_every_outcome() -> None:
    cases = [*RECORDS, *WIRE, *CONFIGS]
    assert len(cases) >= 50 and len({c.id for c in cases}) == len(cases)
    outcomes = Counter(c.outcome for c in RECORDS) + Counter(error=len(WIRE) + len(CONFIGS))
    assert set(outcomes) == {"coerced", "evolved", "deduplicated", "quarantined", "error"}, outcomes
