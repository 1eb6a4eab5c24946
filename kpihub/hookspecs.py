"""The kpihub plugin contract.

A plugin is a module (or object) with functions marked ``@kpihub.hookimpl``
whose names match the specs below, published through the ``kpihub``
entry-point group::

    # pyproject.toml of kpihub-mysource
    [project.entry-points.kpihub]
    mysource = "kpihub_mysource"

    # kpihub_mysource/__init__.py
    import kpihub

    @kpihub.hookimpl
    def kpihub_register_sources(register):
        register(MySource())

Hooks register things; they do not do work. Each receives a ``register``
callback so the contract can grow (new keyword arguments) without breaking
existing plugins. A name registered twice is an error naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from kpihub.destinations.base import Destination
    from kpihub.kpis.spec import KPI
    from kpihub.source import Source

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("kpihub")
hookimpl = pluggy.HookimplMarker("kpihub")


@hookspec
def kpihub_register_sources(register: Callable[[Source], None]) -> None:
    """Register source connectors.

    Call ``register(source)`` once per :class:`kpihub.Source` instance. The
    source's ``name`` is the name users write in ``kpihub.toml``
    (``[sources.<name>]``) and in ``KPIHUB_<NAME>_<FIELD>`` variables.

    :param register: callback taking one :class:`kpihub.Source`.
    :returns: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def kpihub_register_kpis(register: Callable[[KPI], None]) -> None:
    """Register KPI definitions.

    Call ``register(kpi)`` once per :class:`kpihub.KPI`. The KPI's ``id`` must
    be unique across all plugins; its definition is compiled to SQL over the
    canonical tables, so a KPI works with every source that feeds them.

    :param register: callback taking one :class:`kpihub.KPI`.
    :returns: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def kpihub_register_destinations(register: Callable[[Destination], None]) -> None:
    """Register destinations (exporters).

    Call ``register(destination)`` once per :class:`kpihub.Destination`. A
    destination is chosen by the scheme of the project's destination URI
    (``duckdb:///path.duckdb``, ``parquet:///dir``); each scheme belongs to
    one destination.

    :param register: callback taking one :class:`kpihub.Destination`.
    :returns: nothing; return values are ignored.

    .. versionadded:: 0.1
    """
