"""Shared fixtures: isolated registries, a toy source with its fake server, temp projects."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpihub.config import Project, ProjectSettings
from kpihub.plugins import Registry, reset_registry


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Tests never see a developer's KPIHUB_* variables or a stray kpihub.toml.
    for name in list(os.environ):
        if name.startswith("KPIHUB_"):
            monkeypatch.delenv(name)
    reset_registry(None)
    yield
    reset_registry(None)


@pytest.fixture
def registry() -> Registry:
    """A registry of kpihub's built-ins only (no installed entry points)."""
    return Registry(load_entrypoints=False)


@pytest.fixture
def toy_server() -> Iterator[object]:
    from tests.plugins.toy import FakeToy

    with FakeToy(seed=3, items=250) as server:
        yield server


@pytest.fixture
def toy_registry(registry: Registry) -> Registry:
    from tests.plugins import toy

    registry.register_plugin(toy, "toy")
    return registry


def make_project(
    tmp_path: Path, sources: dict[str, dict], destination: str | None = None, **settings: object
) -> Project:
    dest = destination or f"duckdb:///{tmp_path}/data.duckdb"
    return Project(
        path=tmp_path / "kpihub.toml", settings=ProjectSettings(destination=dest, **settings), sources=sources
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server: ``.ci/run`` starts one (KPIHUB_TEST_POSTGRES_URI); else the tests start their own.

    Skipped only when no server can be started here (PostgreSQL not installed).
    """
    uri = os.environ.get("KPIHUB_TEST_POSTGRES_URI")
    if uri:
        yield uri
        return
    from kpihub.testing.postgres import PostgresServer

    if not PostgresServer.available():
        pytest.skip("no PostgreSQL server: set KPIHUB_TEST_POSTGRES_URI or install postgresql (.ci/run does)")
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_uri(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The server's URI with a schema of this test's own (dropped afterwards)."""
    import re
    import uuid

    schema = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    yield f"{postgres_server}?schema={schema}"
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(postgres_server) as con, con.cursor() as cur:
        # The schema, its sources' raw-table schemas (<schema>__<source>) and any <schema>_* a test made.
        cur.execute(f"SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{schema}%'")
        for (name,) in cur.fetchall():
            cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        con.commit()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A fake S3 on 127.0.0.1 (moto's server speaks the S3 REST API): ``host:port``."""
    from moto.server import ThreadedMotoServer

    keys = {"AWS_ACCESS_KEY_ID": "kpihub-test", "AWS_SECRET_ACCESS_KEY": "kpihub-test-secret"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_uri(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/lake?…``: a file destination in the fake S3 (credentials in the environment)."""
    import uuid

    # The autouse fixture clears KPIHUB_* only; make sure the S3 keys are visible to this test.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kpihub-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kpihub-test-secret")
    bucket = f"kpihub-{uuid.uuid4().hex[:12]}"
    return f"s3://{bucket}/lake?endpoint_override={s3_server}&scheme=http&region=us-east-1&allow_bucket_creation=true"


class StopAfterPages:
    """A progress sink that asks a sync to stop (``stop.set()``) once ``pages`` pages were read."""

    def __init__(self, stop: threading.Event, pages: int) -> None:
        self.stop, self.pages = stop, pages

    def stream_started(self, key: str) -> None: ...

    def records(self, key: str, count: int) -> None:
        self.pages -= 1
        if self.pages <= 0:
            self.stop.set()

    def stream_finished(self, result: object) -> None: ...
