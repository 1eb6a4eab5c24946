"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``): the pages generated from the code.

- ``index.md`` is the README, ``connectors/<dist>.md`` each plugin's README, with their
  repository-relative links pointed at the pages the site carries (a link to a file the
  site does not carry keeps its text and loses the link);
- ``reference/<module>.md``: a ``::: name`` block of mkdocstrings per name in the public
  modules' ``__all__``, so a new public name is in the reference without an edit;
- ``reference/kpi-catalogue.md``: the built-in KPI definitions as the registry holds them;
- ``reference/canonical-tables.md``: each canonical table's Arrow schema and key.

Also a griffe extension (``SphinxRoles``) that renders the Sphinx roles of kpihub's docstrings
(``:class:`~kpihub.Source```, ``.. versionadded::``) as Markdown.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import griffe
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent
#: The public modules and their reference pages (``kpihub/__init__.py``: plugins import only these).
REFERENCE = {
    "kpihub": ("reference/api.md", "Connector API: kpihub"),
    "kpihub.http": ("reference/http.md", "HTTP toolkit: kpihub.http"),
    "kpihub.testing": ("reference/testing.md", "Testing kit: kpihub.testing"),
    "kpihub.testing.conformance": ("reference/conformance.md", "Conformance suites: kpihub.testing.conformance"),
}
PLUGIN_READMES = sorted(ROOT.glob("plugins/*/README.md"))
# Code (fenced blocks, inline spans) first, so a link-shaped ``a[0](b)`` in code stays as it is.
_LINK = re.compile(
    r"(?P<code>^(```|~~~).*?^\2|`[^`\n]+`)|(?<!!)\[(?P<label>[^\]]*)\]\((?P<target>[^)\s]+)\)", re.M | re.S
)


