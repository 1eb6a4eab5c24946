"""The public connector API is the whole contract: first-party plugins use only it, and it is documented.

A plugin that imports ``kpihub.state`` or ``kpihub.normalize`` breaks when the core is refactored;
a third-party author reading ours would copy the habit. Settings narrowed by ``# type: ignore``
mean the generics over the settings class are not doing their job.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import kpihub
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
