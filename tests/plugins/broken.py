"""Plugins that break one rule each, so the conformance suites can be shown to catch them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from kpihub import Destination, DestinationSession, TableWrite
from kpihub.destinations.duckdb import DuckDBDestination


class _Wrapped(DestinationSession):
    """A DuckDB session with another commit."""

    def __init__(self, inner: DestinationSession) -> None:
        self.inner, self.uri = inner, inner.uri

    def get_state(self, key: str) -> dict[str, Any] | None:
        return self.inner.get_state(key)

    def all_state(self) -> dict[str, dict[str, Any]]:
        return self.inner.all_state()

    def tables(self) -> list[str]:
        return self.inner.tables()

    def read_table(self, name: str) -> pa.Table:
        return self.inner.read_table(name)

    def attach(self, con: Any) -> None:
        self.inner.attach(con)

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        self.inner.commit(writes, state)

    def close(self) -> None:
        self.inner.close()


class StateFirst(_Wrapped):
    """Commits the state, then the data: two transactions, so a kill between them leaves a mix."""

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        self.inner.commit([], state)
        self.inner.commit(writes, {})


class KeyPart(_Wrapped):
    """Merges on the last column of the primary key only."""

    def commit(self, writes: Sequence[TableWrite], state: Mapping[str, dict[str, Any]]) -> None:
        fixed = [dataclasses.replace(w, primary_key=w.primary_key[-1:]) if w.primary_key else w for w in writes]
        self.inner.commit(fixed, state)


class BrokenDuckDB(Destination):
    """DuckDB with the session class ``session`` names."""

    name = "broken"
    schemes = ("duckdb",)

    def __init__(self, session: str) -> None:
        self.session = session

    def open(self, uri: str, *, root: Path | None = None, read_only: bool = False) -> DestinationSession:
        inner = DuckDBDestination().open(uri, root=root, read_only=read_only)
        return {"state_first": StateFirst, "key_part": KeyPart}[self.session](inner)
