"""What a source offers, without a project: its streams and every setting (for ``kpihub plugins`` and
``kpihub streams``).

Streams are asked of the source with its settings' defaults (``model_construct``: nothing
validated, nothing read from the environment); a source whose streams come from its settings
(the files source, declarative ones) may then list none, and says so.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from kpihub.config import env_prefix

if TYPE_CHECKING:
    from kpihub.source import Source, Stream

__all__ = ["SettingInfo", "StreamInfo", "describe_source", "opt_in_streams", "stream_info"]


@dataclass(frozen=True)
class SettingInfo:
    """One field of a source's settings: how to set it."""

    name: str
    type: str
    required: bool
    #: The default, as JSON would show it (``None`` when required or defaulting to null).
    default: Any
    secret: bool
    env: str


@dataclass(frozen=True)
class StreamInfo:
    """One stream: its table, key, cursor, the canonical table it feeds and how a sync reads and writes it."""

    name: str
    primary_key: tuple[str, ...]
    cursor_field: str | None
    canonical_table: str | None
    #: ``incremental`` (from the committed cursor; the first sync, or one after a reset, reads all) or
    #: ``full`` (everything, every sync).
    sync_mode: str = "full"
    #: What a sync does to the table: ``replace`` (a full stream), ``merge`` on the primary key or ``append``.
    write_mode: str = "replace"


def stream_info(stream: Stream[Any]) -> StreamInfo:
    """What :class:`StreamInfo` says of ``stream``, as the sync engine reads it."""
    incremental = stream.incremental
    return StreamInfo(
        stream.name,
        tuple(stream.primary_key),
        stream.cursor_field,
        stream.canonical_table,
        sync_mode="incremental" if incremental else "full",
        write_mode=stream.write_mode if incremental else "replace",
    )


def describe_source(source: Source[Any]) -> dict[str, Any]:
    """``{"name", "title", "streams": [...], "streams_from_settings": bool, "settings": [...]}``."""
    streams = _streams(source)
    return {
        "name": source.name,
        "title": source.title or source.name,
        "streams": [asdict(s) for s in streams],
        "streams_from_settings": not streams,
        "settings": [asdict(s) for s in settings_of(source)],
    }


def settings_of(source: Source[Any]) -> list[SettingInfo]:
    """Every field of ``source.settings_class``, inherited ones included, in declaration order."""
    prefix = env_prefix(source.name)
    return [
        SettingInfo(
            name=name,
            type=type_name(field.annotation),
            required=field.is_required(),
            default=None if field.is_required() else _jsonable(field.get_default(call_default_factory=True)),
            secret=_is_secret(field),
            env=f"{prefix}{name.upper()}",
        )
        for name, field in source.settings_class.model_fields.items()
    ]


def _streams(source: Source[Any], **settings: Any) -> list[StreamInfo]:
    try:
        streams = source.streams(source.settings_class.model_construct(**settings))
    except Exception:  # streams that need real settings (a required field read): listed when configured
        return []
    return [stream_info(s) for s in streams]


def opt_in_streams(source: Source[Any]) -> list[StreamInfo]:
    """Streams a source adds when its boolean settings that default to off are on (HubSpot's
    ``feedback_submissions = true``): what it *can* feed beyond what it feeds by default."""
    switches = {
        name: True
        for name, field in source.settings_class.model_fields.items()
        if field.annotation is bool and field.get_default() is False
    }
    if not switches:
        return []
    default = {s.name for s in _streams(source)}
    return [s for s in _streams(source, **switches) if s.name not in default]


def type_name(annotation: Any) -> str:
    """``str``, ``list[str]``, ``date | None``, ``Literal['fail', 'other']``: as a user reads it."""
    if inspect.isclass(annotation) and not typing.get_args(annotation):
        return annotation.__name__
    text = str(annotation)
    for noise in ("typing.", "datetime.", "pydantic.types.", "collections.abc."):
        text = text.replace(noise, "")
    return text


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
