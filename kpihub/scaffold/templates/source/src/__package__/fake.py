"""A fake of the $title API on 127.0.0.1, for the tests and ``kpihub demo``.

It is what the tests trust, so make it speak the real API: the vendor's endpoint, parameters,
JSON shapes (strings where the API sends strings), cursor, error bodies and rate limiting —
and how the API behaves while data changes. Here: ``GET /v1/tickets`` sorted by ``updated_at``
(then ``id``), ``updated_since`` inclusive, an opaque ``next_cursor`` that encodes the last
ticket's position, so a ticket modified while a client pages moves behind its cursor and is
read again rather than skipped.

``python -m $package.fake`` serves it in the foreground and prints its URL and token.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
STATUSES = ("new", "open", "pending", "solved", "closed")
CHANNELS = ("email", "chat", "phone", "web")


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Fake${cls}(FakeAPIServer):
    """Seeded tickets behind a bearer token; ``touch`` and ``delete`` change them like users do."""

    paging = (Paging(path=r"^/v1/tickets$$", records="data", param="cursor", next="next_cursor"),)

    def __init__(
        self, *, seed: int = 0, tickets: int = 250, token: str = "fake-token-$name", **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.token = token
        self.clock = EPOCH
        self.tickets: dict[str, dict[str, Any]] = {}
        for _ in range(tickets):
            self._add()

    # -- the data ------------------------------------------------------------------------------

    def _tick(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=self.rng.choice((0, 1, 7, 60)))  # ties happen, as in real data
        return self.clock

    def _add(self) -> None:
        number = len(self.tickets) + 1
        created = self._tick()
        channel = self.rng.choice(CHANNELS)
        ticket = {"id": str(10_000 + number), "created_at": _iso(created), "via": {"channel": channel}}
        self.tickets[ticket["id"]] = ticket
        self._change(ticket)

    def _change(self, ticket: dict[str, Any]) -> None:
        status = self.rng.choice(STATUSES)
        created = dt.datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
        replies = self.rng.randint(0, 6)
        solved = status in ("solved", "closed")
        first_response = created + dt.timedelta(minutes=self.rng.randint(5, 600))
        ticket.update(
            status=status,
            updated_at=_iso(self._tick()),
            metrics={
                "replies": replies,
                "reopens": self.rng.randint(0, 2) if solved else 0,
                "first_response_at": _iso(first_response) if replies else None,
                "solved_at": _iso(created + dt.timedelta(hours=self.rng.randint(1, 72))) if solved else None,
            },
        )

    def touch(self, fraction: float = 0.05, new: int = 5) -> None:
        """Modify ``fraction`` of the tickets and add ``new`` ones (hold ``data_lock`` from another thread)."""
        with self.data_lock:
            for ticket in self.rng.sample(list(self.tickets.values()), max(1, int(len(self.tickets) * fraction))):
                self._change(ticket)
            for _ in range(new):
                self._add()

    def delete(self, count: int = 1) -> None:
        with self.data_lock:
            for key in self.rng.sample(list(self.tickets), min(count, len(self.tickets))):
                del self.tickets[key]

    # -- the API -------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") != f"Bearer {self.token}":
            return self.json(self.error_body(401, "invalid or missing API token"), status=401)
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message}}

    @route("GET", r"^/v1/tickets$$")
    def list_tickets(self, request: FakeRequest) -> FakeResponse:
        try:
            limit = min(int(request.query.get("limit", "100")), 100)
            after = _decode(request.query["cursor"]) if request.query.get("cursor") else None
        except (ValueError, KeyError):
            return self.json(self.error_body(400, "invalid limit or cursor"), status=400)
        since = request.query.get("updated_since")
        floor = dt.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        rows = sorted(self.tickets.values(), key=_position)
        if floor is not None:
            rows = [t for t in rows if dt.datetime.fromisoformat(t["updated_at"].replace("Z", "+00:00")) >= floor]
        if after is not None:
            rows = [t for t in rows if _position(t) > after]
        page = rows[:limit]
        more = len(rows) > limit
        return self.json({"data": page, "next_cursor": _encode(_position(page[-1])) if more else None})


def _position(ticket: dict[str, Any]) -> tuple[str, int]:
    return ticket["updated_at"], int(ticket["id"])


def _encode(position: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode(cursor: str) -> tuple[str, int]:
    updated_at, number = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return str(updated_at), int(number)


if __name__ == "__main__":
    fake = Fake${cls}(seed=1)
    print(f"token: {fake.token}", flush=True)
    fake.serve_forever()
