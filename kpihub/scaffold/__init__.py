"""``kpihub new``: a ready plugin distribution from a template (source, KPI pack or destination).

Templates are directories under ``templates/<kind>``; a path part ``__package__`` or
``__name__`` becomes the package or plugin name, and every file is a :class:`string.Template`
(``$name``, ``$package``, ``$dist``, ``$cls``, ``$title``, ``$NAME``; ``$$`` for a dollar).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kpihub import __version__
from kpihub.errors import ConfigError

__all__ = ["KINDS", "Names", "scaffold"]

#: The kinds with a template: a source (with its fake API), a KPI pack, a destination.
KINDS = ("source", "kpi", "destination")
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Names:
    """The names a plugin called ``name`` gets: ``demo_thing`` → ``kpihub-demo-thing``,
    ``kpihub_demo_thing``, ``DemoThing``."""

    name: str

    @classmethod
    def parse(cls, raw: str) -> Names:
        name = raw.strip().lower().replace("-", "_")
        if name.startswith("kpihub_"):
            name = name[len("kpihub_") :]
        if not _NAME.match(name):
            raise ConfigError(
                f"plugin name {raw!r}: use lower-case letters, digits and underscores, starting with a letter "
                "(e.g. demo_thing)"
            )
        return cls(name)

    @property
    def mapping(self) -> dict[str, str]:
        words = self.name.split("_")
        return {
            "name": self.name,
            "NAME": self.name.upper(),
            "package": f"kpihub_{self.name}",
            "dist": f"kpihub-{self.name.replace('_', '-')}",
            "cls": "".join(w.capitalize() for w in words),
            "title": " ".join(w.capitalize() for w in words),
            "kpihub_version": ".".join(__version__.split(".")[:2]),
        }


def scaffold(kind: str, raw_name: str, parent: Path) -> tuple[Path, list[Path]]:
    """Write the ``kind`` template for ``raw_name`` into ``parent/<dist>``; return it and its files.

    :raises ConfigError: an unknown kind, a bad name, or a directory that already exists.
    """
    if kind not in KINDS:
        raise ConfigError(f"kpihub new {kind!r}: choose one of {', '.join(KINDS)}")
    names = Names.parse(raw_name)
    mapping = names.mapping
    root = parent / mapping["dist"]
    if root.exists():
        raise ConfigError(f"{root} already exists: choose another name or directory (nothing was written)")
    template = resources.files("kpihub.scaffold").joinpath("templates", kind)
    planned = [(root / _target(rel, mapping), source) for rel, source in _walk(template, "")]
    rendered = [(path, _render(source, mapping, rel=str(path.relative_to(root)))) for path, source in planned]
    for path, text in rendered:  # every file renders before the first is written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root, [p for p, _ in rendered]


def _walk(node: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            if child.name != "__pycache__":
                found += _walk(child, rel + "/")
        elif not child.name.endswith(".pyc"):
            found.append((rel, child))
    return found


def _target(rel: str, mapping: dict[str, str]) -> str:
    return rel.replace("__package__", mapping["package"]).replace("__name__", mapping["name"])


def _render(source: Traversable, mapping: dict[str, str], *, rel: str) -> str:
    try:
        return string.Template(source.read_text()).substitute(mapping)
    except (KeyError, ValueError) as exc:  # a template bug, not the user's: say which file
        raise ConfigError(f"kpihub new: template {rel} is broken: {exc}") from None
