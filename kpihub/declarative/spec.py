"""The TOML file of a declarative source, as pydantic models: every key checked, one-line errors.

A file names the source, its settings, its auth and its streams; each stream names the request
(path, method, params, body), where the records are in the body, how to page, the incremental
cursor and the parameter that carries it, the raw table's fields and the canonical mapping. An
unknown key, a wrong type or a placeholder naming no setting fails loading with
``file: streams.tickets.paginator.type: ...``: the file, the key, what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kpihub.errors import ConfigError

__all__ = ["SourceSpec", "StreamSpec", "read_spec"]

Where = Literal["query", "body"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SettingSpec(_Strict):
    """One setting users give in ``[sources.<id>]`` (or ``KPIHUB_<ID>_<NAME>``)."""

    type: Literal["string", "integer", "number", "boolean", "date", "secret"] = "string"
    #: No default: the setting is required.
    default: Any = None
    description: str = ""


class NoAuth(_Strict):
    type: Literal["none"]


class BearerAuthSpec(_Strict):
    type: Literal["bearer"]
    token: str


class ApiKeyAuthSpec(_Strict):
    type: Literal["api_key"]
    name: str
    value: str
    where: Where | Literal["header"] = Field("header", alias="in")
    prefix: str = ""


class BasicAuthSpec(_Strict):
    type: Literal["basic"]
    username: str
    password: str = ""


class OAuth2RefreshSpec(_Strict):
    type: Literal["oauth2_refresh"]
    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str
    scope: str | None = None


AuthSpec = Annotated[
    NoAuth | BearerAuthSpec | ApiKeyAuthSpec | BasicAuthSpec | OAuth2RefreshSpec, Field(discriminator="type")
]


class NoPaging(_Strict):
    type: Literal["none"]


class CursorPaging(_Strict):
    """A cursor in the body sent back as a parameter (``after_cursor`` → ``cursor``)."""

    type: Literal["cursor"]
    #: Where the next cursor is in the body, or ``last_record``: a field of the page's last record
    #: (Typeform's ``token``, Stripe's ``id``). Exactly one.
    cursor_path: str | None = None
    last_record: str | None = None
    #: Records of a full page (a number or ``{setting}``): a shorter page is the last one.
    full_page: int | str | None = None
    param: str
    where: Where = Field("query", alias="in")
    stop_path: str | None = None
    #: First-request parameters the cursor replaces (Zendesk's ``start_time``).
    drop_params: tuple[str, ...] = ()
    total_path: str | None = None

    @model_validator(mode="after")
    def _one_cursor(self) -> CursorPaging:
        if (self.cursor_path is None) == (self.last_record is None):
            raise ValueError("give cursor_path or last_record, not both or neither")
        return self


class OffsetPaging(_Strict):
    type: Literal["offset"]
    limit: int = Field(gt=0)
    limit_param: str = "limit"
    offset_param: str = "offset"
    where: Where = Field("query", alias="in")
    total_path: str | None = None
    start: int = 0


class PagePaging(_Strict):
    type: Literal["page"]
    size: int = Field(gt=0)
    page_param: str = "page"
    size_param: str | None = "per_page"
    start: int = 1
    where: Where = Field("query", alias="in")
    total_path: str | None = None
    total_pages_path: str | None = None


class LinkHeaderPaging(_Strict):
    type: Literal["link_header"]
    rel: str = "next"
    stop_path: str | None = None


class NextUrlPaging(_Strict):
    """A full URL of the next page in the body (``after_url``, ``paging.next``)."""

    type: Literal["next_url"]
    path: str
    stop_path: str | None = None
    total_path: str | None = None


PagingSpec = Annotated[
    NoPaging | CursorPaging | OffsetPaging | PagePaging | LinkHeaderPaging | NextUrlPaging,
    Field(discriminator="type"),
]


class IncrementalSpec(_Strict):
    """The request parameter that carries the cursor: the last sync's newest ``cursor_field``."""

    param: str
    where: Where = Field("query", alias="in")
    #: How the cursor is written: ``iso`` (``2024-06-01T10:00:00Z``), ``unix`` seconds, ``unix_ms``,
    #: ``date`` (``2024-06-01``) or ``raw`` (the value as stored).
    format: Literal["iso", "unix", "unix_ms", "date", "raw"] = "iso"
    #: Seconds before the cursor read again (APIs that publish late: Typeform's newest responses).
    lookback_seconds: int = Field(0, ge=0)
    #: Sent on a first sync with no ``start_date`` (Zendesk needs a ``start_time``: ``0``); none: omitted.
    initial: str | int | None = None


