"""Declarative sources: a REST API described in TOML, no Python (see ``docs/declarative.md``).

:class:`DeclarativeSource` (exported as ``kpihub.DeclarativeSource``) loads a file into a
:class:`kpihub.Source`; :func:`project_sources` the files a project lists in
``[project] connectors``.
"""

from __future__ import annotations

from kpihub.declarative.project import project_sources
from kpihub.declarative.source import DeclarativeSource, DeclarativeStream

__all__ = ["DeclarativeSource", "DeclarativeStream", "project_sources"]
