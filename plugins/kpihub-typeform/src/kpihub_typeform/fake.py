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

``python -m kpihub_typeform.fake`` serves it in the foreground and prints its URL and token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from kpihub.testing import FakeAPIServer, FakeRequest, FakeResponse, Paging, route

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
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> dt.datetime:
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class FakeTypeform(FakeAPIServer):
    """Seeded completed responses to one feedback form; ``respond`` and ``delete`` change them."""

    paging = (Paging(path=rf"^/forms/{FORM}/responses$", records="items", param="before", last_record="token"),)

    def __init__(self, *, seed: int = 0, responses: int = 120, token: str = "tfp_fake_token", **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.token = token
        self.clock = EPOCH
        self.responses: dict[str, dict[str, Any]] = {}
        #: Deleted responses: never served, but a token a client holds still marks its place.
        self.deleted: dict[str, dict[str, Any]] = {}
        for _ in range(responses):
            self.respond()

    # -- the data ------------------------------------------------------------------------------

    def respond(self, count: int = 1) -> None:
        """``count`` new completed responses, submitted now (each a few minutes after the last)."""
        with self.data_lock:
            for _ in range(count):
                self._add()

    def _add(self) -> None:
        self.clock += dt.timedelta(seconds=self.rng.choice((0, 30, 240, 3_600)))  # ties happen
        token = hashlib.md5(f"{self.seed}-{len(self.responses) + len(self.deleted)}".encode()).hexdigest()
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
        self.responses[token] = {
            "landing_id": token,
            "token": token,
            "response_id": token,
            "response_type": "completed",
            "landed_at": _iso(landed),
            "submitted_at": _iso(self.clock),
            "metadata": {"user_agent": "Mozilla/5.0", "platform": "other", "referer": f"https://acme.typeform.com/to/{FORM}",
                         "network_id": hashlib.md5(token.encode()).hexdigest()[:10], "browser": "default"},
            "hidden": {},
            "calculated": {"score": 0},
            "answers": answers,
        }

    def delete(self, count: int = 1) -> None:
        """Delete ``count`` responses: gone from every list, no tombstone."""
        with self.data_lock:
            for token in self.rng.sample(list(self.responses), min(count, len(self.responses))):
                self.deleted[token] = self.responses.pop(token)

    # -- the API -------------------------------------------------------------------------------

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if (request.header("authorization") or "").lower() != f"bearer {self.token}":
            return self.json(
                {"code": "AUTHENTICATION_ERROR", "description": "Authentication credentials not found on the Request Headers"},
                status=403,
            )
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"code": "VALIDATION_ERROR" if status == 400 else "SERVER_ERROR", "description": message}

    @route("GET", rf"^/forms/{FORM}$")
    def form(self, request: FakeRequest) -> FakeResponse:
        fields = [
            {"id": i, "ref": ref, "type": kind, "title": ref, "properties": _properties(kind)} for i, kind, ref in FIELDS
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
        rows = sorted(self.responses.values(), key=_order, reverse=True)  # newest first
        if since is not None:
            rows = [r for r in rows if _parse_time(r["submitted_at"]) >= since]
        if until is not None:
            rows = [r for r in rows if _parse_time(r["submitted_at"]) <= until]
        if q.get("before"):
            mark = self._position(q["before"])
            rows = [r for r in rows if _order(r) < mark]
        if q.get("after"):
            mark = self._position(q["after"])
            rows = [r for r in rows if _order(r) > mark][::-1]  # processing order, oldest first
        items = rows[:size]
        return self.json({"total_items": len(rows), "page_count": -(-len(rows) // size), "items": items})

    def _position(self, token: str) -> tuple[str, str]:
        # A token of a deleted response still marks its place: its submission time is in the token's record.
        row = self.responses.get(token) or self.deleted.get(token)
        if row is None:
            raise ValueError(f"unknown token {token!r}")
        return _order(row)


def _order(row: dict[str, Any]) -> tuple[str, str]:
    return row["submitted_at"], row["token"]


def _properties(kind: str) -> dict[str, Any]:
    if kind == "rating":
        return {"steps": 5, "shape": "star"}
    if kind == "opinion_scale":
        return {"steps": 10, "start_at_one": True}
    return {}


if __name__ == "__main__":
    fake = FakeTypeform(seed=1)
    print(f"token: {fake.token}  form: {FORM}", flush=True)
    fake.serve_forever()
