"""A fake API that serves whatever pages a corpus case gives it, and a connector for it.

The connector declares the kinds of fields real connectors do: a string primary key, money as a
decimal with a floor of 0, counts with a floor (clicks ≥ 0, quantity > 0), a float, a boolean, a UTC
timestamp and a date, read from JSON of the API's own types (not all strings).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
from pydantic import SecretStr

import kpihub
from kpihub.http import BearerAuth, CursorPaginator
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, route

TOKEN = "corpus-token-5b1e"

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("price", pa.decimal128(18, 2), metadata={"minimum": "0"}),
        pa.field("quantity", pa.int64(), metadata={"exclusive_minimum": "0"}),
        pa.field("clicks", pa.int64(), metadata={"minimum": "0"}),
        pa.field("rate", pa.float64()),
        pa.field("active", pa.bool_()),
        pa.field("created", pa.timestamp("us", tz="UTC")),
        pa.field("day", pa.date32()),
    ]
)


class FakeCorpusAPI(FakeAPIServer):
    """``GET /v1/records?page=N`` answers ``pages[N]`` (raw bytes, or JSON made from a list of records)."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.pages: list[Any] = []
        self.status = 200
        self.declared_total: int | None = None  # what the API says it has (default: the truth)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") != f"Bearer {TOKEN}":
            return self.json({"error": {"message": "invalid token"}}, 401)
        return None

    @route("GET", r"/v1/records")
    def records(self, request: FakeRequest) -> FakeResponse:
        n = int(request.query.get("page", "0"))
        page = self.pages[n] if n < len(self.pages) else []
        if isinstance(page, bytes):
            return FakeResponse(self.status, page, {"Content-Type": "application/json"})
        total = sum(len(p) for p in self.pages if isinstance(p, list))
        body: dict[str, Any] = {"data": page, "total": total if self.declared_total is None else self.declared_total}
        if n + 1 < len(self.pages):
            body["next"] = str(n + 1)
        return self.json(body, self.status)


class CorpusSettings(kpihub.SourceSettings):
    base_url: str = "https://corpus.invalid"
    token: SecretStr


class RecordsStream(kpihub.Stream):
    def read(self, ctx: kpihub.StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        paginator = CursorPaginator("data", cursor_path="next", param="page", total_path="total")
        for _, records in ctx.pages(paginator, "GET", "/v1/records"):
            yield records


class CorpusSource(kpihub.Source):
    name = "corpus"
    title = "Corpus API"
    settings_class = CorpusSettings

    def streams(self, settings: kpihub.SourceSettings) -> list[kpihub.Stream]:
        return [RecordsStream("records", SCHEMA, primary_key=("id",))]

    def auth(self, settings: kpihub.SourceSettings) -> BearerAuth:
        return BearerAuth(settings.token)  # type: ignore[attr-defined]


@kpihub.hookimpl
def kpihub_register_sources(register: Any) -> None:
    register(CorpusSource())
