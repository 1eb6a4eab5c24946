"""A source described in TOML, run by the same engine as a Python one.

:class:`DeclarativeSource` turns a :class:`~kpihub.declarative.spec.SourceSpec` into a
:class:`kpihub.Source`: a pydantic settings class from ``[settings]``, an auth from ``[auth]``,
one :class:`DeclarativeStream` per ``[streams.<name>]``. Requests go through the source's
:class:`~kpihub.http.Requester` (retries, ``Retry-After``, the rate budget), pages through the
core's paginators, records through the normalizer, and state, commits and the completeness,
grain and contract checks are the engine's, exactly as for a Python connector.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr, create_model

from kpihub.config import SourceSettings
from kpihub.declarative import spec as s
from kpihub.declarative.mapping import CanonicalMapping
from kpihub.declarative.template import placeholders, render, render_tree, strings_in
from kpihub.errors import ConfigError, HTTPError, UnknownNameError
from kpihub.http import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CursorPaginator,
    Limit,
    LinkHeaderPaginator,
    NextLinkPaginator,
    OAuthRefreshToken,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    Requester,
)
from kpihub.http.body import get_path
from kpihub.model import canonical_table
from kpihub.source import CheckResult, DemoSpec, Page, Source, Stream, StreamContext
from kpihub.state import decode_cursor

__all__ = ["DeclarativeSource", "DeclarativeStream"]

TS = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TS,
    "date": pa.date32(),
}
SETTING_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "date": dt.date,
    "secret": SecretStr,
}


class DeclarativeSource(Source[SourceSettings]):
    """A :class:`kpihub.Source` from a declarative TOML file (see ``docs/declarative.md``).

    ``DeclarativeSource.from_file(path)`` loads and checks the file; register the result in a
    plugin's ``kpihub_register_sources`` hook, or list the file in the project's
    ``[project] connectors``.
    """

    def __init__(self, spec: s.SourceSpec, *, where: str = "<spec>") -> None:
        self.spec = spec
        self.where = where
        self.name = spec.source.name  # type: ignore[misc]  # a class attribute on Python sources
        self.title = spec.source.title or spec.source.name  # type: ignore[misc]
        self.settings_class = _settings_class(spec)
        _check_placeholders(spec, self.settings_class, where)
        self._streams = {
            name: _stream(name, stream, f"{where}: streams.{name}") for name, stream in spec.streams.items()
        }

    @classmethod
    def from_file(cls, path: str | Path) -> DeclarativeSource:
        """Load ``path``; :class:`~kpihub.errors.ConfigError` naming file, stream and key when it is wrong."""
        path = Path(path)
        return cls(s.read_spec(path), where=str(path))

    def streams(self, settings: SourceSettings) -> Sequence[Stream[SourceSettings]]:
        """One :class:`DeclarativeStream` per ``[streams.<name>]``."""
        return list(self._streams.values())

    def auth(self, settings: SourceSettings) -> httpx.Auth | None:
        """The ``[auth]`` table's scheme with the settings filled in."""
        return _auth(self.spec.auth, settings)

    def headers(self, settings: SourceSettings) -> dict[str, str]:
        """``[headers]``, rendered."""
        return {k: render(v, settings) for k, v in self.spec.headers.items()}

    def rate_limits(self, settings: SourceSettings) -> Sequence[Limit]:
        """``[[rate_limits]]``: the API's documented windows."""
        return [
            Limit(r.name, float(render(str(r.requests), settings)), r.seconds, path=r.path, title=r.title)
            for r in self.spec.rate_limits
        ]

    def check(self, settings: SourceSettings, http: Requester) -> CheckResult:
        """One request to ``[check]``'s path: connected, or the API's answer in one line."""
        check = self.spec.check
        try:
            http.json(check.method, render(check.path, settings), params=render_tree(check.params, settings))
        except HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, "connected")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        """``[source] demo``'s function called with ``seed`` and ``scale``; ``None`` without one."""
        ref = self.spec.source.demo
        if ref is None:
            return None
        module_name, _, attr = ref.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{self.where}: source.demo: cannot load {ref!r}: {exc}") from None
        return factory(seed=seed, scale=scale)  # type: ignore[no-any-return]


@dataclass
class DeclarativeStream(Stream[SourceSettings]):
    """A stream read as its ``[streams.<name>]`` table says; see :class:`DeclarativeSource`."""

    spec: s.StreamSpec | None = None
    mapping: CanonicalMapping | None = None

    def read(self, ctx: StreamContext[SourceSettings], state: Mapping[str, Any] | None) -> Iterator[Page]:
        """Page through the endpoint from the cursor (or ``start_date``), joining and exploding as declared."""
        spec = self._spec
        params = render_tree(spec.params, ctx.settings)
        body = render_tree(spec.body, ctx.settings) if spec.body is not None else None
        if spec.incremental is not None:
            since = _since(decode_cursor(state), ctx.settings.start_date, spec.incremental.lookback_seconds)
            value = spec.incremental.initial if since is None else _cursor_text(since, spec.incremental.format)
            if value is not None:
                if spec.incremental.where == "query":
                    params[spec.incremental.param] = value
                else:
                    body = {**(body or {}), spec.incremental.param: value}
        paginator = _paginator(spec.paginator, spec.records, ctx.settings)
        side: dict[str, Any] = {}
        for page, records in ctx.pages(
            paginator, spec.method, render(spec.path, ctx.settings), params=params, json=body
        ):
            if spec.join is not None:
                records, side = _joined(records, page, spec.join, side)
            if spec.explode is not None:
                records = _exploded(records, spec.explode)
            yield records

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[SourceSettings]) -> pa.RecordBatch:
        """The ``[streams.<name>.canonical]`` expressions over the batch (:mod:`~kpihub.declarative.mapping`)."""
        assert self.mapping is not None
        return self.mapping.apply(batch, ctx.settings)

    @property
    def _spec(self) -> s.StreamSpec:
        assert self.spec is not None
        return self.spec