FieldType = Literal["string", "int64", "float64", "bool", "timestamp", "date", "json"]


class FieldSpec(_Strict):
    type: FieldType = "string"
    #: Dotted path in the record (default: the field's name).
    path: str | None = None
    nullable: bool = True
    #: The smallest valid value (a negative count is the API's bug, loud).
    minimum: float | None = None
    #: The JSON type the API sends when it is not the field's own: ``int`` for a ``timestamp`` sent as
    #: unix seconds (Zendesk's ``generated_timestamp``), read as the time it is, not as drift.
    wire: Literal["string", "int", "float", "bool"] | None = None


class JoinSpec(_Strict):
    """Side-loaded objects in the same body joined to each record (Zendesk ``include=metric_sets``)."""

    path: str
    #: The side-loaded object's key and the record's field it matches.
    key: str
    to: str
    #: The record key the joined object lands under (field paths read ``as.x``).
    into: str = Field(alias="as")


class CanonicalSpec(_Strict):
    """The canonical table this stream feeds, each column a SQL expression over the raw fields."""

    table: str
    columns: dict[str, str]


class StreamSpec(_Strict):
    """One stream: the request, the records, paging, the cursor, the raw fields, the mapping."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = {}
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    #: Dotted path of the records' list in the body; ``""``: the body is the list.
    records: str = ""
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    #: The API returns records oldest change first: the cursor commits with every chunk.
    sorted_by_cursor: bool = False
    on_new_field: Literal["evolve", "ignore"] = "ignore"
    paginator: PagingSpec = NoPaging(type="none")
    incremental: IncrementalSpec | None = None
    join: JoinSpec | None = None
    #: A list in each record whose every element becomes a record of its own (survey answers).
    explode: str | None = None
    fields: dict[str, FieldSpec]
    canonical: CanonicalSpec | None = None
    #: Records per request, for ``kpihub plan``.
    page_size: int | None = None

    @field_validator("fields", mode="before")
    @classmethod
    def _short_fields(cls, value: Any) -> Any:
        # ``id = "string"`` is ``id = { type = "string" }``.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StreamSpec:
        for name in (*self.primary_key, *([self.cursor_field] if self.cursor_field else [])):
            if name not in self.fields:
                raise ValueError(f"{name!r} is a key or cursor but not in fields")
        if self.incremental is not None and self.cursor_field is None:
            raise ValueError("incremental needs a cursor_field")
        if self.explode is not None and "." in self.explode:
            raise ValueError("explode names a top-level list of the record")
        return self


class CheckSpec(_Strict):
    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = {}


class LimitSpec(_Strict):
    """A documented rate window: ``requests`` per ``seconds`` for paths matching ``path``."""

    name: str
    #: A number, or a ``{setting}`` (plans with higher limits).
    requests: float | str
    seconds: float = Field(gt=0)
    path: str | None = None
    title: str = ""


class SourceInfo(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    description: str = ""
    base_url: str | None = None
    docs: str = ""
    #: ``package.module:function`` returning the :class:`~kpihub.DemoSpec` for ``kpihub demo``
    #: (called with ``seed`` and ``scale``): a fake server is code, so it lives in the package.
    demo: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SourceSpec(_Strict):
    """The whole file."""

    source: SourceInfo
    settings: dict[str, SettingSpec] = {}
    auth: AuthSpec = NoAuth(type="none")
    headers: dict[str, str] = {}
    check: CheckSpec
    rate_limits: list[LimitSpec] = []
    streams: dict[str, StreamSpec] = Field(min_length=1)


def read_spec(path: Path) -> SourceSpec:
    """Parse and validate a declarative source file; :class:`ConfigError` in one line otherwise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from None


_UNIONS = {"paginator", "auth"}
_TAGS = {"none", "cursor", "offset", "page", "link_header", "next_url", "bearer", "api_key", "basic", "oauth2_refresh"}


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    # A misspelt key also leaves the right one missing: the misspelling is the error to show.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # Discriminated unions add the variant's tag to the location (``paginator.cursor.param``): drop it.
    parts = [str(p) for p in err["loc"]]
    parts = [p for i, p in enumerate(parts) if not (i and parts[i - 1] in _UNIONS and p in _TAGS)]
    loc = ".".join(parts) or "(top level)"
    kind = err["type"]
    if kind == "missing":
        return f"{loc}: is required"
    if kind == "extra_forbidden":
        return f"{loc}: is not a known key"
    if kind == "union_tag_invalid":
        return f"{loc}.type: {err['ctx'].get('tag')!r} is not one of {err['ctx'].get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"{loc}.type: is required"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg[0].lower() + msg[1:]}"
