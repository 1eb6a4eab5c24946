"""The plugin manager: kpihub's built-ins plus every ``kpihub`` entry point.

Loading never raises for one broken plugin: the failure is recorded as a
:class:`~kpihub.errors.PluginError` naming the plugin and its distribution,
shown by ``kpihub plugins`` and raised only when something asks for a name
that the broken plugin would have provided. Everything else keeps working.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pluggy

from kpihub import hookspecs
from kpihub.config import PluginLoadSettings, Project
from kpihub.errors import PluginError, UnknownNameError

if TYPE_CHECKING:
    from kpihub.destinations.base import Destination
    from kpihub.kpis.spec import KPI
    from kpihub.source import Source

__all__ = ["DEFAULT_PLUGINS", "PluginInfo", "Registry", "get_registry", "reset_registry"]

log = logging.getLogger("kpihub.plugins")

#: Built-in plugins, registered through the same path as external ones.
DEFAULT_PLUGINS: Final = (
    "kpihub.default_plugins.destinations",
    "kpihub.default_plugins.crm_kpis",
    "kpihub.default_plugins.revenue_kpis",
    "kpihub.default_plugins.ads_kpis",
    "kpihub.default_plugins.web_kpis",
    "kpihub.default_plugins.web_vitals_kpis",
    "kpihub.default_plugins.survey_kpis",
    "kpihub.default_plugins.service_kpis",
    "kpihub.default_plugins.customer_kpis",
    "kpihub.default_plugins.landing_page_kpis",
)

ENTRY_POINT_GROUP: Final = "kpihub"
T = TypeVar("T")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: name, distribution, what it registered."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    sources: list[str] = field(default_factory=list)
    kpis: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: PluginError | None = None

    @property
    def dist_label(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return "kpihub (built-in)" if self.builtin else "unknown distribution"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "sources": self.sources,
            "kpis": self.kpis,
            "destinations": self.destinations,
        }
        if self.error is not None:
            out["error"] = str(self.error)
        return out


class Registry:
    """Everything the plugins registered, by name, with the plugin that registered it."""

    def __init__(self, *, load_entrypoints: bool = True, settings: PluginLoadSettings | None = None) -> None:
        self.pm = pluggy.PluginManager("kpihub")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.sources: dict[str, Source] = {}
        self.kpis: dict[str, KPI] = {}
        self.destinations: dict[str, Destination] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self.settings = settings or PluginLoadSettings()
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.plugins[module_name] = PluginInfo(name=module_name, builtin=True, distribution="kpihub")
            self.pm.register(module, name=module_name)
        if load_entrypoints:
            self._load_entrypoints()
        if self.settings.trace_plugins:
            self.pm.trace.root.setwriter(lambda msg: log.debug("%s", msg.rstrip()))
            self.pm.enable_tracing()
        self.pm.check_pending()
        self._collect()

    # -- loading ---------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str, *, distribution: str | None = None) -> None:
        """Register an extra plugin object (tests, scripts) and collect what it registers."""
        self.plugins[name] = PluginInfo(name=name, distribution=distribution)
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self._collect(only=name)

    def _load_entrypoints(self) -> None:
        only = _split(self.settings.load_plugins)
        blocked = _split(self.settings.disable_plugins) or set()
        seen: set[str] = set()
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                    continue
                seen.add(ep.name)
                dist_name = dist.metadata["Name"]
                info = PluginInfo(name=ep.name, distribution=dist_name, version=dist.version)
                if (only is not None and ep.name not in only) or ep.name in blocked:
                    continue
                self.plugins[ep.name] = info
                try:
                    plugin = ep.load()
                    self.pm.register(plugin, name=ep.name)
                except Exception as exc:  # a plugin may raise anything on import
                    info.error = PluginError(
                        f"error loading kpihub plugin {ep.name!r} from {info.dist_label}: {type(exc).__name__}: {exc}",
                        plugin=ep.name,
                        distribution=dist_name,
                    )
                    info.error.__cause__ = exc
                    log.debug("plugin %s failed to load", ep.name, exc_info=exc)
        if only is not None:
            for name in sorted(only - seen):
                log.warning("KPIHUB_LOAD_PLUGINS names %r, but no installed plugin has that name", name)

    def _collect(self, only: str | None = None) -> None:
        self._collect_hook("kpihub_register_sources", "sources", lambda o: o.name, self.sources, only)
        self._collect_hook("kpihub_register_kpis", "kpis", lambda o: o.id, self.kpis, only)
        self._collect_hook("kpihub_register_destinations", "destinations", lambda o: o.name, self.destinations, only)

    def _collect_hook(
        self,
        hook_name: str,
        kind: str,
        key: Callable[[Any], str],
        target: dict[str, Any],
        only: str | None,
    ) -> None:
        hook = getattr(self.pm.hook, hook_name)
        impls = [i for i in hook.get_hookimpls() if not (i.wrapper or i.hookwrapper)]
        # Call each implementation on its own so every registration is attributed, through pluggy
        # (a caller without the other plugins' implementations, wrappers kept) so that tracing
        # and hookwrappers see every call.
        for impl in impls:  # registration order: built-ins first, so they keep their names
            plugin_name = impl.plugin_name
            if only is not None and plugin_name != only:
                continue
            info = self.plugins.setdefault(plugin_name, PluginInfo(name=plugin_name))
            if hook_name not in info.hooks:
                info.hooks.append(hook_name)

            def register(obj: Any, *, _info: PluginInfo = info) -> None:
                name = key(obj)
                owner = self._owner.get((kind, name))
                if owner is not None:
                    raise PluginError(
                        f"plugin {_info.name!r} ({_info.dist_label}) registers {kind[:-1]} {name!r}, "
                        f"already registered by plugin {owner!r}",
                        plugin=_info.name,
                        distribution=_info.distribution,
                    )
                self._owner[(kind, name)] = _info.name
                target[name] = obj
                getattr(_info, kind).append(name)

            others = [i.plugin for i in impls if i is not impl]
            try:
                self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
            except PluginError as exc:
                info.error = info.error or exc
            except Exception as exc:
                info.error = info.error or PluginError(
                    f"plugin {plugin_name!r} ({info.dist_label}) failed in {hook_name}: {type(exc).__name__}: {exc}",
                    plugin=plugin_name,
                    distribution=info.distribution,
                )
                info.error.__cause__ = exc

    # -- lookups ---------------------------------------------------------------

    @property
    def errors(self) -> list[PluginError]:
        """The :class:`~kpihub.PluginError` of every plugin that failed to load."""
        return [p.error for p in self.plugins.values() if p.error is not None]

    def source(self, name: str) -> Source:
        """The source plugin registered as ``name``.

        :raises UnknownNameError: no plugin registered it (a failed plugin's error is raised if it might have).
        """
        return self._lookup(self.sources, name, "source")

    def project_source(self, project: Project, source_id: str) -> Source:
        """The source ``[sources.<source_id>]`` uses: a declarative file the project lists in
        ``[project] connectors`` (those win: the project's own), else a plugin's."""
        kind = project.source_type(source_id)
        if project.settings.connectors:
            from kpihub.declarative import project_sources

            declared = project_sources(project)
            if kind in declared:
                return declared[kind]
        return self.source(kind)

    def for_project(self, project: Project) -> Registry:
        """This registry with ``project``'s own KPIs (``[kpis.<id>]``) and KPI parameters (``gross_margin``,
        ``vat_rate``) in a catalogue of its own: the process-wide registry is left as it was, so a host that
        serves several projects (a test run, an Airflow worker) never scores one with another's."""
        from kpihub.kpis.project import register_project_kpis

        view = copy.copy(self)
        view.kpis = dict(self.kpis)
        register_project_kpis(view.kpis, project)
        return view

    def kpi(self, kpi_id: str) -> KPI:
        """The KPI registered as ``kpi_id``.

        :raises UnknownNameError: no plugin registered it (a failed plugin's error is raised if it might have).
        """
        return self._lookup(self.kpis, kpi_id, "KPI")

    def destination_for(self, uri: str) -> Destination:
        """The destination that handles ``uri``'s scheme (``adbc+snowflake://`` matches ``adbc``).

        :raises UnknownNameError: no destination handles the scheme; the message lists the known ones.
        """
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        for dest in self.destinations.values():
            # ``adbc+snowflake://…``: a scheme family named by its part before the "+".
            if scheme in dest.schemes or scheme.split("+", 1)[0] in dest.schemes:
                return dest
        known = sorted(s for d in self.destinations.values() for s in d.schemes)
        self._raise_plugin_errors()
        raise UnknownNameError(
            f"destination {uri!r}: no destination handles scheme {scheme!r} (known: {', '.join(known)})"
        )

    def _lookup(self, table: dict[str, T], name: str, what: str) -> T:
        try:
            return table[name]
        except KeyError:
            pass
        self._raise_plugin_errors(hint=name)
        known = ", ".join(sorted(table)) or "none installed"
        raise UnknownNameError(f"{what} {name!r} is not registered by any plugin (known: {known})")

    def _raise_plugin_errors(self, hint: str | None = None) -> None:
        # A name that is missing because its plugin is broken: say so, not "unknown".
        for info in self.plugins.values():
            if info.error is not None and (hint is None or info.name == hint or hint in info.name):
                raise info.error


def _split(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def reset_registry(registry: Registry | None = None) -> None:
    """Replace (or drop) the process-wide registry; for tests and long-lived hosts."""
    global _registry
    _registry = registry