def _stream(name: str, spec: s.StreamSpec, where: str) -> DeclarativeStream:
    schema = pa.schema(
        [
            pa.field(
                field_name,
                ARROW_TYPES[f.type],
                nullable=f.nullable and field_name not in spec.primary_key,
                metadata=_metadata(f),
            )
            for field_name, f in spec.fields.items()
        ]
    )
    mapping = None
    if spec.canonical is not None:
        _check_canonical(spec.canonical, where)
        mapping = CanonicalMapping(spec.canonical.columns, schema, where=f"{where}.canonical.columns")
    return DeclarativeStream(
        name,
        schema,
        primary_key=spec.primary_key,
        cursor_field=spec.cursor_field,
        canonical_table=spec.canonical.table if spec.canonical else None,
        on_new_field=spec.on_new_field,
        sorted_by_cursor=spec.sorted_by_cursor,
        page_size=spec.page_size,
        spec=spec,
        mapping=mapping,
    )


def _metadata(f: s.FieldSpec) -> dict[str, str] | None:
    meta = {}
    if f.path is not None:
        meta["path"] = f.path
    if f.minimum is not None:
        meta["minimum"] = str(int(f.minimum)) if float(f.minimum).is_integer() else str(f.minimum)
    if f.wire is not None:
        meta["wire"] = f.wire
    return meta or None


def _check_canonical(canonical: s.CanonicalSpec, where: str) -> None:
    try:
        table = canonical_table(canonical.table)
    except (UnknownNameError, KeyError):
        raise ConfigError(f"{where}.canonical.table: {canonical.table!r} is not a canonical table") from None
    known = set(table.schema.names) - {"source_id", "_loaded_at"}
    for column in canonical.columns:
        if column not in known:
            raise ConfigError(
                f"{where}.canonical.columns.{column}: {canonical.table} has no column {column!r} "
                f"(it has {', '.join(sorted(known))})"
            )
    required = [f.name for f in table.schema if not f.nullable and f.name in known]
    for column in required:
        if column not in canonical.columns:
            raise ConfigError(f"{where}.canonical.columns.{column}: is required by {canonical.table}")


def _settings_class(spec: s.SourceSpec) -> type[SourceSettings]:
    fields: dict[str, Any] = {}
    for name, setting in spec.settings.items():
        kind = SETTING_TYPES[setting.type]
        default = ... if setting.default is None else setting.default
        fields[name] = (kind, Field(default, description=setting.description))
    if spec.source.base_url is not None:
        fields["base_url"] = (str, spec.source.base_url)
    cls_name = "".join(part.title() for part in spec.source.name.split("_")) + "Settings"
    model: type[SourceSettings] = create_model(cls_name, __base__=SourceSettings, **fields)
    model.__doc__ = f"Settings of the declarative source {spec.source.name!r}."
    return model


def _check_placeholders(spec: s.SourceSpec, settings_class: type[SourceSettings], where: str) -> None:
    known = set(settings_class.model_fields)
    secrets = {n for n, f in spec.settings.items() if f.type == "secret"}
    tables: list[tuple[str, Any, bool]] = [("auth", spec.auth.model_dump(by_alias=True), True)]
    tables.append(("headers", spec.headers, True))
    tables.append(("check", spec.check.model_dump(), False))
    tables.append(("rate_limits", [r.requests for r in spec.rate_limits], False))
    for name, stream in spec.streams.items():
        full_page = getattr(stream.paginator, "full_page", None)
        tables.append((f"streams.{name}.paginator.full_page", [full_page] if full_page is not None else [], False))
    for name, stream in spec.streams.items():
        tables.append((f"streams.{name}", {"path": stream.path, "params": stream.params, "body": stream.body}, False))
        tables.append((f"streams.{name}.headers", stream.headers, True))
        if stream.canonical is not None:
            tables.append((f"streams.{name}.canonical.columns", stream.canonical.columns, False))
    for prefix, value, may_hold_secrets in tables:
        for key, text in strings_in(value):
            try:
                names = placeholders(text)
            except ValueError as exc:
                raise ConfigError(f"{where}: {prefix}.{key}: {exc}") from None
            for name in names:
                if name not in known:
                    raise ConfigError(f"{where}: {prefix}.{key}: {{{name}}} is not a setting")
                if name in secrets and not may_hold_secrets:
                    # A secret in a URL or body would be sent where logs and proxies see it.
                    raise ConfigError(f"{where}: {prefix}.{key}: the secret {{{name}}} may go only in auth or headers")


