"""A small source plugin for testing the engine: items with a modified cursor, served by a fake API.

Wire format (our own, Stripe-like): ``GET /v1/items?after=<id>&limit=<n>&updated_gte=<iso>``
returns ``{"data": [...], "has_more": bool, "total": n}``; amounts are strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa
from pydantic import SecretStr

import kpihub
from kpihub.http import BearerAuth, CursorPaginator
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, route

TS = pa.timestamp("us", tz="UTC")
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


class FakeToy(FakeAPIServer):
    def __init__(self, *, seed: int = 0, items: int = 100, token: str = "toy-secret-token-123") -> None:
        super().__init__(seed=seed)
        self.token = token
        #: Added to the declared ``total``: an API that declares records its pages do not hold.
        self.undelivered = 0
        self.items = {
            i: {
                "id": f"it_{i:05d}",
                "name": f"Item {i}",
                "amount": f"{self.rng.randint(1, 99999) / 100:.2f}",
                "updated": (BASE + dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            }
            for i in range(1, items + 1)
        }

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"type": "api_error", "message": message}}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") != f"Bearer {self.token}":
            return self.json(self.error_body(401, "Invalid API key provided"), 401)
        return None

    @route("GET", r"/v1/items")
    def list_items(self, request: FakeRequest) -> FakeResponse:
        limit = int(request.query.get("limit", "10"))
        after = request.query.get("after")
        gte = request.query.get("updated_gte")
        rows = sorted(self.items.values(), key=lambda r: (r["updated"], r["id"]))
        if gte:
            rows = [r for r in rows if r["updated"] >= gte]
        total = len(rows)
        if after:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        page = rows[:limit]
        return self.json({"data": page, "has_more": len(rows) > limit, "total": total + self.undelivered})

    def touch(self, ids: list[int], minutes_later: int = 100_000) -> None:
        for i in ids:
            item = self.items[i]
            item["name"] = f"Changed {i}"
            item["updated"] = (BASE + dt.timedelta(minutes=minutes_later + i)).isoformat().replace("+00:00", "Z")


class ToySettings(kpihub.SourceSettings):
    base_url: str = "https://toy.invalid"
    token: SecretStr
    page_size: int = 50
    fail_after_pages: int | None = None


class ItemsStream(kpihub.Stream):
    def read(self, ctx: kpihub.StreamContext, state: Mapping[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        settings: ToySettings = ctx.settings  # type: ignore[assignment]
        params: dict[str, Any] = {"limit": settings.page_size}
        if state and state.get("cursor"):
            params["updated_gte"] = dt.datetime.fromisoformat(state["cursor"]).isoformat().replace("+00:00", "Z")
        paginator = CursorPaginator(
            "data", cursor_from=lambda body, recs: recs[-1]["id"] if body.get("has_more") else None, total_path="total"
        )
        for n, (_, records) in enumerate(ctx.pages(paginator, "GET", "/v1/items", params=params)):
            if settings.fail_after_pages is not None and n >= settings.fail_after_pages:
                raise kpihub.SourceError("toy: simulated failure mid-stream", source=ctx.source_id, stream=ctx.stream)
            yield records


ITEMS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(38, 9)),
        pa.field("updated", TS),
    ]
)


class ToySource(kpihub.Source):
    name = "toy"
    title = "Toy API"
    settings_class = ToySettings

    def streams(self, settings: kpihub.SourceSettings) -> list[kpihub.Stream]:
        return [ItemsStream("items", ITEMS_SCHEMA, primary_key=("id",), cursor_field="updated", sorted_by_cursor=True)]

    def auth(self, settings: kpihub.SourceSettings) -> BearerAuth:
        return BearerAuth(settings.token)  # type: ignore[attr-defined]

    def check(self, settings: kpihub.SourceSettings, http: Any) -> kpihub.CheckResult:
        try:
            http.json("GET", "/v1/items", params={"limit": 1}, stream="check")
        except kpihub.HTTPError as exc:
            return kpihub.CheckResult(False, str(exc))
        return kpihub.CheckResult(True, "ok")


@kpihub.hookimpl
def kpihub_register_sources(register: Callable[[kpihub.Source], None]) -> None:
    register(ToySource())
