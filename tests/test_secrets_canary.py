"""A canary secret for every secret setting of every first-party source must never come out anywhere.

Each source's demo fake is set to accept its canaries as the real credentials, so the whole path runs:
check, sync (quiet, ``-v`` and ``--debug``, with injected faults so retries log their URLs), state,
KPI exports to files; then the fakes refuse the canaries, so every error path runs too. Every byte the
commands printed, every file under the project (DuckDB and Parquet destinations, exports, state) and
the repr / str / dump of every settings and auth object are searched for every canary.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kpihub.cli.main import cli
from kpihub.config import load_project
from kpihub.plugins import Registry
from kpihub.sync import Pipeline
from kpihub.testing.conformance import secret_fields


@pytest.fixture
def canary_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    registry = Registry()
    specs, canaries = {}, {}
    for name, source in sorted(registry.sources.items()):
        spec = source.demo(seed=11, scale=1)
        if spec is None or spec.server is None:
            continue
        fields = secret_fields(source.settings_class)
        assert fields, f"{name} has no secret setting"
        for field in fields:
            canary = f"kpihubcanary{name.replace('_', '')}{field.replace('_', '')}7f3e91"
            canaries[f"{name}.{field}"] = canary
            spec.settings[field] = canary
            # The fake accepts the canary as the real credential (its attribute of that name, or ``token``).
            setattr(spec.server, field if hasattr(spec.server, field) else "token", canary)
        specs[name] = spec
    assert len(specs) >= 6, sorted(specs)
    for spec in specs.values():
        spec.server.start()
    lines = ['[project]\ndestination = "duckdb:///data.duckdb"\ntimezone = "Europe/Oslo"\n']
    for name, spec in specs.items():
        lines.append(f"[sources.{name}]")
        settings = {**spec.settings, "base_url": spec.server.url}
        for key, value in settings.items():
            if value is None:  # TOML has no null: "no rate limit" is a high one
                if key != "requests_per_second":
                    continue
                value = 10_000
            if isinstance(value, str):
                value = value.format(base_url=spec.server.url)
            if f"{name}.{key}" in canaries and len(lines) % 2:
                # Secrets from the environment, as in production (about half of them), or the file.
                monkeypatch.setenv(f"KPIHUB_{name.upper()}_{key.upper()}", value)
                continue
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    (tmp_path / "kpihub.toml").write_text("\n".join(lines))
    try:
        yield tmp_path, specs, canaries
    finally:
        for spec in specs.values():
            spec.server.stop()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_canaries_never_leak_into_output_logs_errors_state_files_or_reprs(canary_project, monkeypatch):
    root, specs, canaries = canary_project
    project = str(root / "kpihub.toml")
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str, ok: bool = True) -> None:
        result = runner.invoke(cli, ["-p", project, *args], catch_exceptions=False)
        outputs.append(result.output + (result.stderr if result.stderr_bytes else ""))
        if ok:
            assert result.exit_code == 0, result.output[-3000:]
        else:
            assert result.exit_code != 0

    run("check")
    for spec in specs.values():  # retries log their URLs (Meta's next links carry the token)
        for kind in ("status", "reset", "truncate", "malformed"):
            spec.server.fail(kind=kind, status=503, after=3, times=1)
    run("--debug", "sync")
    assert "INFO kpihub.http" in outputs[-1] and "; retry 1/" in outputs[-1]  # the logs were captured
    run("-vv", "sync")
    run("sync", "--full-refresh", "-d", f"parquet:///{root}/lake")
    run("state")
    run("kpis", "--format", "json", "-o", str(root / "kpis.json"), "--as-of", "2026-07-01")
    run("kpis", "--format", "csv", "-o", str(root / "kpis.csv"), "--as-of", "2026-07-01")
    run("--debug", "kpis", "--show-sql", "--grain", "day")

    # Now every canary is refused: the error paths (one line each, --debug adds tracebacks).
    for key in canaries:
        name, field = key.split(".")
        server = specs[name].server
        server.clear_faults()
        setattr(server, field if hasattr(server, field) else "token", "rotated")
        if hasattr(server, "issued"):
            server.issued.clear()  # access tokens issued for the canaries expire too
    run("--debug", "sync", ok=False)
    run("check", ok=False)
    run("-v", "sync", ok=False)
    assert any("Error:" in text for text in outputs[-3:])

    # The settings and auth objects a plugin or a library user holds.
    pipeline = Pipeline(load_project(project))
    texts = list(outputs)
    for source_id in pipeline.source_ids():
        source, settings = pipeline.resolve_source(source_id)
        auth = source.auth(settings)
        texts += [repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()]
        texts += [repr(auth), repr(pipeline.project), repr(pipeline.project.settings)]
    records = logging.getLogger("kpihub")
    texts.append(repr(records.handlers))

    files = [f for f in root.rglob("*") if f.is_file()]
    assert any(f.suffix == ".duckdb" for f in files) and any(f.suffix == ".parquet" for f in files)
    assert (root / "kpis.json").exists() and (root / "kpis.csv").exists()
    # Basic auth sends a canary base64-encoded ("email/token:<canary>", Zendesk): that form must not leak either.
    basic = {
        value.split(" ", 1)[1]
        for spec in specs.values()
        for r in spec.server.requests
        if (value := r.header("authorization") or "").startswith("Basic ")
    }
    decoded = {b: base64.b64decode(b).decode(errors="replace") for b in basic}
    forms = {key: [canary, *(b for b, d in decoded.items() if canary in d)] for key, canary in canaries.items()}
    leaks = []
    for key in canaries:
        for i, text in enumerate(texts):
            if any(form in text for form in forms[key]):
                leaks.append(f"{key} in output/text #{i}")
        for file in files:
            if file.name == "kpihub.toml":
                continue  # where the user wrote it
            if any(form.encode() in file.read_bytes() for form in forms[key]):
                leaks.append(f"{key} in {file.relative_to(root)}")
    assert not leaks, leaks
    # The canaries did reach the APIs (the test would prove nothing otherwise).
    received = [str(r) for spec in specs.values() for r in spec.server.requests] + list(decoded.values())
    sent = {c for text in received for c in canaries.values() if c in text}
    assert len(sent) == len(canaries), sorted(set(canaries.values()) - sent)
