"""The public connector API is the whole contract: first-party plugins use only it, and it is documented.

A plugin that imports ``kpihub.state`` or ``kpihub.normalize`` breaks when the core is refactored;
a third-party author reading ours would copy the habit. Settings narrowed by ``# type: ignore``
mean the generics over the settings class are not doing their job.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import pytest

import kpihub
import kpihub.hookspecs
import kpihub.http
import kpihub.testing
import kpihub.testing.conformance

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"kpihub", "kpihub.http", "kpihub.testing", "kpihub.testing.conformance"}
PLUGIN_FILES = sorted(p for p in (ROOT / "plugins").rglob("*.py") if "build" not in p.parts)


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line module`` for every import of a kpihub module that is not public."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "kpihub":  # `from kpihub import state` imports a module too
                modules += [f"kpihub.{a.name}" for a in node.names if f"kpihub.{a.name}" not in kpihub.__all__]
                modules = [m for m in modules if m == "kpihub" or _is_module(m)]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        for module in modules:
            if (module == "kpihub" or module.startswith("kpihub.")) and module not in PUBLIC_MODULES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {module}")
    return found


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_the_plugins_are_found():
    assert len({p.parts[len(ROOT.parts) + 1] for p in PLUGIN_FILES}) >= 7


def test_no_first_party_plugin_imports_a_private_core_module():
    found = [hit for path in PLUGIN_FILES for hit in private_imports(path)]
    assert not found, "private kpihub modules imported by plugins:\n" + "\n".join(found)


def test_the_scan_catches_a_private_import(tmp_path):
    bad = tmp_path / "plugin.py"
    bad.write_text("from kpihub.state import StateStore\nimport kpihub.normalize\nfrom kpihub import model\n")
    assert [hit.split(" ")[1] for hit in private_imports(bad, tmp_path)] == [
        "kpihub.state",
        "kpihub.normalize",
        "kpihub.model",
    ]


SETTINGS_IGNORE = re.compile(r"settings\b.*#\s*type:\s*ignore|#\s*type:\s*ignore.*settings")


def test_no_type_ignore_narrows_settings():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in PLUGIN_FILES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SETTINGS_IGNORE.search(line)
    ]
    assert not found, found


def _public_objects():
    for module in (kpihub, kpihub.http, kpihub.testing, kpihub.testing.conformance):
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isroutine(obj):
                yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize("qualname,obj", list(_public_objects()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_name_is_documented(qualname, obj):
    own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert (own or "").strip(), f"{qualname} has no docstring"


def _own_members(cls: type):
    """The public methods and properties ``cls`` itself defines (``vars``, not inherited)."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            yield name, value.fget
        elif isinstance(value, functools.cached_property):
            yield name, value.func
        elif inspect.isfunction(value):
            yield name, value


def _public_members():
    seen = set()
    for qualname, obj in _public_objects():
        if inspect.isclass(obj) and obj not in seen:
            seen.add(obj)
            for name, fn in _own_members(obj):
                yield f"{qualname}.{name}", fn


@pytest.mark.parametrize("qualname,fn", list(_public_members()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_method_and_property_is_documented(qualname, fn):
    assert (fn.__doc__ or "").strip(), f"{qualname} has no docstring"


def test_the_member_scan_sees_methods_properties_and_not_inherited_or_private_ones():
    class Base:
        def inherited(self): ...

    class Thing(Base):
        limit = 3

        def method(self): ...

        @property
        def prop(self): ...

        @functools.cached_property
        def cached(self): ...

        @classmethod
        def build(cls): ...

        @staticmethod
        def helper(): ...

        def _private(self): ...

    assert [name for name, _ in _own_members(Thing)] == ["method", "prop", "cached", "build", "helper"]


HOOKSPECS = {name: fn for name, fn in vars(kpihub.hookspecs).items() if name.startswith("kpihub_")}


def test_the_hook_specs_are_found():
    assert {"kpihub_register_sources", "kpihub_register_kpis", "kpihub_register_destinations"} <= set(HOOKSPECS)


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_every_hook_spec_is_documented(name):
    # STYLE.md 2: the docstring is the contract, a :param: line per argument, :returns:, versionadded.
    fn = HOOKSPECS[name]
    doc = fn.__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: {param} is undocumented"
    assert ":returns:" in doc and ".. versionadded::" in doc, f"{name}: no :returns: or versionadded"
