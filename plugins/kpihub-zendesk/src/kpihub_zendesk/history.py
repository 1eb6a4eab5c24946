"""A help desk's ticket history for :class:`~kpihub_zendesk.fake.FakeZendesk`: seeded, deterministic.

What it models, per seed (every draw comes from one ``random.Random(seed)``):

* volume: 8-13 tickets a weekday and 2-5 a weekend day (times ``scale``), created in the
  desk's business hours (08:00-17:00 local, peaking late morning); tickets are numbered in
  the order they were created;
* channels as Zendesk's ``via.channel`` names them: email, web (form), native_messaging,
  chat, voice, api;
* the first agent reply after an exponential wait whose mean falls over the range (from
  ~3.7 h to ~1.9 h; the live channels are answered sooner than email);
* first-contact resolution: 66 % of tickets are solved with one reply and never reopened until
  the middle of the range, rising linearly to 78 % at its end; the others take 2-5 replies;
  3 % are reopened once after a solve (one more reply, solved again); 0.5 % are spam, deleted
  unanswered;
* the data is exported at local midnight after the last day: what has not happened by then
  has not happened, so the last days' tickets are partly new, open or pending, and a solved
  ticket is closed 4 days after its solve (Zendesk's default automation).

Each ticket's ``updated_at`` is its last change and ``generated_timestamp`` is that or up to
two seconds later (ties between tickets happen); its metric set agrees with it: ``replies``,
``reopens``, ``solved_at`` (null while unsolved), reply and resolution times in calendar and
business minutes.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any

from kpihub.testing import DemoBusiness

__all__ = ["Desk", "history"]

DAY = 86_400
HOUR = 3_600
OPEN, CLOSE = 8 * HOUR, 17 * HOUR  # the desk's business hours, local time, Monday to Friday

CHANNELS = ("email", "web", "native_messaging", "chat", "voice", "api")
CHANNEL_WEIGHTS = (42, 26, 14, 6, 8, 4)
#: A channel's first-reply wait relative to the average: people waiting live are answered first.
REPLY_FACTOR = {"email": 1.25, "web": 1.0, "native_messaging": 0.3, "chat": 0.3, "voice": 0.15, "api": 1.0}
MEAN_REPLY_MINUTES = 250.0  # before the channel factor, at the range's start...
REPLY_GAIN = 0.5  # ...and this much less at its end
FCR_START, FCR_GAIN = 0.66, 0.12  # flat over the range's first half, then rising linearly
REOPEN, SPAM = 0.03, 0.005
CLOSE_AFTER = 4 * DAY
TOPICS = (
    ("Where is my order?", "shipping"),
    ("Return or exchange", "returns"),
    ("Which size should I take?", "product"),
    ("Payment did not go through", "billing"),
    ("Zip broke after two trips", "warranty"),
    ("Discount code does not work", "promotion"),
)
TYPES, TYPE_WEIGHTS = ("question", "incident", "task"), (65, 30, 5)
PRIORITIES, PRIORITY_WEIGHTS = ("low", "normal", "high", "urgent"), (10, 70, 15, 5)
AGENTS = tuple(381_200_000_101 + i for i in range(6))
REQUESTER_BASE, METRIC_BASE = 381_234_500_000, 29_560_000_000
GROUP, BRAND, FORM = 360_004_512_345, 360_001_234_567, 360_000_871_234


@dataclass
class Desk:
    """Tickets and metric sets (Zendesk's export shapes) and the unix time they were exported at."""

    tickets: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    now: int


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def business_minutes(start: int, end: int, offset: int) -> int:
    """Minutes of ``[start, end)`` (unix seconds) inside business hours, at UTC ``offset`` seconds.

    One offset for the whole span: a span over a daylight-saving change is off by that hour.
    """
    lo, hi = start + offset, end + offset
    total, day = 0, lo // DAY
    while day * DAY < hi:
        if (day + 3) % 7 < 5:  # day 0 (1970-01-01) was a Thursday: this is Monday..Friday
            total += max(0, min(hi, day * DAY + CLOSE) - max(lo, day * DAY + OPEN))
        day += 1
    return total // 60


def _minutes(start: int, end: int | None, offset: int) -> dict[str, int | None]:
    if end is None:
        return {"calendar": None, "business": None}
    return {"calendar": (end - start) // 60, "business": business_minutes(start, end, offset)}


def _events(rng: random.Random, created: int, channel: str, progress: float) -> list[tuple[int, str]]:
    """A ticket's whole life as (unix seconds, event), whether or not it has happened by the export."""
    if rng.random() < SPAM:
        return [(created + 60 + int(rng.expovariate(1 / (30 * 60))), "delete")]
    mean = MEAN_REPLY_MINUTES * (1 - REPLY_GAIN * progress) * REPLY_FACTOR[channel]
    t = created + 60 * max(1, round(rng.expovariate(1 / mean)))  # Zendesk counts whole minutes
    events = [(t, "reply")]
    fcr = FCR_START + FCR_GAIN * max(0.0, 2 * progress - 1)
    reopened = rng.random() < REOPEN
    if rng.random() < fcr / (1 - REOPEN):
        if rng.random() < 0.4:  # solved when the requester confirms, not with the reply itself
            t += 60 + int(rng.expovariate(1 / (20 * HOUR)))
    else:
        for _ in range(rng.choices((1, 2, 3, 4), (55, 25, 12, 8))[0]):
            t += 60 + int(rng.expovariate(1 / (18 * HOUR)))  # customers answer the next day
            events.append((t, "answer"))
            t += 60 + int(rng.expovariate(1 / (3 * HOUR)))
            events.append((t, "reply"))
        t += int(rng.expovariate(1 / HOUR))
    events.append((t, "solve"))
    if reopened:
        t += 60 + int(rng.expovariate(1 / DAY))
        events.append((t, "reopen"))
        t += 60 + int(rng.expovariate(1 / (2 * HOUR)))
        events += [(t, "reply"), (t, "solve")]
    events.append((t + CLOSE_AFTER + rng.randrange(HOUR), "close"))
    return events


def _replay(created: int, events: list[tuple[int, str]], now: int) -> dict[str, Any]:
    """The ticket's state at ``now``: the events up to then, applied in order."""
    s: dict[str, Any] = {"status": "new", "updated": created, "replies": 0, "reopens": 0, "first_reply": None}
    s.update(first_solve=None, solved=None, latest_comment=created)
    for at, event in events:
        if at > now:
            break
        s["updated"] = at
        if event == "reply":
            s.update(status="pending", replies=s["replies"] + 1, latest_comment=at)
            s["first_reply"] = s["first_reply"] or at
        elif event == "answer":
            s.update(status="open", latest_comment=at)
        elif event == "solve":
            s.update(status="solved", solved=at)
            s["first_solve"] = s["first_solve"] or at
        elif event == "reopen":
            s.update(status="open", solved=None, reopens=s["reopens"] + 1, latest_comment=at)
        else:  # close, delete
            s["status"] = "closed" if event == "close" else "deleted"
    return s


def _days(start: dt.date, end: dt.date, zone: zoneinfo.ZoneInfo) -> list[tuple[dt.date, int, int]]:
    """Each day of the range: (date, unix seconds of its local midnight, its UTC offset in seconds)."""
    out = []
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        noon = dt.datetime.combine(day, dt.time(12), zone)
        offset = int(noon.utcoffset().total_seconds())  # type: ignore[union-attr]
        out.append((day, int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) - offset, offset))
    return out


def history(
    *,
    seed: int,
    start: dt.date,
    end: dt.date,
    scale: int = 1,
    zone: str = "Europe/Oslo",
    first_id: int = 35_001,
    subdomain: str = "example",
) -> Desk:
    """The desk's tickets created from ``start`` to ``end`` (inclusive), exported after ``end``'s last hour."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    rng, tz = random.Random(seed), zoneinfo.ZoneInfo(zone)
    days = _days(start, end, tz)
    now = days[-1][1] + DAY
    # Column by column: when each ticket is created, and the attributes that do not depend on it.
    created: list[tuple[int, float, int]] = []
    for i, (day, midnight, offset) in enumerate(days):
        count = (rng.randint(8, 13) if day.weekday() < 5 else rng.randint(2, 5)) * scale
        stamps = sorted(midnight + int(rng.triangular(OPEN, CLOSE, 10.5 * HOUR)) for _ in range(count))
        progress = i / max(1, len(days) - 1)
        created += [(s, progress, offset) for s in stamps]
    n = len(created)
    channels = rng.choices(CHANNELS, CHANNEL_WEIGHTS, k=n)
    topics = rng.choices(TOPICS, k=n)
    types = rng.choices(TYPES, TYPE_WEIGHTS, k=n)
    priorities = rng.choices(PRIORITIES, PRIORITY_WEIGHTS, k=n)
    customers = max(1, n * 5 // 8)  # repeat contacts: ~1.6 tickets per requester
    requesters = [rng.randrange(customers) + 1 for _ in range(n)]
    agents = rng.choices(AGENTS, k=n)
    tickets, metrics = [], []
    for k, (c, progress, offset) in enumerate(created):
        number, channel = first_id + k, channels[k]
        s = _replay(c, _events(rng, c, channel, progress), now)
        generated = s["updated"] + rng.randrange(3)
        ticket = _ticket(number, c, s, channel, topics[k], requesters[k], subdomain)
        ticket.update(
            type=types[k],
            priority=priorities[k],
            assignee_id=agents[k] if s["first_reply"] else None,
            generated_timestamp=generated,
        )
        tickets.append(ticket)
        metrics.append(_metric_set(number, c, s, offset, subdomain))
    return Desk(tickets, metrics, now)


def _ticket(
    number: int, created: int, s: dict[str, Any], channel: str, topic: tuple[str, str], requester: int, sub: str
) -> dict[str, Any]:
    if channel == "email":
        address = DemoBusiness.customer_email(requester)
        source = {"from": {"address": address, "name": None}, "to": {"address": "support@nordlys.example"}}
    else:
        source = {"from": {}, "to": {}}
    return {
        "url": f"https://{sub}.zendesk.com/api/v2/tickets/{number}.json",
        "id": number,
        "external_id": None,
        "via": {"channel": channel, "source": {**source, "rel": None}},
        "created_at": _iso(created),
        "updated_at": _iso(s["updated"]),
        "subject": topic[0],
        "raw_subject": topic[0],
        "status": s["status"],
        "recipient": "support@nordlys.example" if channel == "email" else None,
        "requester_id": REQUESTER_BASE + requester,
        "submitter_id": REQUESTER_BASE + requester,
        "organization_id": None,
        "group_id": GROUP,
        "brand_id": BRAND,
        "ticket_form_id": FORM,
        "tags": [topic[1]],
        "is_public": True,
        "has_incidents": False,
        "from_messaging_channel": channel == "native_messaging",
    }


def _metric_set(number: int, created: int, s: dict[str, Any], offset: int, sub: str) -> dict[str, Any]:
    def stamp(value: int | None) -> str | None:
        return None if value is None else _iso(value)

    metric_id = METRIC_BASE + number
    return {
        "url": f"https://{sub}.zendesk.com/api/v2/ticket_metrics/{metric_id}.json",
        "id": metric_id,
        "ticket_id": number,
        "created_at": _iso(created),
        "updated_at": _iso(s["updated"]),
        "group_stations": 1,
        "assignee_stations": 1 if s["first_reply"] else 0,
        "replies": s["replies"],
        "reopens": s["reopens"],
        "assigned_at": stamp(s["first_reply"]),
        "initially_assigned_at": stamp(s["first_reply"]),
        "status_updated_at": _iso(s["updated"]),
        "latest_comment_added_at": _iso(s["latest_comment"]),
        "solved_at": stamp(s["solved"]),
        "reply_time_in_minutes": _minutes(created, s["first_reply"], offset),
        "first_resolution_time_in_minutes": _minutes(created, s["first_solve"], offset),
        "full_resolution_time_in_minutes": _minutes(created, s["solved"], offset),
    }
