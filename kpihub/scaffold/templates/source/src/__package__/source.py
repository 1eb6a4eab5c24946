"""The $name source: tickets of a help-desk-shaped REST API -> ``support_tickets``.

``GET /v1/tickets?updated_since=&sort=updated_at&limit=&cursor=`` answers
``{"data": [ticket, ...], "next_cursor": "..." | null}``, oldest change first, with a bearer
token. Replace the endpoint, the parameters and the JSON paths with your API's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
from pydantic import SecretStr

import kpihub
from kpihub.http import BearerAuth, CursorPaginator, Requester

TS = pa.timestamp("us", tz="UTC")


class ${cls}Settings(kpihub.SourceSettings):
    """``[sources.$name]`` in kpihub.toml; ``KPIHUB_${NAME}_<FIELD>`` variables win."""

    base_url: str = "https://api.example.com"
    #: A secret: redacted from every log, error and file (set it in the environment).
    api_token: SecretStr
    page_size: int = 100


#: The raw table ``${name}_tickets``: a field's ``path`` metadata is its dotted path in the JSON.
TICKETS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("channel", pa.string(), metadata={"path": "via.channel"}),
        pa.field("created_at", TS),
        pa.field("updated_at", TS),
        pa.field("first_response_at", TS, metadata={"path": "metrics.first_response_at"}),
        pa.field("solved_at", TS, metadata={"path": "metrics.solved_at"}),
        pa.field("replies", pa.int64(), metadata={"path": "metrics.replies", "minimum": "0"}),
        pa.field("reopens", pa.int64(), metadata={"path": "metrics.reopens", "minimum": "0"}),
    ]
)


class TicketsStream(kpihub.Stream[${cls}Settings]):
    """Tickets changed since the cursor, oldest change first."""

    def read(
        self, ctx: kpihub.StreamContext[${cls}Settings], state: Mapping[str, Any] | None
    ) -> Iterator[kpihub.Page]:
        params: dict[str, Any] = {"sort": "updated_at", "limit": ctx.settings.page_size}
        since = kpihub.decode_cursor(state)  # the newest updated_at committed (a datetime), or None
        if since is not None:
            params["updated_since"] = since.isoformat()  # inclusive: ties at the cursor are re-read
        elif ctx.settings.start_date is not None:  # a first sync: the stream applies start_date itself
            params["updated_since"] = f"{ctx.settings.start_date.isoformat()}T00:00:00+00:00"
        paginator = CursorPaginator("data", cursor_path="next_cursor", param="cursor")
        for _body, records in ctx.pages(paginator, "GET", "/v1/tickets", params=params):
            yield records

    def to_canonical(self, batch: pa.RecordBatch, ctx: kpihub.StreamContext[${cls}Settings]) -> pa.RecordBatch:
        # Column-wise: the canonical table's columns (kpihub.canonical_table("support_tickets"));
        # the engine adds source_id and _loaded_at.
        return pa.RecordBatch.from_arrays(
            [
                batch.column("id"),
                batch.column("channel"),
                batch.column("status"),
                batch.column("created_at"),
                batch.column("first_response_at"),
                batch.column("solved_at"),
                batch.column("replies"),
                batch.column("reopens"),
            ],
            names=[
                "ticket_id",
                "channel",
                "status",
                "created_at",
                "first_response_at",
                "resolved_at",
                "agent_replies",
                "reopens",
            ],
        )


class ${cls}Source(kpihub.Source[${cls}Settings]):
    """$title."""

    name = "$name"
    title = "$title"
    settings_class = ${cls}Settings

    def streams(self, settings: ${cls}Settings) -> Sequence[kpihub.Stream[${cls}Settings]]:
        return [
            TicketsStream(
                "tickets",
                TICKETS,
                primary_key=("id",),
                cursor_field="updated_at",
                sorted_by_cursor=True,  # the API sorts by updated_at: the cursor commits with each chunk
                canonical_table="support_tickets",
                page_size=settings.page_size,
            )
        ]

    def auth(self, settings: ${cls}Settings) -> BearerAuth:
        return BearerAuth(settings.api_token)

    def check(self, settings: ${cls}Settings, http: Requester) -> kpihub.CheckResult:
        try:
            http.json("GET", "/v1/tickets", params={"limit": 1}, stream="check")
        except kpihub.HTTPError as exc:  # a refused token, an unreachable API: one line, not a traceback
            return kpihub.CheckResult(False, str(exc))
        return kpihub.CheckResult(True, "connected")

    def demo(self, *, seed: int = 7, scale: int = 1) -> kpihub.DemoSpec:
        from $package.fake import Fake${cls}

        server = Fake${cls}(seed=seed, tickets=200 * scale)
        return kpihub.DemoSpec(server=server, settings={"api_token": server.token})
