"""Seeded answers to a customer-feedback form over a date range, for :class:`~kpihub_typeform.fake.FakeTypeform`.

Customers answer after purchases: a few responses a day (more in the outdoor season and around
Christmas, more on Mondays after weekend orders), at lunch and in the evening, in the shop's time
zone (Oslo by default). The NPS moves linearly from ``nps_start`` to ``nps_end`` over the range,
with a small wobble per month. Each month's answers are *dealt*, not drawn one by one: its NPS
answers hold each score as often as the month's distribution says (a systematic sample), so a
quarter's NPS stays within two points of the design whatever the seed; 400 independent draws
would wander ±4 points. CSAT (a 5-step rating) and NKI (an opinion scale 1–10) are dealt the same
way within each NPS group, so a detractor mostly gives low stars: about 82 % top-two-box CSAT at an
NPS of 30."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = ["Answer", "Response", "month_responses", "responses"]

OSLO = ZoneInfo("Europe/Oslo")
#: Responses a month relative to the average: the outdoor season and Christmas shopping.
SEASON = (0.86, 0.84, 0.92, 1.0, 1.08, 1.16, 1.12, 1.04, 0.98, 0.9, 0.96, 1.14)
#: Monday first: weekend orders are answered at the start of the week.
WEEKDAY = (1.2, 1.08, 1.0, 0.97, 0.9, 0.85, 1.0)
#: Local hour of the submission: lunch break and evening on the sofa.
HOURS = (2, 1, 0, 0, 0, 1, 3, 8, 12, 12, 11, 12, 16, 14, 11, 10, 11, 13, 17, 21, 22, 18, 11, 5)
#: NPS scores within each group (detractors 0–6, passives 7–8, promoters 9–10).
DETRACTOR = (3, 1, 2, 4, 6, 12, 14)
PASSIVE = (45, 55)
PROMOTER = (42, 58)
#: Passives' share of NPS answers; promoters and detractors split the rest as the NPS says.
PASSIVES = 0.30
#: CSAT stars 1–5 and NKI 1–10 given by a promoter, a passive and a detractor.
CSAT = {"promoter": (0, 1, 3, 36, 60), "passive": (1, 3, 14, 57, 25), "detractor": (8, 14, 30, 36, 12)}
NKI = {
    "promoter": (0, 0, 0, 0, 1, 2, 7, 25, 35, 30),
    "passive": (0, 0, 1, 2, 5, 12, 30, 32, 13, 5),
    "detractor": (3, 4, 8, 12, 18, 20, 17, 11, 5, 2),
}
#: Share of responses that answer each question (the others skip it: the answer is absent).
ANSWERED = {"nps": 0.97, "csat": 0.88, "nki": 0.72, "channel": 0.92}
FEEDBACK = {"promoter": 0.22, "passive": 0.3, "detractor": 0.55}
COMMENTS = {
    "promoter": ("Quick delivery, friendly staff.", "Great jacket, fits perfectly.", "Best outdoor shop in town."),
    "passive": ("Good, but delivery took a week.", "Fine. The app could be easier.", "OK prices."),
    "detractor": ("The parcel arrived late and damaged.", "Nobody answered the phone.", "Return took a month."),
}
CHANNELS = (("Web shop", 62), ("Store", 28), ("Phone", 10))


@dataclass(frozen=True)
class Answer:
    """One answered question: its kind (``nps``, ``csat``, ``nki``, ``feedback``, ``channel``) and value."""

    kind: str
    value: int | str


@dataclass(frozen=True)
class Response:
    """A completed response: when the customer opened and submitted the form, and what they answered."""

    landed_at: dt.datetime
    submitted_at: dt.datetime
    answers: tuple[Answer, ...]


def responses(
    rng: random.Random,
    start: dt.date,
    end: dt.date,
    *,
    per_month: float,
    nps_start: float,
    nps_end: float,
    zone: dt.tzinfo = OSLO,
) -> Iterator[Response]:
    """The responses submitted from ``start`` to ``end`` (days in ``zone``, inclusive), oldest first."""
    month, total = start.replace(day=1), max(1, (end - start).days)
    while month <= end:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        first, last = max(month, start), min(following - dt.timedelta(days=1), end)
        middle = first + (last - first) / 2
        nps = nps_start + (nps_end - nps_start) * (middle - start).days / total + rng.gauss(0, 1.0)
        yield from month_responses(rng, first, last, per_month=per_month, nps=nps, zone=zone)
        month = following


def month_responses(
    rng: random.Random, first: dt.date, last: dt.date, *, per_month: float, nps: float, zone: dt.tzinfo = OSLO
) -> list[Response]:
    """One month's responses (days ``first``..``last``), whose NPS answers give ``nps`` to within rounding."""
    times = sorted(t for day in _days(first, last) for t in _submissions(rng, day, per_month, zone))
    n = len(times)
    asked = {kind: [rng.random() < share for _ in range(n)] for kind, share in ANSWERED.items()}
    promoters = (1 - PASSIVES + min(70.0, max(-70.0, nps)) / 100) / 2  # the passives' share bounds the NPS
    weights = [w * (1 - PASSIVES - promoters) / sum(DETRACTOR) for w in DETRACTOR]
    weights += [w * PASSIVES / sum(PASSIVE) for w in PASSIVE] + [w * promoters / sum(PROMOTER) for w in PROMOTER]
    scored = [i for i in range(n) if asked["nps"][i]]
    nps_of = dict(zip(scored, deal(rng, len(scored), weights), strict=True))
    group = [_group(nps_of.get(i)) for i in range(n)]
    csat = _dealt_by_group(rng, group, asked["csat"], CSAT, base=1)
    nki = _dealt_by_group(rng, group, asked["nki"], NKI, base=1)
    channels = deal(rng, n, [w for _, w in CHANNELS])
    out = []
    for i, submitted in enumerate(times):
        answers = [Answer("nps", nps_of[i])] if i in nps_of else []
        answers += [Answer("csat", csat[i])] if i in csat else []
        answers += [Answer("nki", nki[i])] if i in nki else []
        if rng.random() < FEEDBACK[group[i]]:
            answers.append(Answer("feedback", rng.choice(COMMENTS[group[i]])))
        if asked["channel"][i]:
            answers.append(Answer("channel", CHANNELS[channels[i]][0]))
        # Five questions take a minute or two; some leave the tab open.
        landed = submitted - dt.timedelta(seconds=round(min(3_600, rng.lognormvariate(4.6, 0.6))))
        out.append(Response(landed, submitted, tuple(answers)))
    return out


