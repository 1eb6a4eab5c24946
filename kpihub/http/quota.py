"""A per-source request budget that spends a platform's documented limits fully, never storms.

One :class:`RequestBudget` is shared by every stream and account of a configured source.
Each :class:`Limit` is a rolling window (HubSpot's 10-second burst, its search API's
per-second limit, Meta's hourly business-use-case window, GA4's tokens per hour); a request
waits before it is sent until every window it counts in has room, so the platform never
has to answer 429. A window counts a request from the moment it is sent until its
response has arrived plus the window's length, which is never less than the server's own
count (the server saw it arrive in between).

A source's ``observe`` hook reads the platform's usage headers or body into
:class:`Observation` s: a limit learnt from the headers (``X-HubSpot-RateLimit-Max``), the
remaining room the platform reports (less than we counted: someone else spends the same
budget, and the difference is booked as theirs), the share of a hidden limit it says is
spent (Meta's usage percentages: the limit is learnt from them), a refusal that says the
window is full (Google Ads' ``RESOURCE_TEMPORARILY_EXHAUSTED``: what the window holds is its
limit), what a request cost (GA4 tokens), a wait the platform asks for (Meta's regain time,
Google's ``retryDelay``), or a :class:`Quota` that will not come back within the run (a daily
cap). A wait longer than ``max_wait`` is such a quota too.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["Limit", "Observation", "Quota", "QuotaWait", "RequestBudget", "SimulatedClock"]

#: Platforms report usage shares in whole percent: the true share is below the reported one plus this.
SHARE_RESOLUTION = 0.01
#: A window whose limit is known only as a share holds at the limit learnt from it once the
#: platform reports this much spent (below it, a first estimate is too rough to hold on).
SHARE_HOLD = 0.9
#: A window size learnt from a refusal holds this many window lengths, then the next refusal says it
#: again (platforms that meter with a token bucket vary its size with their load).
RELEARN_WINDOWS = 60


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` (requests, or tokens) per rolling ``seconds``, for matching requests.

    :param path: regex searched in the request path (``None``: every request); its first
        group, if it has one, keys a window of its own (one per ad account or property).
    :param limit: ``None`` until an observation says it (from the platform's headers).
    """

    name: str
    limit: float | None
    seconds: float
    path: str | None = None
    method: str | None = None
    #: What the platform calls it, for messages ("GA4 tokens per day of property").
    title: str = ""

    def key(self, method: str, path: str) -> str | None:
        """The window key of a request this limit applies to, else ``None``."""
        if self.method is not None and self.method.upper() != method.upper():
            return None
        if self.path is None:
            return ""
        m = re.search(self.path, path)
        if m is None:
            return None
        return (m.group(1) or "") if m.groups() else ""


@dataclass(frozen=True)
class Quota:
    """A quota that will not come back within the run: why, and when it does."""

    reason: str
    resets_at: dt.datetime | None = None
    resets: str = ""

    def when(self) -> str:
        """When the quota comes back, for the message: ``resets``, ``resets at <UTC time>``, or unknown."""
        if self.resets:
            return self.resets
        if self.resets_at is not None:
            return f"resets at {self.resets_at.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
        return "reset time unknown"


class QuotaWait(Exception):
    """Raised by :meth:`RequestBudget.acquire` when the request cannot be sent within the run."""

    def __init__(self, quota: Quota) -> None:
        super().__init__(quota.reason)
        self.quota = quota


@dataclass(frozen=True)
class Observation:
    """What one response says about one limit (see the module docstring).

    :param share: the part of the window's limit the platform reports spent (0.5 = half), its
        own requests and everyone else's; the limit, in requests, is learnt from it.
    :param refused: the platform refused this request and counted nothing for it.
    :param full: the platform refused it because the window is full: what it holds is the limit.
    :param needs: the room the next such request must find free, when it is more than it will cost
        (Shopify admits a query only with its requested cost free, then refunds the unused part:
        ``cost`` books what it spent, ``needs`` what the next one asks for).
    """

    name: str
    key: str = ""
    remaining: float | None = None
    limit: float | None = None
    seconds: float | None = None
    cost: float | None = None
    wait: float | None = None
    quota: Quota | None = None
    share: float | None = None
    refused: bool = False
    full: bool = False
    needs: float | None = None


