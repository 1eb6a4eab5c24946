"""``{setting}`` placeholders in a declarative source's strings: checked when the file loads.

``"{email}/token"`` names the setting ``email``; ``{{`` is a literal brace. Values are filled in
from the source's validated settings (a date as ``YYYY-MM-DD``, a secret as its value: only auth
and headers may hold secrets, which the redactor then hides).
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import SecretStr

__all__ = ["placeholders", "render", "render_tree"]

FORMATTER = string.Formatter()


def placeholders(text: str) -> list[str]:
    """The setting names ``text`` refers to; ``ValueError`` for a placeholder that is not a plain name."""
    names = []
    for _literal, name, spec, conversion in FORMATTER.parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{name}}} in {text!r} must be a setting's name")
        names.append(name)
    return names


def strings_in(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """``(key path, string)`` for every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from strings_in(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from strings_in(v, f"{key}[{i}]")


def _text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def render(text: str, settings: Any) -> str:
    """``text`` with each ``{name}`` replaced by the setting's value."""
    return FORMATTER.vformat(text, (), _Settings(settings))


def render_tree(value: Any, settings: Any) -> Any:
    """Every string inside nested dicts and lists rendered; other values as they are."""
    if isinstance(value, str):
        return render(value, settings)
    if isinstance(value, Mapping):
        return {k: render_tree(v, settings) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_tree(v, settings) for v in value]
    return value


class _Settings(Mapping[str, str]):
    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def __getitem__(self, name: str) -> str:
        return _text(getattr(self.settings, name))

    def __iter__(self) -> Iterator[str]:
        return iter(type(self.settings).model_fields)

    def __len__(self) -> int:
        return len(type(self.settings).model_fields)
