"""A fake Zendesk Support API on 127.0.0.1, in Zendesk's wire format, for the tests and the demo.

What it serves, as Zendesk documents it (developer.zendesk.com/api-reference/ticketing/
ticket-management/incremental_exports/ and .../using-the-incremental-export-api):

* ``GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>`` and then ``?cursor=<after_cursor>``:
  ``{"tickets": [...], "after_url", "after_cursor", "before_url", "before_cursor", "end_of_stream"}``,
  tickets in order of ``generated_timestamp`` (the time Zendesk last regenerated the ticket's
  export record) then id; ``per_page`` up to 1000. A ticket changed while a client pages gets a new
  ``generated_timestamp`` and comes again behind the cursor, never skipped. Changes of the last
  minute are held back. Deleted tickets stay in the export with ``status: "deleted"`` (the value
  is from client libraries' enums, e.g. justeat/ZendeskApiClient ``TicketStatus.cs``) unless
  ``exclude_deleted=true``. ``include=metric_sets`` side-loads ``metric_sets`` (one per ticket,
  keyed by ``ticket_id``; its own ``id`` is the metric set's): ``replies``, ``reopens``,
  ``reply_time_in_minutes`` / ``first_resolution_time_in_minutes`` / ``full_resolution_time_in_minutes``
  as ``{"calendar": int|null, "business": int|null}``, ``solved_at``.
* ``GET /api/v2/users/me.json``: the authenticated user.
* Basic auth ``{email}/token:{api_token}``; anything else is ``401 {"error": "Couldn't authenticate you"}``.
  Bad parameters are ``400 {"error": "InvalidValue", "description": ...}``.

The data is either ``tickets`` quick random tickets from 2026-01-05 (the conformance suite's
default), or with ``start``/``end`` a help desk's seeded history over those days
(:mod:`kpihub_zendesk.history`), which :func:`demo_spec` serves to ``kpihub demo``.

``python -m kpihub_zendesk.fake`` serves it in the foreground and prints its URL and credentials.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import time
from typing import Any

from kpihub import DemoSpec
from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub_zendesk.history import history

__all__ = ["DEMO_TARGETS", "FakeZendesk", "demo_spec"]

EPOCH = dt.datetime(2026, 1, 5, 8, tzinfo=dt.timezone.utc)
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
CHANNELS = ("email", "web", "chat", "api", "voice")
EXPORT = r"^/api/v2/incremental/tickets/cursor\.json$"


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _minutes(value: int | None) -> dict[str, int | None]:
    # Business minutes run shorter than calendar minutes (nights and weekends are not counted).
    return {"calendar": value, "business": None if value is None else value * 2 // 3}


class FakeZendesk(FakeAPIServer):
    """Seeded tickets with their metric sets; ``touch`` and ``delete`` change them as agents do.

    :param tickets: that many quick random tickets from 2026-01-05 (300 when no ``start``).
    :param start: instead, a help desk's history of the days ``start`` to ``end`` (default:
        yesterday), ``scale`` times the volume, in business hours of ``zone``
        (see :mod:`kpihub_zendesk.history`).

    Change the data only through :meth:`touch` and :meth:`delete`: they keep the export's order.
    """

    paging = (Paging(path=EXPORT, records="tickets", param="cursor", next="after_cursor"),)

    def __init__(
        self,
        *,
        seed: int = 0,
        tickets: int | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        scale: int = 1,
        zone: str = "Europe/Oslo",
        email: str = "agent@example.com",
        api_token: str = "fake-zendesk-token",
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.email, self.api_token = email, api_token
        self.tickets: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self._order: list[tuple[int, int]] | None = None  # (generated_timestamp, id), sorted; None: stale
        if start is None:
            if end is not None or scale != 1:
                raise ValueError("FakeZendesk: end and scale need start")
            self.clock, self._next_id = EPOCH, 35_001
            for _ in range(300 if tickets is None else tickets):
                self._add()
            return
        if tickets is not None:
            raise ValueError("FakeZendesk: give tickets or start/end, not both")
        last = end or dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        desk = history(seed=seed, start=start, end=last, scale=scale, zone=zone)
        self.tickets = {t["id"]: t for t in desk.tickets}
        self.metrics = {m["ticket_id"]: m for m in desk.metrics}
        self.clock = dt.datetime.fromtimestamp(desk.now, dt.timezone.utc)
        self._next_id = max(self.tickets, default=35_000) + 1

    # -- the data ------------------------------------------------------------------------------

    def _tick(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=self.rng.choice((0, 1, 13, 60, 600)))  # ties happen
        return self.clock

    def _add(self) -> None:
        number, self._next_id = self._next_id, self._next_id + 1
        created = self._tick()
        self.tickets[number] = {
            "url": f"https://example.zendesk.com/api/v2/tickets/{number}.json",
            "id": number,
            "via": {"channel": self.rng.choice(CHANNELS), "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": _iso(created),
            "subject": f"Question {number}",
            "requester_id": 9_000 + self.rng.randint(1, 400),
        }
        self.metrics[number] = {"id": 70_000 + number, "ticket_id": number, "created_at": _iso(created)}
        self._change(number)

    def _change(self, number: int) -> None:
        ticket, metric = self.tickets[number], self.metrics[number]
        created = dt.datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
        status = self.rng.choice(STATUSES)
        solved = status in ("solved", "closed")
        replies = self.rng.randint(1, 5) if solved else self.rng.randint(0, 3)
        reply = self.rng.randint(3, 900) if replies else None
        resolution = self.rng.randint(30, 4_000) if solved else None
        now = self._tick()
        self._order = None
        ticket.update(status=status, updated_at=_iso(now), generated_timestamp=int(now.timestamp()))
        metric.update(
            updated_at=_iso(now),
            replies=replies,
            reopens=self.rng.choice((0, 0, 0, 1)) if solved else 0,
            reply_time_in_minutes=_minutes(reply),
            first_resolution_time_in_minutes=_minutes(resolution),
            full_resolution_time_in_minutes=_minutes(resolution),
            solved_at=_iso(created + dt.timedelta(minutes=resolution)) if resolution else None,
        )

    def touch(self, fraction: float = 0.05, new: int = 5) -> None:
        """Change ``fraction`` of the live tickets and open ``new`` ones."""
        with self.data_lock:
            live = [n for n, t in self.tickets.items() if t["status"] != "deleted"]
            for number in self.rng.sample(live, max(1, int(len(live) * fraction))):
                self._change(number)
            for _ in range(new):
                self._add()

    def delete(self, count: int = 1) -> None:
        """Delete ``count`` tickets: they stay in the export as ``status: "deleted"``, regenerated now."""
        with self.data_lock:
            live = [n for n, t in self.tickets.items() if t["status"] != "deleted"]
            for number in self.rng.sample(live, min(count, len(live))):
                now = self._tick()
                self._order = None
                self.tickets[number].update(
                    status="deleted", updated_at=_iso(now), generated_timestamp=int(now.timestamp())
                )

    # -- the API -------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        expected = base64.b64encode(f"{self.email}/token:{self.api_token}".encode()).decode()
        if request.header("authorization") != f"Basic {expected}":
            return self.json({"error": "Couldn't authenticate you"}, status=401)
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"error": "InvalidValue" if status == 400 else "ServerError", "description": message}

    @route("GET", r"^/api/v2/users/me\.json$")
    def me(self, request: FakeRequest) -> FakeResponse:
        return self.json({"user": {"id": 9_001, "email": self.email, "role": "admin", "active": True}})

    @route("GET", EXPORT)
    def export(self, request: FakeRequest) -> FakeResponse:
        q = request.query
        try:
            per_page = int(q.get("per_page", "1000"))
            if not 1 <= per_page <= 1000:
                raise ValueError
        except ValueError:
            return self.json(self.error_body(400, "per_page must be between 1 and 1000"), status=400)
        if q.get("cursor"):
            try:
                after = _decode(q["cursor"])
            except ValueError:
                return self.json(self.error_body(400, "cursor is invalid"), status=400)
        elif q.get("start_time", "").isdigit():
            after = (int(q["start_time"]) - 1, 1 << 62)  # start_time is inclusive
        else:
            return self.json(self.error_body(400, "start_time or cursor is required"), status=400)
        page, end = self._rows(after, per_page, exclude_deleted=q.get("exclude_deleted") == "true")
        last = _position(page[-1]) if page else after
        cursor = _encode(last)
        body: dict[str, Any] = {
            "tickets": page,
            "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "after_cursor": cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": end,
        }
        if "metric_sets" in q.get("include", "").split(","):
            # Deleting a ticket deletes its metrics (singer-io/tap-zendesk#149): nothing side-loaded for it.
            body["metric_sets"] = [self.metrics[t["id"]] for t in page if t["status"] != "deleted"]
        return self.json(body)

    def _rows(self, after: tuple[int, int], per_page: int, *, exclude_deleted: bool) -> tuple[list[Any], bool]:
        """The page of tickets after position ``after``, and whether it is the export's last."""
        if self._order is None:  # sorted once per change, not per page (the demo pages ~5,000 x scale)
            self._order = sorted(_position(t) for t in self.tickets.values())
        order, held_back = self._order, int(time.time()) - 60  # the last minute's changes are excluded
        rows: list[Any] = []
        i = bisect.bisect_right(order, after)
        while i < len(order) and order[i][0] < held_back and len(rows) <= per_page:
            ticket = self.tickets[order[i][1]]
            if not (exclude_deleted and ticket["status"] == "deleted"):
                rows.append(ticket)
            i += 1
        return rows[:per_page], len(rows) <= per_page