@dataclass
class _Window:
    limit: float | None
    seconds: float
    label: str = ""  # the limit's name and key, for messages
    events: deque[tuple[float, float]] = field(default_factory=deque)
    in_flight: float = 0.0
    blocked_until: float = 0.0
    quota: Quota | None = None
    cost: float = 1.0  # the next request's expected cost: the last one observed
    needs: float = 0.0  # the most room a request was observed to need free (see Observation.needs)
    reported: bool = False  # the platform reports this window's room (its word beats a guess)
    pruned: float = 0.0  # cost aged out so far (a response reports the window as it was when sent)
    share_floor: float = 0.0  # the least the limit can be, from the shares reported so far
    refusal_read: bool = False  # a refusal's observation named this window (rate_limited leaves the rest)
    declared: float | None = None  # the limit the source declared (a learnt one goes back to it)
    relearn_at: float = math.inf  # when a size learnt from a refusal is dropped

    @property
    def admit(self) -> float:
        """The room the next request is admitted with (and held by while in flight)."""
        return max(self.cost, self.needs)

    def prune(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - self.seconds:
            self.pruned += self.events.popleft()[1]

    def used(self, now: float) -> float:
        self.prune(now)
        return sum(c for _, c in self.events) + self.in_flight

    def wait(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` fits (``inf``: only requests in flight hold the room)."""
        if now >= self.relearn_at:
            self.limit, self.relearn_at = self.declared, math.inf
        wait = max(0.0, self.blocked_until - now)
        if self.limit is None:
            return wait
        need = self.used(now) + cost - self.limit
        if need <= 0:
            return wait
        freed = 0.0
        for t, c in self.events:  # oldest first: the room each one gives back as it ages out
            freed += c
            if freed >= need - 1e-9:
                return max(wait, t + self.seconds - now)
        return float("inf")


@dataclass
class _Ticket:
    windows: list[tuple[_Window, float]]
    pruned: dict[int, float] = field(default_factory=dict)  # id(window) -> its pruned when sent
    simulated: int | None = None  # the request's id on a SimulatedClock


class RequestBudget:
    """The rolling windows of one source, shared by all its streams (thread-safe).

    :param observe: ``response -> observations``, the platform's usage headers and bodies.
    :param max_wait: the longest wait (s) the run accepts; a longer one is a :class:`Quota`.
    """

    def __init__(
        self,
        limits: Sequence[Limit],
        *,
        observe: Callable[[httpx.Response], Iterable[Observation]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 300.0,
    ) -> None:
        self.limits = list(limits)
        self.observe = observe
        self.clock = clock
        self._sleep = sleep
        self.max_wait = max_wait
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        #: Counters for tests and the summary: requests sent, seconds waited.
        self.sent = 0
        self.waited = 0.0
        self._skipped = 0.0  # waits a sleep returned from early (a test's recording sleep): passed

    def now(self) -> float:
        """The budget's time: the clock's, plus what sleeps that returned early were asked to wait."""
        return self.clock() + self._skipped

    # -- windows ---------------------------------------------------------------

    def window(self, name: str, key: str = "") -> _Window:
        """The window of limit ``name`` for ``key`` (created on first use)."""
        found = self._windows.get((name, key))
        if found is None:
            spec = next((s for s in self.limits if s.name == name), None)
            limit, seconds = (spec.limit, spec.seconds) if spec else (None, 1.0)
            label = f"{spec.title or spec.name} {key}".strip() if spec else f"{name} {key}".strip()
            found = self._windows[(name, key)] = _Window(limit, seconds, label=label, declared=limit)
        return found

    def _matching(self, method: str, path: str) -> list[_Window]:
        out = []
        for spec in self.limits:
            key = spec.key(method, path)
            if key is not None:
                out.append(self.window(spec.name, key))
        return out

    # -- requests --------------------------------------------------------------

    def acquire(self, method: str, url: str) -> _Ticket:
        """Wait until the request fits every window it counts in; book it as in flight.

        Raises :class:`QuotaWait` when a window holds a quota that does not return within the
        run, or the wait would exceed ``max_wait``.
        """
        path = httpx.URL(url).path
        with self._lock:
            windows = self._matching(method, path)
            while True:
                now = self.now()
                for w in windows:
                    if w.quota is not None:
                        raise QuotaWait(w.quota)
                wait = max((w.wait(now, w.admit) for w in windows), default=0.0)
                if wait <= 0:
                    booked = [(w, w.admit) for w in windows]
                    for w, cost in booked:
                        w.in_flight += cost
                    self.sent += 1
                    started = getattr(self.clock, "request_started", None)
                    return _Ticket(booked, {id(w): w.pruned for w in windows}, started() if started else None)
                if wait == float("inf"):  # room comes back when a request in flight completes
                    self._released.wait(timeout=1.0)
                    continue
                if wait > self.max_wait:
                    full = max(windows, key=lambda w: w.wait(now, w.admit))
                    raise QuotaWait(
                        Quota(
                            f"the rate budget's {full.label} window has no room for {wait:.0f}s, "
                            "more than max_retry_after",
                            resets_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=wait),
                        )
                    )
                self._lock.release()
                try:
                    self._sleep(wait)
                finally:
                    self._lock.acquire()
                self.waited += wait
                # A sleep that returned before the clock moved (a recording sleep on a real clock)
                # stood for the wait: count it as passed instead of asking again until it has.
                self._skipped += max(0.0, wait - (self.now() - now))

    def release(self, ticket: _Ticket, response: httpx.Response | None) -> None:
        """The request completed (``response``, or ``None`` if none arrived): book it, read the usage."""
        observations = list(self.observe(response)) if (self.observe and response is not None) else []
        with self._lock:
            now = self.now()
            for w, cost in ticket.windows:
                w.in_flight = max(0.0, w.in_flight - cost)
                w.events.append((now, cost))
            for o in observations:
                self._apply(o, now, ticket)
            self._released.notify_all()
        if ticket.simulated is not None:
            self.clock.request_ended(ticket.simulated)  # type: ignore[attr-defined]

    def _apply(self, o: Observation, now: float, ticket: _Ticket) -> None:
        w = self.window(o.name, o.key)
        own = any(w is counted for counted, _ in ticket.windows)  # its last event is this request's
        if o.refused and own and w.events:
            w.events.pop()  # the platform counted nothing for it
        w.refusal_read = w.refusal_read or o.full or (o.refused and o.wait is not None)
        if o.seconds is not None:
            w.seconds = o.seconds
        if o.limit is not None:
            w.limit = o.limit
        if o.cost is not None and own and w.events:
            t, _ = w.events[-1]
            w.events[-1] = (t, o.cost)  # book what it really cost
            w.cost = max(1.0, o.cost)
        if o.needs is not None:
            # The most any of its requests asked for: streams' queries differ, and one that asks for
            # more than the last one observed would be refused.
            w.needs = max(w.needs, o.needs)
        if o.remaining is not None:
            w.reported = True
        if o.remaining is not None and w.limit is None:  # the platform reports room, not its limit
            w.limit = o.remaining + w.used(now)
        elif o.remaining is not None and w.limit is not None:
            ours = w.limit - w.used(now)
            # The platform counted it when the request arrived: what aged out since was still in.
            aged = w.pruned - ticket.pruned.get(id(w), w.pruned)
            if o.remaining + aged < ours:  # spent by someone else (another app, another run): theirs
                w.events.append((now, ours - o.remaining - aged))
        if o.share is not None:
            self._learn_from_share(w, o.share, now, hold=not o.refused)
        learned = w.used(now) if o.full else 0.0
        if learned >= 1:  # (holding none of ours, the refusal says nothing of the size)
            # What the platform admitted is what we hold (requests in flight included: the ones of a
            # burst it refused come back refused too, and the last of them says the least). It holds
            # for RELEARN_WINDOWS windows: a size learnt under load is not kept for the whole run.
            w.limit = learned if w.limit is None or now >= w.relearn_at else min(w.limit, learned)
            w.relearn_at = now + RELEARN_WINDOWS * w.seconds
            w.reported = True
        if o.wait is not None:
            w.blocked_until = max(w.blocked_until, now + o.wait)
        if o.quota is not None:
            w.quota = o.quota

    @staticmethod
    def _learn_from_share(w: _Window, share: float, now: float, *, hold: bool) -> None:
        """The platform says ``share`` of the window's limit is spent (ours and everyone else's).

        Our requests it has seen are at most ``share`` of the limit, so the limit is at least ours
        / share: never more than the platform allows, and as ours fill the window, exactly it.
        Before the platform reports ``SHARE_HOLD`` spent that bound is loose, so nothing holds yet;
        nor does a refusal's share start holding (its wait says when the window has room again).
        """
        w.reported = True
        w.prune(now)
        ours = sum(c for _, c in w.events)  # completed: the ones still in flight were not counted yet
        if ours > 0:
            # Limits count whole requests: the least whole number the reported share allows.
            w.share_floor = max(w.share_floor, math.ceil(ours / (share + SHARE_RESOLUTION) - 1e-9))
        if (hold and share >= SHARE_HOLD) or w.limit is not None:
            w.limit = max(1.0, w.share_floor)

    def rate_limited(self, method: str, url: str, delay: float | None) -> bool:
        """A 429 or throttle answered the request: block the matching windows for ``delay``, or
        (no delay given) count the window the platform does not report as full until its requests
        age out. A window the response's observations blocked already (the platform named it: a
        full, a regain time) is the one that refused: the others are left alone. False
        when nothing is known that says how long (the caller backs off)."""
        path = httpx.URL(url).path
        known = False
        with self._lock:
            now = self.now()
            windows = self._matching(method, path)
            named = [w for w in windows if w.refusal_read]
            if named:  # the refusal's own observations already said which window, and how long
                for w in named:
                    w.refusal_read = False
                return True
            for w in windows:
                if delay is not None:
                    w.blocked_until = max(w.blocked_until, now + delay)
                    known = True
                elif w.reported:  # the headers of this very response already said how full it is
                    known = known or w.wait(now, w.admit) > 0
                elif w.limit is not None:
                    room = w.limit - w.used(now)
                    if room > 0:
                        w.events.append((now, room))
                    known = True
        return known

    def used(self, name: str, key: str = "") -> float:
        """What the window holds now (requests or tokens), for tests and ``kpihub plan``."""
        with self._lock:
            return self.window(name, key).used(self.now())


class SimulatedClock:
    """A clock that moves only when someone sleeps on it: a budget's behaviour over hours, in no time.

    ``clock()`` is the time; ``clock.sleep(s)`` moves it to ``s`` after the time this thread last
    read (``slept`` keeps every sleep). So threads that read the clock together and sleep for the
    same wait wake together, as they would in real time. A request takes no simulated time: a
    sleep first lets the requests a budget on this clock has in flight complete (else one thread's
    hour-long wait would land in the middle of another's request, and its response an hour late).
    For tests, and for estimating how long a budget makes a sync take.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start
        self.slept: list[float] = []
        self._lock = threading.Condition()
        self._seen = threading.local()
        self._in_flight: set[int] = set()
        self._started = 0

    def __call__(self) -> float:
        self._seen.t = self.t
        return self.t

    def sleep(self, seconds: float) -> None:
        """Move the clock ``seconds`` past the time this thread last read (after in-flight requests end)."""
        with self._lock:
            self.slept.append(seconds)
            sent = set(self._in_flight)  # bounded in real time: a request that hangs holds no one for long
            self._lock.wait_for(lambda: not (sent & self._in_flight), timeout=10.0)
            since = getattr(self._seen, "t", self.t)
            self.t = max(self.t, since + max(0.0, seconds))
            self._seen.t = self.t

    def request_started(self) -> int:
        """A budget sent a request (see the class docstring); the id to pass to :meth:`request_ended`."""
        with self._lock:
            self._started += 1
            self._in_flight.add(self._started)
            return self._started

    def request_ended(self, request: int) -> None:
        """A request from :meth:`request_started` got its answer: sleepers waiting on it may go on."""
        with self._lock:
            self._in_flight.discard(request)
            self._lock.notify_all()
