"""The Chrome UX Report connector: Core Web Vitals of configured origins and URLs, per form factor.

One stream, ``vitals``: for every target (origin or URL × form factor) the daily record
(``records:queryRecord``: the latest 28-day window) and the weekly history
(``records:queryHistoryRecord``: up to 40 weekly 28-day windows), one row per window, keyed by the
window's last day. A Python source, not a declarative file: it sends one POST per target with the
target in a JSON body, reads the history's parallel arrays (one value per collection period), and
takes a 404 as "CrUX has no data for this target" rather than an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, SecretStr, field_validator, model_validator

from kpihub import (
    CheckResult,
    DemoSpec,
    Estimate,
    HTTPError,
    MalformedResponseError,
    PlanContext,
    Requests,
    Source,
    SourceError,
    SourceSettings,
    Stream,
    StreamContext,
    canonical_table,
    decode_cursor,
    interleave,
)
from kpihub.http import ApiKeyAuth, Limit, Requester
from kpihub_crux.wire import METRICS, WireError, history_rows, record_rows

FormFactor = Literal["ALL", "PHONE", "DESKTOP", "TABLET"]
RECORD = "/v1/records:queryRecord"
HISTORY = "/v1/records:queryHistoryRecord"
#: "150 queries per minute per Google Cloud project for either API" (developer.chrome.com/docs/crux/history-api,
#: Rate limits), shared by the daily and the history API.
QUERIES_PER_MINUTE = 150
#: collectionPeriodCount: "between 1 and 40. The default is 25." (the same page).
MAX_WEEKS, DEFAULT_WEEKS = 40, 25
#: The message of CrUX's 404 for a target it has no data for (treosh/crux-api's recorded response).
NO_DATA = "chrome ux report data not found"


class CruxSettings(SourceSettings):
    """``[sources.crux]``: an API key (Chrome UX Report API enabled), the targets, the devices."""

    base_url: str = "https://chromeuxreport.googleapis.com"
    #: Sent as the ``key`` query parameter; redacted from every log, error and file.
    api_key: SecretStr
    #: Sites: every page of each aggregated (``https://www.example.com``: scheme and host, no path).
    origins: list[str] = Field(default_factory=list)
    #: Single pages (``https://www.example.com/pricing``).
    urls: list[str] = Field(default_factory=list)
    #: ``ALL`` (every device together: CrUX's record without a form factor) or devices, not both.
    form_factors: list[FormFactor] = Field(default_factory=lambda: list[FormFactor](["ALL"]))
    #: Weekly windows of the History API to read on a first sync (0: the daily record only).
    history_weeks: int = Field(default=DEFAULT_WEEKS, ge=0, le=MAX_WEEKS)
    queries_per_minute: float = Field(default=QUERIES_PER_MINUTE, gt=0)
    max_concurrency: int = Field(default=4, ge=1, le=16)

    @field_validator("origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        out = []
        for origin in origins:
            bare = origin.strip().rstrip("/")
            scheme, _, rest = bare.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest or "?" in rest:
                raise ValueError(f"origin {origin!r} is not a scheme and host (https://www.example.com)")
            out.append(bare)
        return out

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        bad = [u for u in urls if not u.strip().startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"url {bad[0]!r} is not an http(s) URL")
        return [u.strip() for u in urls]

    @model_validator(mode="after")
    def _targets(self) -> CruxSettings:
        if not self.origins and not self.urls:
            raise ValueError("give at least one of origins or urls")
        if "ALL" in self.form_factors and len(self.form_factors) > 1:
            # ALL aggregates the devices: with them, a pass rate would count every page load twice.
            raise ValueError("form_factors: ALL is every device together; list ALL or devices, not both")
        if len(set(self.form_factors)) != len(self.form_factors) or not self.form_factors:
            raise ValueError("form_factors: list each of ALL, PHONE, DESKTOP, TABLET once")
        return self


def targets(s: CruxSettings) -> list[tuple[str, str, str]]:
    """``(target_type, target, form_factor)`` of every query a sync sends (twice: daily and history)."""
    found = [("origin", o) for o in s.origins] + [("url", u) for u in s.urls]
    return [(kind, target, ff) for kind, target in found for ff in s.form_factors]


def body(kind: str, target: str, form_factor: str, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {kind: target, "metrics": list(METRICS), **more}
    if form_factor != "ALL":
        out["formFactor"] = form_factor
    return out


def vitals_schema() -> pa.Schema:
    """The raw table: ``page_experience``'s columns (without the engine's) and the endpoint of each window."""
    canonical = canonical_table("page_experience").schema
    fields = [
        pa.field(f.name, f.type, nullable=f.nullable) for f in canonical if f.name not in ("source_id", "_loaded_at")
    ]
    return pa.schema([*fields, pa.field("endpoint", pa.string())])


class Vitals(Stream[CruxSettings]):
    """Every target's daily window and weekly history; incremental on the windows' last day."""

    def read(self, ctx: StreamContext[CruxSettings], state: Mapping[str, Any] | None) -> Iterator[pa.RecordBatch]:
        s = ctx.settings
        cursor: dt.date | None = decode_cursor(state)
        daily = list(interleave([self._daily(ctx, t) for t in targets(s)], max_workers=s.max_concurrency))
        latest = max((r["period_end"] for rows in daily for r in rows), default=None)
        weeks = _weeks(s, cursor, latest)
        history: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        if weeks:
            jobs = [self._history(ctx, t, weeks, cursor) for t in targets(s)]
            for target, rows in interleave(jobs, max_workers=s.max_concurrency):
                history[target] = rows
        for rows in daily:
            for row in rows:
                target = (row["target_type"], row["target"], row["form_factor"])
                # The daily window that is also a week of the history is one window: the history's row,
                # so a re-read of that week never flips the row between the two answers.
                if all(h["period_end"] != row["period_end"] for h in history.get(target, ())):
                    history.setdefault(target, []).append(row)
        out = [r for rows in history.values() for r in rows if s.start_date is None or r["period_end"] >= s.start_date]
        if out:
            yield pa.RecordBatch.from_pylist(out, schema=self.schema)

    def _daily(self, ctx: StreamContext[CruxSettings], target: tuple[str, str, str]) -> Iterator[list[dict[str, Any]]]:
        answer = _query(ctx, RECORD, target, body(*target))
        yield [] if answer is None else _rows(ctx, target, lambda: record_rows(answer, target[2]))

    def _history(
        self, ctx: StreamContext[CruxSettings], target: tuple[str, str, str], weeks: int, cursor: dt.date | None
    ) -> Iterator[tuple[tuple[str, str, str], list[dict[str, Any]]]]:
        answer = _query(ctx, HISTORY, target, body(*target, collectionPeriodCount=weeks))
        if answer is None:
            yield target, []
            return
        rows = _rows(ctx, target, lambda: history_rows(answer, target[2]))
        empty = sum(all(r[c] is None for c in r if c.startswith("p75_")) for r in rows)
        if empty:
            ctx.note(f"weeks CrUX has no data for (stored with null vitals, never 0): {empty}")
        yield target, rows

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[CruxSettings]) -> pa.RecordBatch:
        return batch.drop_columns(["endpoint"])

    def estimate(self, plan: PlanContext[CruxSettings]) -> Estimate:
        """Two queries per target (daily and history), against the project's 150 queries a minute."""
        s = plan.settings
        n = len(targets(s))
        mode, since = plan.read_from(self)
        requests = (Requests(n, RECORD, "POST"), *((Requests(n, HISTORY, "POST"),) if s.history_weeks else ()))
        basis = f"{n} targets × (daily record{' + history' if s.history_weeks else ''})"
        return Estimate(mode, since, None, requests, None, True, basis)