def _position(ticket: dict[str, Any]) -> tuple[int, int]:
    return ticket["generated_timestamp"], ticket["id"]


def _encode(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}.{position[1]}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    try:
        stamp, number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".")
        return int(stamp), int(number)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None


#: ``kpihub demo``'s targets for 2026-Q2: each baseline is the 2026-Q1 value of the default demo
#: (seed 7, scale 1) through the KPI engine, rounded (tests/test_demo.py checks it); each target
#: is a step a team could commit to for one quarter.
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "first_contact_resolution", "period": "2026-Q2", "baseline": 73.4, "target": 76},
    {"kpi": "first_response_hours", "period": "2026-Q2", "baseline": 2.3, "target": 2.0},
]


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """``kpihub demo``: the demo business's help desk over its dates, ~4,600 tickets per ``scale``."""
    from kpihub.testing import DEMO_BUSINESS

    b = DEMO_BUSINESS
    server = FakeZendesk(seed=seed, start=b.start, end=b.end, scale=scale, zone=b.time_zone)
    settings = {
        "email": server.email,
        "api_token": server.api_token,
        # The fake has no 10-a-minute limit: the demo's ~5 export pages per scale do not wait.
        "export_requests_per_minute": 100_000,
    }
    return DemoSpec(server=server, settings=settings, targets=[dict(t) for t in DEMO_TARGETS])


if __name__ == "__main__":
    fake = FakeZendesk(seed=1)
    print(f"email: {fake.email}  api_token: {fake.api_token}", flush=True)
    fake.serve_forever()