def on_files(files: Files, config: Any) -> Files:
    pages = {
        "index.md": _relink(_read(ROOT / "README.md"), ROOT, depth=0),
        "reference/hooks.md": _hooks_page(),
        "reference/kpi-catalogue.md": kpi_catalogue(),
        "reference/canonical-tables.md": canonical_tables(),
    }
    for readme in PLUGIN_READMES:
        pages[f"connectors/{readme.parent.name}.md"] = _relink(_read(readme), readme.parent, depth=1)
    for module, (path, title) in REFERENCE.items():
        pages[path] = reference_page(module, title)
    for path, text in pages.items():
        files.append(File.generated(config, path, content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    # docs/*.md link to the plugins' READMEs as the repository has them (../plugins/...).
    if page.file.generated_by is not None:
        return markdown
    src = Path(page.file.abs_src_path)
    return _relink(markdown, src.parent, depth=len(Path(page.file.src_uri).parts) - 1)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _relink(text: str, base: Path, *, depth: int) -> str:
    """Point the links of a repository Markdown file (``base`` its directory) at the site's pages.

    ``depth`` is how deep the page sits in the site: its links are relative to its directory.
    """

    def sub(match: re.Match[str]) -> str:
        if match.group("code"):
            return match.group(0)
        label, target = match.group("label", "target")
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        where = (base / path).resolve()
        try:
            rel = where.relative_to(ROOT)
        except ValueError:
            return label
        parts = rel.parts
        if rel == Path("README.md"):
            page = "index.md"
        elif parts[:1] == ("docs",) and rel.suffix == ".md":
            page = "/".join(parts[1:])
        elif parts[:1] == ("plugins",) and parts[-1] == "README.md" and len(parts) == 3:
            page = f"connectors/{parts[1]}.md"
        else:
            return label  # a file the site does not carry: keep the words
        return f"[{label}]({'../' * depth}{page}{'#' + anchor if anchor else ''})"

    return _LINK.sub(sub, text)


def _hooks_page() -> str:
    return (
        "# Hook reference\n\n"
        "The hook specs of `kpihub.hookspecs`, rendered from their docstrings (the contract). "
        "[Plugin hooks](../plugin_hooks.md) has a runnable example of each.\n\n"
        "::: kpihub.hookspecs\n"
        "    options:\n"
        "      show_root_heading: false\n"
        "      members_order: source\n"
    )


def reference_page(module_name: str, title: str) -> str:
    """One ``:::`` block per public name of ``module_name``, in ``__all__`` order."""
    module = importlib.import_module(module_name)
    out = [f"# {title}", "", "::: " + module_name, "    options:", "      members: false", ""]
    out += ["Generated from `__all__` and the docstrings; every name below is public API.", ""]
    for name in module.__all__:
        if name.startswith("__"):
            continue
        out += [f"::: {_defined_at(module, name)}", "    options:", "      show_root_full_path: false", ""]
    return "\n".join(out)


def _defined_at(module: Any, name: str) -> str:
    """The dotted path griffe finds ``module.name`` at (lazy ``__getattr__`` names at their home)."""
    obj = getattr(module, name)
    if (inspect.isclass(obj) or inspect.isroutine(obj)) and obj.__module__.startswith("kpihub"):
        return f"{obj.__module__}.{obj.__qualname__}"
    if name in vars(module):
        return f"{module.__name__}.{name}"
    for home in ("kpihub.cli.main",):  # kpihub.testing loads the CLI's names lazily
        if hasattr(importlib.import_module(home), name):
            return f"{home}.{name}"
    raise LookupError(f"{module.__name__}.{name}: no module defines it")


def kpi_catalogue() -> str:
    """The built-in KPIs, by funnel stage: id, title, unit, direction, kind, tables, description."""
    from kpihub.kpis.catalog import catalog_rows
    from kpihub.plugins import Registry

    kpis = Registry(load_entrypoints=False).kpis
    out = [
        "# KPI catalogue",
        "",
        f"The {len(kpis)} KPIs kpihub registers itself (`kpihub kpis --list` adds the installed plugins'), "
        "generated from their definitions when the site is built. How each kind is computed, targets and "
        "the status rule: [KPIs, targets and scorecards](../kpis.md).",
    ]
    stage: object = object()
    for row in catalog_rows(kpis.values()):
        if row["stage"] != stage:
            stage = row["stage"]
            out += ["", f"## {stage or 'Other'}", ""]
            out += [
                "| id | title | unit | better | kind | tables | description |",
                "|---|---|---|---|---|---|---|",
            ]
        kpi = kpis[row["kpi"]]
        tables = ", ".join(f"`{t}`" for t in kpi.tables) or "—"
        cells = [f"`{kpi.id}`", kpi.title, kpi.unit, kpi.direction, kpi.kind, tables, kpi.description]
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def canonical_tables() -> str:
    """Each canonical table's primary key, grain, time column and Arrow columns."""
    from kpihub.model import CANONICAL_TABLES

    out = [
        "# Canonical tables",
        "",
        "The Arrow schemas of `kpihub.model`, generated when the site is built. What each column means: "
        "[the canonical model](../canonical-model.md).",
    ]
    for table in CANONICAL_TABLES.values():
        out += ["", f"## {table.name}", ""]
        out += [f"Grain: {table.grain}. Primary key: {', '.join(f'`{k}`' for k in table.primary_key)}."]
        if table.time_column:
            out[-1] += f" Time column: `{table.time_column}`."
        out += ["", "| column | Arrow type | nullable | adds up |", "|---|---|---|---|"]
        for field in table.schema:
            meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
            adds = meta.get("kpihub.additivity", "")
            if "kpihub.adds_up_to" in meta:
                adds += f" (within a {meta['kpihub.adds_up_to']})"
            out.append(f"| `{field.name}` | `{field.type}` | {'yes' if field.nullable else 'no'} | {adds} |")
    return "\n".join(out) + "\n"


_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj|py:\w+):`(~?)([^`]+)`")
_VERSION = re.compile(r"^\.\. (versionadded|versionchanged|deprecated):: (.+)$", re.M)


def sphinx_to_markdown(text: str) -> str:
    """``:class:`~a.B``` -> ```B```, ``:func:`a.b``` -> ```a.b```; ``.. versionadded:: 0.1`` -> a line;
    ``group::`` before a code block -> ``group:``."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.M)  # reST's "text::" before an indented code block
    words = {"versionadded": "New in version", "versionchanged": "Changed in version", "deprecated": "Deprecated in"}
    return _VERSION.sub(lambda m: f"*{words[m.group(1)]} {m.group(2)}.*", text)


class SphinxRoles(griffe.Extension):
    """Rewrite each docstring's Sphinx roles before mkdocstrings renders it as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = sphinx_to_markdown(obj.docstring.value)
