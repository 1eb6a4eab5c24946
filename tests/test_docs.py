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


def _catalogue_section() -> tuple[str, str, str]:
    text = (DOCS / "kpis.md").read_text()
    head, rest = text.split("<!-- catalogue:start -->\n")
    body, tail = rest.split("<!-- catalogue:end -->")
    return head, body, tail


def test_kpi_catalogue_in_the_docs_is_generated_from_the_definitions():
    from kpihub.kpis.catalog import catalog_markdown
    from kpihub.plugins import Registry

    kpis = Registry(load_entrypoints=False).kpis.values()
    _, body, _ = _catalogue_section()
    assert body == catalog_markdown(kpis), (
        "docs/kpis.md is out of date: run `kpihub kpis --list --format markdown` and paste it between the markers"
    )
    for kpi in kpis:  # each built-in says what it is, where it sits in the funnel and where it comes from
        assert kpi.description and kpi.stage and kpi.reference, kpi.id
