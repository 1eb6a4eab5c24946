"""Just enough GraphQL for the fake Shopify: parse a query document, project answers, price them.

Supports what the connector and Shopify's examples send: ``query Name($v: Type = default)`` and
``mutation Name(…)``, aliases, arguments (literals and ``$variables``), nested selection sets and
inline fragments (``... on BulkOperation { … }``, merged into the enclosing selection: the fake
knows each field's type). No named fragments, directives or subscriptions: the fake answers those
with a GraphQL error, as it would any query it cannot run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'(?P<block>"""(?:[^"\\]|\\.|"(?!""))*""")|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<punct>\.\.\.|[!$():=@\[\]{}|])|(?P<skip>[\s,]+|#[^\n]*)"
)


class GraphQLSyntaxError(ValueError):
    """The document is not one this parser reads (the fake answers with a GraphQL error)."""


@dataclass
class Selection:
    """A field as selected: ``alias: name(args) { selections }``."""

    name: str
    alias: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Selection] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.alias or self.name

    def child(self, name: str) -> Selection | None:
        return next((s for s in self.selections if s.name == name), None)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise GraphQLSyntaxError(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "skip":
            out.append((kind, m.group()))
    return out


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.variables = dict(variables)
        self.kind = "query"

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise GraphQLSyntaxError("unexpected end of document")
        tok = self.toks[self.i]
        if expected is not None and tok[1] != expected:
            raise GraphQLSyntaxError(f"expected {expected!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def document(self) -> list[Selection]:
        if self.peek() in ("subscription", "fragment"):
            raise GraphQLSyntaxError(f"the fake runs queries and mutations only, not a {self.peek()}")
        if self.peek() in ("query", "mutation"):
            self.kind = self.take()[1]
            if self.peek() not in ("(", "{"):
                self.take()  # the operation's name
            if self.peek() == "(":
                self.variable_definitions()
        selections = self.selection_set()
        if self.peek() is not None:
            raise GraphQLSyntaxError("one operation per document")
        return selections

    def variable_definitions(self) -> None:
        self.take("(")
        while self.peek() != ")":
            self.take("$")
            name = self.take()[1]
            self.take(":")
            self.type_ref()
            if self.peek() == "=":
                self.take()
                self.variables.setdefault(name, self.value())
        self.take(")")

    def type_ref(self) -> None:
        if self.peek() == "[":
            self.take()
            self.type_ref()
            self.take("]")
        else:
            self.take()
        if self.peek() == "!":
            self.take()

    def selection_set(self) -> list[Selection]:
        self.take("{")
        out = []
        while self.peek() != "}":
            if self.peek() == "...":
                self.take()
                if self.peek() != "on":
                    raise GraphQLSyntaxError("named fragments are not supported by the fake")
                self.take()
                self.take()  # the type condition: the fake knows what each field holds
                out.extend(self.selection_set())
                continue
            if self.peek() == "@":
                raise GraphQLSyntaxError("directives are not supported by the fake")
            name = self.take()[1]
            sel = Selection(name)
            if self.peek() == ":":
                self.take()
                sel.alias, sel.name = name, self.take()[1]
            if self.peek() == "(":
                self.take()
                while self.peek() != ")":
                    arg = self.take()[1]
                    self.take(":")
                    sel.args[arg] = self.value()
                self.take(")")
            if self.peek() == "{":
                sel.selections = self.selection_set()
            out.append(sel)
        self.take("}")
        return out

    def value(self) -> Any:
        kind, text = self.take()
        if text == "$":
            return self.variables.get(self.take()[1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "block":
            return text[3:-3]
        if kind == "string":
            return json.loads(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            obj = {}
            while self.peek() != "}":
                key = self.take()[1]
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        return text  # an enum value: UPDATED_AT


def parse(query: str, variables: Mapping[str, Any] | None = None) -> list[Selection]:
    """The top-level selections of a query document, arguments resolved against ``variables``."""
    return parse_operation(query, variables)[1]


def parse_operation(query: str, variables: Mapping[str, Any] | None = None) -> tuple[str, list[Selection]]:
    """``("query" | "mutation", top-level selections)`` of a document."""
    parser = _Parser(query, variables or {})
    selections = parser.document()
    return parser.kind, selections


def project(value: Any, selections: list[Selection]) -> Any:
    """``value`` cut down to the selected fields, under their aliases (what GraphQL answers)."""
    if isinstance(value, list):
        return [project(v, selections) for v in value]
    if not isinstance(value, Mapping) or not selections:
        return value
    return {s.key: project(value.get(s.name), s.selections) for s in selections}


def cost(selections: list[Selection], sizes: Mapping[int, int] | None = None) -> int:
    """A query's cost as shopify.dev's rate-limits page prices fields: a scalar or enum 0, an object
    1, a connection 2 + the objects it may return (``first``) — or returned, when ``sizes`` gives
    a connection's actual node count by ``id()`` of its selection (the actual cost)."""
    total = 0
    for s in selections:
        if not s.selections:
            continue
        if "first" in s.args:
            n = (sizes or {}).get(id(s), int(s.args.get("first") or 0))
            nodes = s.child("nodes") or s.child("edges")
            inner = cost(nodes.selections, sizes) + 1 if nodes is not None else 0
            others = cost([c for c in s.selections if c is not nodes], sizes)
            total += 2 + n * inner + others
        else:
            total += 1 + cost(s.selections, sizes)
    return total
