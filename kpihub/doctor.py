"""``kpihub doctor``: what is wrong with this installation and project, as findings, one line each.

Checks, in order: the plugins (entry points that fail to load, hook implementations whose names
or arguments do not match the specs), the project file, each configured source (its settings and
secrets validated as ``kpihub sync`` validates them, then the source's own
:meth:`~kpihub.Source.diagnose`: API versions, token scopes) and the destination (opened
read-only). Pure logic: every check returns :class:`~kpihub.Diagnosis` findings and never raises
for what it finds; printing them is the CLI's job (``kpihub.cli.doctor``).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from kpihub import hookspecs
from kpihub.config import PluginLoadSettings, Project
from kpihub.errors import KpihubError
from kpihub.plugins import ENTRY_POINT_GROUP, Registry, get_registry
from kpihub.secrets import masked_uri, redact
from kpihub.source import Diagnosis

if TYPE_CHECKING:
    from kpihub.sync import Pipeline

__all__ = ["HOOKS", "diagnose", "exit_code", "load_registry"]

#: The hook names of the contract (kpihub.hookspecs).
HOOKS: tuple[str, ...] = tuple(sorted(n for n in dir(hookspecs) if n.startswith("kpihub_")))
#: Plugins disabled one at a time when pluggy refuses the registry for them (unknown hook names).
_MAX_REFUSED = 20


def one_line(text: object) -> str:
    """``text`` redacted, its lines joined: a finding is one line on the terminal."""
    return " ".join(part.strip() for part in redact(text).splitlines() if part.strip())


def exit_code(findings: Sequence[Diagnosis]) -> int:
    """1 when any finding is an ``error``, else 0 (warnings do not fail)."""
    return int(any(f.level == "error" for f in findings))


# -- plugins ---------------------------------------------------------------------------------------


def load_registry() -> tuple[Registry, list[Diagnosis]]:
    """The plugin registry, even when pluggy refuses it, and findings for the plugins it refused.

    ``Registry()`` raises when a plugin implements a hook that is not in the contract (a typo:
    ``pm.check_pending``); every other command should fail then. The doctor instead reports the
    plugin and loads the rest without it (``KPIHUB_DISABLE_PLUGINS``, as a user would).
    """
    findings: list[Diagnosis] = []
    try:
        return get_registry(), findings
    except pluggy.PluginValidationError as exc:
        refused = exc
    settings = PluginLoadSettings()
    disabled = {d.strip() for d in (settings.disable_plugins or "").split(",") if d.strip()}
    for _ in range(_MAX_REFUSED):
        name = _entry_point_name(refused.plugin)
        findings += hook_findings(name or repr(refused.plugin), refused.plugin) or [
            Diagnosis("error", one_line(refused), f"plugin {name!r}")
        ]
        if name is None:  # not an entry point (registered by a script): nothing left to disable
            raise refused
        disabled.add(name)
        try:
            registry = Registry(settings=settings.model_copy(update={"disable_plugins": ",".join(sorted(disabled))}))
        except pluggy.PluginValidationError as exc:
            refused = exc
            continue
        return registry, findings
    raise refused


def _entry_point_name(plugin: object) -> str | None:
    module = getattr(plugin, "__name__", None)
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and ep.module == module:
                return ep.name
    return None


def hook_findings(name: str, plugin: object, pm: pluggy.PluginManager | None = None) -> list[Diagnosis]:
    """Hook implementations of ``plugin`` that do not match the contract: unknown names, extra arguments.

    pluggy refuses both (an argument the spec does not have when the plugin registers, an unknown
    hook at ``check_pending``) with a multi-line message; this says it in one line per hook.
    """
    pm = pm or _contract()
    out = []
    for attr in sorted(dir(plugin)):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        if attr not in HOOKS:
            if not opts.get("optionalhook"):
                close = difflib.get_close_matches(attr, HOOKS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else f" (hooks: {', '.join(HOOKS)})"
                out.append(Diagnosis("error", f"{attr} is not a kpihub hook{hint}", f"plugin {name!r}"))
            continue
        spec = getattr(pm.hook, attr).spec
        args = [p for p in inspect.signature(getattr(plugin, attr)).parameters]
        extra = [a for a in args if a not in spec.argnames]
        if extra:
            out.append(
                Diagnosis(
                    "error",
                    f"hook {attr}({', '.join(args)}) takes {', '.join(map(repr, extra))}, "
                    f"which the spec {attr}({', '.join(spec.argnames)}) does not have",
                    f"plugin {name!r}",
                )
            )
    return out


def _contract() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("kpihub")
    pm.add_hookspecs(hookspecs)
    return pm


def plugin_findings(registry: Registry) -> list[Diagnosis]:
    """One finding per external plugin, by name: what it registers, or why it failed to load; hook mismatches."""
    out: list[Diagnosis] = []
    for info in sorted(registry.plugins.values(), key=lambda i: i.name):
        subject = f"plugin {info.name!r}"
        cause = info.error.__cause__ if info.error is not None else None
        if isinstance(cause, pluggy.PluginValidationError):
            out += hook_findings(info.name, cause.plugin) or [Diagnosis("error", one_line(info.error), subject)]
        elif info.error is not None:
            out.append(Diagnosis("error", one_line(info.error), subject))
        elif not info.builtin:
            plugin = registry.pm.get_plugin(info.name)
            mismatches = hook_findings(info.name, plugin) if plugin is not None else []
            out += mismatches or [Diagnosis("ok", f"{info.dist_label}: {_registers(info)}", subject)]
    return out


def _registers(info: Any) -> str:
    kinds = (("source", info.sources), ("KPI", info.kpis), ("destination", info.destinations))
    parts = [f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}" for kind, names in kinds if names]
    return "registers " + "; ".join(parts) if parts else "registers nothing"


# -- sources and destination -----------------------------------------------------------------------


def source_findings(pipeline: Pipeline, source_id: str, *, network: bool) -> Iterator[Diagnosis]:
    """A configured source: its settings as ``kpihub sync`` validates them, then its own diagnosis."""
    subject = f"source {source_id!r}"
    try:
        source, settings = pipeline.resolve_source(source_id)
    except KpihubError as exc:  # unknown type, broken plugin, missing or invalid setting
        yield Diagnosis("error", one_line(exc).removeprefix(f"{subject}: "), subject)
        return
    yield Diagnosis("ok", f"{source.name} settings valid", subject)
    try:
        if network:
            with pipeline.requester(source_id, source, settings) as http:
                found = list(source.diagnose(settings, http))
        else:
            found = list(source.diagnose(settings, None))
    except Exception as exc:  # a plugin's diagnose may raise anything: report it, check the rest
        yield Diagnosis("error", f"diagnose() failed: {type(exc).__name__}: {one_line(exc)}", subject)
        return
    for finding in found:
        yield Diagnosis(finding.level, one_line(finding.message), finding.subject or subject)


def destination_findings(pipeline: Pipeline) -> Diagnosis:
    """The destination opened read-only, as ``kpihub kpis`` opens it; never created or written."""
    uri = masked_uri(pipeline.destination_uri)
    subject = "destination"
    try:
        with pipeline.open_destination(read_only=True):
            pass
    except KpihubError as exc:
        message = one_line(exc)
        # The destinations' own words for "nothing synced yet": a new project, not a fault.
        if "run `kpihub sync` first" in message:
            return Diagnosis("warn", message, subject)
        return Diagnosis("error", message, subject)
    except Exception as exc:  # a driver's own error (a third-party destination)
        return Diagnosis("error", f"cannot open {uri}: {type(exc).__name__}: {one_line(exc)}", subject)
    return Diagnosis("ok", f"{uri} opens read-only", subject)


def diagnose(
    registry: Registry,
    project: Project | None,
    *,
    network: bool = True,
    refused: Sequence[Diagnosis] = (),
    project_problems: Sequence[Diagnosis] = (),
) -> list[Diagnosis]:
    """Every finding, in order: plugins (``refused``: those :func:`load_registry` left out), the
    project (``project_problems``: why it could not be loaded), sources, destination.

    ``project`` is ``None`` when there is no project file (only the plugins are checked then).
    ``network=False`` passes ``http=None`` to each source's ``diagnose``.
    """
    from kpihub.sync import Pipeline

    out = [*refused, *plugin_findings(registry), *project_problems]
    if project is None:
        return out
    pipeline = Pipeline(project, registry=registry)
    if not project.sources:
        out.append(Diagnosis("warn", f"no [sources.<id>] tables in {_where(project)}", "project"))
    for source_id in pipeline.source_ids():
        out += source_findings(pipeline, source_id, network=network)
    out.append(destination_findings(pipeline))
    return out


def _where(project: Project) -> str:
    return project.path.name if project.path else "kpihub.toml"