def deal(rng: random.Random, n: int, weights: Sequence[float]) -> list[int]:
    """``n`` category indices, each as often as its weight's share of ``n`` (floor or ceiling), shuffled.

    A systematic sample with a random offset: the counts sum to ``n`` and each is unbiased.
    """
    total, offset, edge, out = sum(weights), rng.random(), 0.0, []
    below = 0
    for k, w in enumerate(weights):
        edge += w / total
        upto = min(n, math.floor(n * edge + offset))
        out += [k] * (upto - below)
        below = upto
    out += [len(weights) - 1] * (n - len(out))
    rng.shuffle(out)
    return out


def _dealt_by_group(
    rng: random.Random, group: list[str], asked: list[bool], table: Mapping[str, Sequence[int]], *, base: int
) -> dict[int, int]:
    """Scores for the responses ``asked``, dealt within each NPS group from that group's row of ``table``."""
    out: dict[int, int] = {}
    for name, weights in table.items():
        members = [i for i, g in enumerate(group) if g == name and asked[i]]
        out.update(zip(members, (base + k for k in deal(rng, len(members), weights)), strict=True))
    return out


def _group(score: int | None) -> str:
    # Who skipped the NPS question answers the others like a passive.
    if score is None or 7 <= score <= 8:
        return "passive"
    return "promoter" if score >= 9 else "detractor"


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _submissions(rng: random.Random, day: dt.date, per_month: float, zone: dt.tzinfo) -> list[dt.datetime]:
    """The UTC submission times of one day in ``zone``."""
    mean = per_month * 12 / 365.25 * SEASON[day.month - 1] * WEEKDAY[day.weekday()] / (sum(WEEKDAY) / 7)
    count = _poisson(rng, mean)
    hours = rng.choices(range(24), weights=HOURS, k=count)
    out = []
    for hour in hours:
        local = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)), zone)
        out.append(local.astimezone(dt.timezone.utc))
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:  # Knuth's product would underflow for large means; the normal is close there
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
