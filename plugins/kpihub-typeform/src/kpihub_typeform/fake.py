"""A fake Typeform Responses API on 127.0.0.1, in Typeform's wire format, for the tests and the demo.

What it serves, as Typeform documents it:

* ``GET /forms/{form_id}/responses`` (typeform.com/developers/responses/reference/retrieve-responses):
  ``page_size`` (default 25, at most 1000), ``since``/``until`` inclusive (unix seconds or ISO 8601
  UTC), ``before``/``after`` tokens exclusive and not combinable with ``sort``; newest first
  (``submitted_at,desc``, as Typeform/js-api-client's README says); completed responses only
  unless ``response_type`` says otherwise. The body is ``{"total_items", "page_count", "items"}``;
  an item has ``landing_id``, ``token`` (here equal to ``response_id``, as in Typeform's JSON
  example), ``landed_at``, ``submitted_at``, ``metadata``, ``hidden``, ``calculated.score`` and
  ``answers``: each ``{"field": {"id", "type", "ref"}, "type": <kind>, <kind>: value}``
  (typeform.com/developers/responses/JSON-response-explanation). Unanswered questions are absent.
* ``GET /forms/{form_id}``: the form, its ``fields`` with ``properties.steps`` / ``start_at_one``.
* ``Authorization: Bearer <personal token>``; a wrong one is ``403 {"code": "AUTHENTICATION_ERROR",
  "description": ...}`` (typeform.com/developers/troubleshooting/: Typeform answers 403, not 401).

A response submitted while a client walks the pages with ``before`` is newer than the first page,
so that walk never meets it (the next sync's ``since`` does); a response deleted mid-walk leaves no
tombstone (``DELETE /forms/{id}/responses`` in js-api-client).

By default it holds 120 responses a few minutes apart (the tests' form). Given ``start`` and
``end`` it holds a feedback form's history over those days instead, from
:mod:`kpihub_typeform.survey`; :func:`demo_spec` is that over the demo business's dates, for
``kpihub demo`` (``[source] demo`` in typeform.toml).

``python -m kpihub_typeform.fake`` serves it in the foreground and prints its URL and token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any
from zoneinfo import ZoneInfo

from kpihub import DemoSpec
from kpihub.testing import DEMO_BUSINESS, FakeAPIServer, FakeRequest, FakeResponse, Paging, route
from kpihub_typeform import survey

__all__ = ["FORM", "FakeTypeform", "demo_spec"]

EPOCH = dt.datetime(2026, 2, 2, 9, tzinfo=dt.timezone.utc)
FORM = "lR6F4j"
#: The form's questions: (id, type, ref), as a customer-feedback form asks them.
FIELDS = (
    ("Xy12nps0", "nps", "nps_q"),
    ("Ab34csat", "rating", "csat_q"),
    ("Cd56nki0", "opinion_scale", "nki_q"),
    ("Ef78text", "long_text", "feedback_q"),
    ("Gh90chan", "multiple_choice", "channel_q"),
)
CHANNELS = ("Web shop", "Store", "Phone")


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> dt.datetime:
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class FakeTypeform(FakeAPIServer):
    """Seeded completed responses to one feedback form; ``respond`` and ``delete`` change them."""

    paging = (Paging(path=rf"^/forms/{FORM}/responses$", records="items", param="before", last_record="token"),)

    def __init__(
        self,
        *,
        seed: int = 0,
        responses: int | None = None,
        token: str = "tfp_fake_token",
        start: dt.date | None = None,
        end: dt.date | None = None,
        per_month: float = 120,
        nps_start: float = 15,
        nps_end: float = 33,
        zone: str = "Europe/Oslo",
        **kwargs: Any,
    ) -> None:
        """``responses`` (default 120) submitted a few minutes apart from :data:`EPOCH`; or, given
        ``start`` and ``end``, about ``per_month`` a month over those days (in ``zone``) with an NPS that
        moves from ``nps_start`` to ``nps_end`` (see :mod:`kpihub_typeform.survey`)."""
        super().__init__(seed=seed, **kwargs)
        self.token = token
        self.clock = EPOCH
        self.responses: dict[str, dict[str, Any]] = {}
        #: Deleted responses: never served, but a token a client holds still marks its place.
        self.deleted: dict[str, dict[str, Any]] = {}
        self._newest_first: list[dict[str, Any]] | None = None
        if start is None and end is None:
            for _ in range(120 if responses is None else responses):
                self.respond()
            return
        if start is None or end is None or end < start or responses is not None:
            raise ValueError("FakeTypeform: a date range needs both start <= end, and no responses count")
        if not (-70 <= nps_start <= 70 and -70 <= nps_end <= 70):
            raise ValueError("FakeTypeform: nps_start/nps_end must be within ±70 (30 % of answers are passives)")
        rng = random.Random(seed * 7919 + 11)  # its own stream: the fault and respond() draws stay as they were
        zoned = survey.responses(
            rng, start, end, per_month=per_month, nps_start=nps_start, nps_end=nps_end, zone=ZoneInfo(zone)
        )
        for r in zoned:
            self._store(r.landed_at, r.submitted_at, [_answer(a) for a in r.answers])
        # respond() goes on after the newest response (oldest first: the last one stored).
        newest = next(reversed(self.responses.values()), None)
        self.clock = (
            _parse_time(newest["submitted_at"]) if newest else dt.datetime.combine(end, dt.time(), dt.timezone.utc)
        )

    # -- the data ------------------------------------------------------------------------------

    def respond(self, count: int = 1) -> None:
        """``count`` new completed responses, submitted now (each a few minutes after the last)."""
        with self.data_lock:
            for _ in range(count):
                self._add()

    def _add(self) -> None:
        self.clock += dt.timedelta(seconds=self.rng.choice((0, 30, 240, 3_600)))  # ties happen
        landed = self.clock - dt.timedelta(seconds=self.rng.randint(40, 400))
        answers = []
        for field_id, kind, ref in FIELDS:
            if self.rng.random() < 0.15:  # skipped: an unanswered question is absent
                continue
            field = {"id": field_id, "type": kind, "ref": ref}
            if kind == "nps":
                answers.append({"field": field, "type": "number", "number": self.rng.choice(range(11))})
            elif kind == "rating":
                answers.append({"field": field, "type": "number", "number": self.rng.randint(1, 5)})
            elif kind == "opinion_scale":
                answers.append({"field": field, "type": "number", "number": self.rng.randint(1, 10)})
            elif kind == "long_text":
                answers.append({"field": field, "type": "text", "text": "Quick delivery, friendly staff."})
            else:
                label = self.rng.choice(CHANNELS)
                answers.append({"field": field, "type": "choice", "choice": {"id": label[:4], "label": label}})
        self._store(landed, self.clock, answers)

    def _store(self, landed: dt.datetime, submitted: dt.datetime, answers: list[dict[str, Any]]) -> None:
        token = hashlib.md5(f"{self.seed}-{len(self.responses) + len(self.deleted)}".encode()).hexdigest()
        self.responses[token] = {
            "landing_id": token,
            "token": token,
            "response_id": token,
            "response_type": "completed",
            "landed_at": _iso(landed),
            "submitted_at": _iso(submitted),
            "metadata": {
                "user_agent": "Mozilla/5.0",
                "platform": "other",
                "referer": f"https://acme.typeform.com/to/{FORM}",
                "network_id": hashlib.md5(token.encode()).hexdigest()[:10],
                "browser": "default",
            },
            "hidden": {},
            "calculated": {"score": 0},
            "answers": answers,
        }
        self._newest_first = None

    def delete(self, count: int = 1) -> None:
        """Delete ``count`` responses: gone from every list, no tombstone."""
        with self.data_lock:
            for token in self.rng.sample(list(self.responses), min(count, len(self.responses))):
                self.deleted[token] = self.responses.pop(token)
            self._newest_first = None

    # -- the API -------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if (request.header("authorization") or "").lower() != f"bearer {self.token}":
            return self.json(
                {
                    "code": "AUTHENTICATION_ERROR",
                    "description": "Authentication credentials not found on the Request Headers",
                },
                status=403,
            )
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"code": "VALIDATION_ERROR" if status == 400 else "SERVER_ERROR", "description": message}

    @route("GET", rf"^/forms/{FORM}$")
    def form(self, request: FakeRequest) -> FakeResponse:
        fields = [
            {"id": i, "ref": ref, "type": kind, "title": ref, "properties": _properties(kind)}
            for i, kind, ref in FIELDS
        ]
        return self.json({"id": FORM, "title": "Customer feedback", "fields": fields})

    @route("GET", r"^/forms/(?P<form>[^/]+)/responses$")
    def list_responses(self, request: FakeRequest) -> FakeResponse:
        if request.params["form"] != FORM:
            return self.json({"code": "FORM_NOT_FOUND", "description": "Non existing form with uid"}, status=404)
        q = request.query
        try:
            size = int(q.get("page_size", "25"))
            if not 1 <= size <= 1000:
                raise ValueError("page_size must be between 1 and 1000")
            if ("before" in q or "after" in q) and "sort" in q:
                raise ValueError("before/after cannot be used together with sort")
            since = _parse_time(q["since"]) if q.get("since") else None
            until = _parse_time(q["until"]) if q.get("until") else None
        except ValueError as exc:
            return self.json(self.error_body(400, str(exc)), status=400)
        rows = self._sorted()
        # Every submitted_at is whole UTC seconds written by _iso, so its text sorts as its time.
        if since is not None:
            first = _iso(since + dt.timedelta(microseconds=(1_000_000 - since.microsecond) % 1_000_000))
            rows = [r for r in rows if r["submitted_at"] >= first]
        if until is not None:
            last = _iso(until)
            rows = [r for r in rows if r["submitted_at"] <= last]
        if q.get("before"):
            mark = self._position(q["before"])
            rows = [r for r in rows if _order(r) < mark]
        if q.get("after"):
            mark = self._position(q["after"])
            rows = [r for r in rows if _order(r) > mark][::-1]  # processing order, oldest first
        items = rows[:size]
        return self.json({"total_items": len(rows), "page_count": -(-len(rows) // size), "items": items})

    def _sorted(self) -> list[dict[str, Any]]:
        """The responses newest first, sorted once per change (the demo's walk asks for thousands)."""
        with self.data_lock:
            if self._newest_first is None:
                self._newest_first = sorted(self.responses.values(), key=_order, reverse=True)
            return self._newest_first

    def _position(self, token: str) -> tuple[str, str]:
        # A token of a deleted response still marks its place: its submission time is in the token's record.
        row = self.responses.get(token) or self.deleted.get(token)
        if row is None:
            raise ValueError(f"unknown token {token!r}")
        return _order(row)


def _order(row: dict[str, Any]) -> tuple[str, str]:
    return row["submitted_at"], row["token"]


#: The form's field (id, type, ref) for each kind of answer :mod:`kpihub_typeform.survey` gives.
_FIELD_OF = dict(zip(("nps", "csat", "nki", "feedback", "channel"), FIELDS, strict=True))


def _answer(answer: survey.Answer) -> dict[str, Any]:
    """An answer in Typeform's JSON: numbers for the scales, ``text`` and ``choice`` for the others."""
    field_id, kind, ref = _FIELD_OF[answer.kind]
    field = {"id": field_id, "type": kind, "ref": ref}
    if kind == "long_text":
        return {"field": field, "type": "text", "text": answer.value}
    if kind == "multiple_choice":
        label = str(answer.value)
        return {"field": field, "type": "choice", "choice": {"id": label[:4], "label": label}}
    return {"field": field, "type": "number", "number": answer.value}


def _properties(kind: str) -> dict[str, Any]:
    if kind == "rating":
        return {"steps": 5, "shape": "star"}
    if kind == "opinion_scale":
        return {"steps": 10, "start_at_one": True}
    return {}


#: ``kpihub demo``'s targets for the quarter it scores: the baseline is what :func:`demo_spec`'s fake
#: (seed 7) gives in 2026-Q1, through the KPI engine in Oslo time (tests/test_demo.py checks it).
DEMO_TARGETS: list[dict[str, Any]] = [
    {"kpi": "nps", "period": "2026-Q2", "baseline": 28, "target": 31},
    {"kpi": "csat", "period": "2026-Q2", "baseline": 81.2, "target": 82},  # percent: 81.2 for 81.2 %
    {"kpi": "nki", "period": "2026-Q2", "baseline": 75.1, "target": 75.5},
]


def demo_spec(*, seed: int = 7, scale: int = 1) -> DemoSpec:
    """``kpihub demo``: the demo business's customer-feedback form, ~120 responses a month × ``scale``."""
    b = DEMO_BUSINESS
    server = FakeTypeform(seed=seed, start=b.start, end=b.end, per_month=120 * scale, zone=b.time_zone)
    settings = {
        "token": server.token,
        "form_id": FORM,
        # The fake has no limit: at Typeform's 2 a second, --scale 50 (108 pages) would wait a minute.
        "account_requests_per_second": 1000,
    }
    return DemoSpec(server=server, settings=settings, targets=[dict(t) for t in DEMO_TARGETS])


if __name__ == "__main__":
    fake = FakeTypeform(seed=1)
    print(f"token: {fake.token}  form: {FORM}", flush=True)
    fake.serve_forever()
