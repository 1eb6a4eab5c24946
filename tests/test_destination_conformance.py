"""kpihub.testing.DestinationConformance over every built-in destination kind: DuckDB, the file lake in each
format (local and in a fake S3), SQLite and PostgreSQL through ADBC (the named drivers and the generic
``adbc+`` path). PostgreSQL is a real server: skipped, with the reason, when KPIHUB_TEST_POSTGRES_URI is
unset (``.ci/run`` sets it)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from kpihub.destinations.adbc import ADBCDestination
from kpihub.destinations.duckdb import DuckDBDestination
from kpihub.destinations.parquet import ParquetDestination
from kpihub.testing.conformance import DestinationConformance

#: Read at import: the tests' autouse fixture hides every KPIHUB_* variable from the tests themselves.
POSTGRES = os.environ.get("KPIHUB_TEST_POSTGRES_URI")


class TestDuckDB(DestinationConformance):
    destination = DuckDBDestination()

    def uri(self, path: Path) -> str:
        return f"duckdb:///{path}/x.duckdb"


class TestParquet(DestinationConformance):
    destination = ParquetDestination()

    def uri(self, path: Path) -> str:
        return f"parquet:///{path}"


class TestSQLite(DestinationConformance):
    destination = ADBCDestination()

    def uri(self, path: Path) -> str:
        path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}/x.sqlite"


class TestADBCSQLite(TestSQLite):
    def uri(self, path: Path) -> str:  # the generic adbc+ path, with the SQLite driver
        path.mkdir(parents=True, exist_ok=True)
        return f"adbc+sqlite:///{path}/y.db"


class TestPostgres(DestinationConformance):
    destination = ADBCDestination()
    scheme = ""

    def uri(self, path: Path) -> str:
        server = POSTGRES
        if not server:
            pytest.skip("KPIHUB_TEST_POSTGRES_URI is unset: no PostgreSQL server to test against (.ci/run sets it)")
        schema = "dc_" + re.sub(r"\W", "_", path.name)[:20] + "_" + uuid.uuid4().hex[:8]
        return f"{self.scheme}{server}?schema={schema}"

    def cleanup(self, uri: str) -> None:
        import adbc_driver_postgresql.dbapi as pg

        server, schema = uri.removeprefix(self.scheme).split("?schema=")
        with pg.connect(server) as con, con.cursor() as cur:  # the schema and its sources' (<schema>__<source>)
            cur.execute(f"SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{schema}%'")
            for (name,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            con.commit()


class TestADBCPostgres(TestPostgres):
    scheme = "adbc+"  # the generic adbc+ path, with the PostgreSQL driver
