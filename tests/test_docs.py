"""Every hook is documented in docs/plugin_hooks.md with its exact arguments (as datasette checks)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from kpihub import hookspecs
from kpihub.model import CANONICAL_TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_hook_is_documented_with_its_arguments():
    text = (DOCS / "plugin_hooks.md").read_text()
    documented = dict(re.findall(r"^## (\w+)\(([^)]*)\)", text, flags=re.M))
    hooks = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("kpihub_")}
    assert set(documented) == set(hooks)
    for name, fn in hooks.items():
        assert documented[name].split(", ") == list(inspect.signature(fn).parameters)
        assert fn.__doc__ and ":param register:" in fn.__doc__


def test_every_canonical_column_is_documented():
    text = (DOCS / "canonical-model.md").read_text()
    for table in CANONICAL_TABLES.values():
        section = text.split(f"## {table.name}\n", 1)[1].split("\n## ", 1)[0]
        for field in table.schema:
            assert f"| `{field.name}` |" in section, f"{table.name}.{field.name} is not documented"
