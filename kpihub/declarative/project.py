"""The declarative source files a project lists in ``[project] connectors`` (globs, relative to it)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from kpihub.errors import ConfigError

if TYPE_CHECKING:
    from kpihub.config import Project
    from kpihub.declarative.source import DeclarativeSource

__all__ = ["project_sources"]


def project_sources(project: Project) -> dict[str, DeclarativeSource]:
    """Source type -> source, for every file the project's ``connectors`` globs match.

    A glob that matches nothing, or two files declaring one source name, is an error: a connector
    that silently does not load would leave its source "unknown" with no word on why.
    """
    found: dict[str, DeclarativeSource] = {}
    where: dict[str, str] = {}
    for pattern in project.settings.connectors:
        full = project.resolve(pattern)
        paths = sorted(full.parent.glob(full.name))
        if not paths:
            raise ConfigError(f"{project.path or 'kpihub.toml'}: connectors: {pattern!r} matches no file")
        for path in paths:
            source = _load(path.resolve(), path.stat().st_mtime_ns)
            if source.name in found:
                raise ConfigError(f"{path}: source {source.name!r} is declared in {where[source.name]} too")
            found[source.name], where[source.name] = source, str(path)
    return found


@functools.lru_cache(maxsize=64)
def _load(path: Path, mtime_ns: int) -> DeclarativeSource:
    # Loaded once per version of the file: a sync resolves each source several times.
    from kpihub.declarative.source import DeclarativeSource

    return DeclarativeSource.from_file(path)