def _weeks(s: CruxSettings, cursor: dt.date | None, latest: dt.date | None) -> int:
    """collectionPeriodCount for this sync: the weeks since the cursor (and one more, re-read: the same
    values, merged on the key), else since ``start_date``, else ``history_weeks``."""
    if s.history_weeks == 0:
        return 0
    since = cursor or s.start_date
    if since is None or latest is None:
        return s.history_weeks
    return max(1, min(MAX_WEEKS, (latest - since).days // 7 + 2))


def _query(ctx: StreamContext[CruxSettings], path: str, target: tuple[str, str, str], payload: dict[str, Any]) -> Any:
    """The answer for one target, or None when CrUX has no data for it (recorded as a note)."""
    kind, name, ff = target
    try:
        return ctx.http.json("POST", path, stream=ctx.stream, json=payload)
    except HTTPError as exc:
        if exc.status_code == 404 and NO_DATA in str(exc).lower():
            api = "daily record" if path == RECORD else "history"
            ctx.note(f"{kind} {name} ({ff}): CrUX has no data ({api}: too few Chrome users, or not public)")
            return None
        if exc.status_code == 400:
            raise SourceError(
                f"{ctx.source_id}/{ctx.stream}: CrUX refused the query for {kind} {name!r} ({ff}): "
                f"{str(exc).rsplit('HTTP 400: ', 1)[-1]}",
                source=ctx.source_id,
                stream=ctx.stream,
            ) from None
        raise


def _rows(ctx: StreamContext[CruxSettings], target: tuple[str, str, str], parse: Any) -> list[dict[str, Any]]:
    try:
        rows: list[dict[str, Any]] = parse()
    except WireError as exc:
        kind, name, ff = target
        raise MalformedResponseError(
            f"{ctx.source_id}/{ctx.stream}: {kind} {name!r} ({ff}): {exc}", source=ctx.source_id, stream=ctx.stream
        ) from None
    return rows


class CruxSource(Source[CruxSettings]):
    """The Chrome UX Report API (real Chrome users' Core Web Vitals, 28-day windows)."""

    name = "crux"
    title = "Chrome UX Report (Core Web Vitals)"
    settings_class = CruxSettings

    def streams(self, settings: CruxSettings) -> list[Stream[CruxSettings]]:
        return [
            Vitals(
                "vitals",
                vitals_schema(),
                primary_key=("target_type", "target", "form_factor", "period_end"),
                cursor_field="period_end",
                canonical_table="page_experience",
                on_new_field="ignore",
            )
        ]

    def auth(self, settings: CruxSettings) -> ApiKeyAuth:
        return ApiKeyAuth("key", settings.api_key, where="query")

    def rate_limits(self, settings: CruxSettings) -> list[Limit]:
        return [
            Limit("queries", settings.queries_per_minute, 60.0, path=r"/v1/records:", title="CrUX queries per minute")
        ]

    def check(self, settings: CruxSettings, http: Requester) -> CheckResult:
        kind, target, ff = targets(settings)[0]
        try:
            http.json("POST", RECORD, stream="check", json=body(kind, target, ff))
        except HTTPError as exc:
            if exc.status_code == 404 and NO_DATA in str(exc).lower():
                return CheckResult(True, f"connected to the CrUX API (no data yet for {kind} {target})")
            return CheckResult(False, str(exc).splitlines()[0])
        n = len(targets(settings))
        return CheckResult(True, f"connected to the CrUX API ({n} target{'s' if n != 1 else ''})")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec:
        from kpihub_crux.fake import DEMO_ORIGIN, DEMO_TARGETS, demo_server

        server = demo_server(seed)
        settings = {
            "api_key": server.api_key,
            "origins": [DEMO_ORIGIN],
            "urls": [DEMO_ORIGIN + "/checkout"],
            "form_factors": ["PHONE", "DESKTOP"],
            "history_weeks": MAX_WEEKS,
        }
        return DemoSpec(server=server, settings=settings, targets=DEMO_TARGETS)