def _auth(auth: Any, settings: SourceSettings) -> httpx.Auth | None:
    if isinstance(auth, s.BearerAuthSpec):
        return BearerAuth(render(auth.token, settings))
    if isinstance(auth, s.ApiKeyAuthSpec):
        return ApiKeyAuth(auth.name, render(auth.value, settings), where=auth.where, prefix=auth.prefix)
    if isinstance(auth, s.BasicAuthSpec):
        return BasicAuth(render(auth.username, settings), render(auth.password, settings))
    if isinstance(auth, s.OAuth2RefreshSpec):
        return OAuthRefreshToken(
            render(auth.token_url, settings),
            client_id=render(auth.client_id, settings),
            client_secret=render(auth.client_secret, settings),
            refresh_token=render(auth.refresh_token, settings),
            scope=render(auth.scope, settings) if auth.scope else None,
        )
    return None


def _paginator(paging: Any, records: str, settings: SourceSettings) -> Paginator:
    if isinstance(paging, s.CursorPaging):
        cursor_from = None
        if paging.last_record is not None or paging.full_page is not None:
            cursor_from = _cursor_from(paging, settings)
        return CursorPaginator(
            records,
            cursor_path=None if cursor_from else paging.cursor_path,
            cursor_from=cursor_from,
            param=paging.param,
            where=paging.where,
            total_path=paging.total_path,
            stop_path=paging.stop_path,
            drop_params=paging.drop_params,
        )
    if isinstance(paging, s.OffsetPaging):
        return OffsetPaginator(
            records,
            limit=paging.limit,
            limit_param=paging.limit_param,
            offset_param=paging.offset_param,
            where=paging.where,
            total_path=paging.total_path,
            start=paging.start,
        )
    if isinstance(paging, s.PagePaging):
        return PageNumberPaginator(
            records,
            size=paging.size,
            page_param=paging.page_param,
            size_param=paging.size_param,
            start=paging.start,
            where=paging.where,
            total_path=paging.total_path,
            total_pages_path=paging.total_pages_path,
        )
    if isinstance(paging, s.LinkHeaderPaging):
        return LinkHeaderPaginator(records, rel=paging.rel, stop_path=paging.stop_path)
    if isinstance(paging, s.NextUrlPaging):
        return NextLinkPaginator(
            records, next_path=paging.path, total_path=paging.total_path, stop_path=paging.stop_path
        )
    return _SinglePage(records)


def _cursor_from(paging: s.CursorPaging, settings: SourceSettings) -> Callable[[Any, list[Any]], Any]:
    full = int(render(str(paging.full_page), settings)) if paging.full_page is not None else None

    def cursor(body: Any, records: list[Any]) -> Any:
        if not records or (full is not None and len(records) < full):
            return None
        if paging.last_record is not None:
            last = records[-1]
            return last.get(paging.last_record) if isinstance(last, Mapping) else None
        return get_path(body, paging.cursor_path or "")

    return cursor


class _SinglePage(Paginator):
    """One request, no paging."""

    def next_token(self, body: Any, records: list[Any], count: int) -> Any:
        return None

    def next_request(self, token, url, params, json):  # type: ignore[no-untyped-def]
        raise AssertionError("a single page has no next request")


def _since(cursor: Any, start_date: dt.date | None, lookback: int) -> Any:
    if cursor is None and start_date is not None:
        cursor = dt.datetime.combine(start_date, dt.time(), dt.timezone.utc)
    if cursor is None or not lookback:
        return cursor
    if isinstance(cursor, dt.datetime):
        return cursor - dt.timedelta(seconds=lookback)
    if isinstance(cursor, int | float):  # a unix time
        return cursor - lookback
    return cursor


def _cursor_text(value: Any, fmt: str) -> Any:
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        utc = value.astimezone(dt.timezone.utc)
        return {
            "iso": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "unix": int(utc.timestamp()),
            "unix_ms": int(utc.timestamp() * 1000),
            "date": utc.date().isoformat(),
        }.get(fmt, value.isoformat())
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _joined(
    records: list[Any], body: Any, join: s.JoinSpec, previous: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Each record with its side-loaded object; and this page's objects by key, for the next page.

    A record repeated at the top of a page (an export's boundary duplicate) may have had its
    object side-loaded with the page before: that page's objects are looked in too.
    """
    objects = get_path(body, join.path) or []
    here = {str(obj.get(join.key)): obj for obj in objects if isinstance(obj, Mapping)}

    def find(key: str) -> Any:
        return here.get(key, previous.get(key))

    return [{**r, join.into: find(str(r.get(join.to)))} for r in records], here


def _exploded(records: list[Any], key: str) -> list[Any]:
    # One record per element, the element under the list's own key: ``answers.field.ref``.
    return [{**r, key: element} for r in records for element in (r.get(key) or ())]
