"""Every error billing raises reads in the portal's languages: its English template is a
msgid of the es-MX and pt-BR catalogues, and each translation keeps the template's slots.

The portal shows a `Cam2DriveError` through web/portal/pages.py `error_text`: the
template (an `InvalidField`'s field name and reason) looked up in the catalogue, the
slots filled after. The templates are read from the source with `ast`: the first
argument of every `raise` of a `Cam2DriveError` subclass (an `InvalidField`'s first
two) in billing/ and in the portal's views, followed where it is not a literal: a
module constant or dict of them, a local variable, a loop over a literal table, a
parameter (the literals its callers pass), a function's returned strings, both
branches of a conditional, a `+` of such.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from web.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "billing", ROOT / "web" / "portal")
SLOT = re.compile(r"%\((\w+)\)[a-z]")
BASE = "Cam2DriveError"
Scope = ast.FunctionDef | ast.AsyncFunctionDef | ast.Module


@dataclass(frozen=True)
class Raised:
    where: str  # path:line
    error: str  # the class raised
    texts: tuple[str, ...]  # its msgids: the templates it may carry (and a field name)
    unread: tuple[str, ...]  # what no template could be read from (an f-string...)


@cache
def modules() -> tuple[tuple[Path, ast.Module], ...]:
    found = []
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    child.parent = node  # type: ignore[attr-defined]
            found.append((path, tree))
    return tuple(found)


def _name(node: ast.expr) -> str:
    """`NotFound` for `NotFound` and for `errors.NotFound`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


@cache
def error_classes() -> dict[str, str]:
    """Every Cam2DriveError subclass defined here, to InvalidField or Cam2DriveError."""
    bases = {
        node.name: [_name(b) for b in node.bases]
        for _, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }

    def root(name: str, seen: frozenset[str] = frozenset()) -> str:
        if name in ("InvalidField", BASE):
            return name
        for base in bases.get(name, []):
            if base not in seen and (found := root(base, seen | {name})):
                return found
        return ""

    return {name: kind for name in bases if (kind := root(name))} | {BASE: BASE}


@cache
def functions() -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for _, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def _scopes(node: ast.AST) -> list[Scope]:
    """The functions around `node`, innermost first, then its module."""
    out: list[Scope] = []
    while (node := getattr(node, "parent", None)) is not None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            out.append(node)
    return out


class Reader:
    """The strings an expression may hold; what cannot be read goes to `unread`."""

    def __init__(self) -> None:
        self.unread: list[str] = []
        self.seen: set[int] = set()

    def texts(self, node: ast.expr) -> list[str]:
        if id(node) in self.seen:  # a recursion through callers: nothing new
            return []
        self.seen.add(id(node))
        found = self._texts(node)
        if found is None:
            self.unread.append(ast.unparse(node)[:80])
            return []
        return found

    def _texts(self, node: ast.expr) -> list[str] | None:
        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else []
        if isinstance(node, ast.IfExp):
            return self.texts(node.body) + self.texts(node.orelse)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pairs = itertools.product(self.texts(node.left), self.texts(node.right))
            return [a + b for a, b in pairs]
        if isinstance(node, ast.Name):
            return self._variable(node)
        if isinstance(node, ast.Subscript):  # TABLE[key]: any of its values
            return self._table(node.value)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get":  # TABLE.get(k, default)
                table = self._table(func.value)
                return None if table is None else table + self._all(node.args[1:])
            defs = functions().get(_name(func), [])
            returns = [
                r.value for f in defs for r in ast.walk(f) if isinstance(r, ast.Return) and r.value
            ]
            return self._all(returns) if returns else None
        return None  # an f-string, or anything else computed

    def _all(self, nodes: list[ast.expr]) -> list[str]:
        return [t for n in nodes for t in self.texts(n)]

    def _table(self, node: ast.expr) -> list[str] | None:
        for value in self._bound(node) if isinstance(node, ast.Name) else []:
            if isinstance(value, ast.Dict):
                return self._all([v for v in value.values if v is not None])
        return None

    def _bound(self, name: ast.Name) -> list[ast.expr]:
        """The values `name` is assigned in its innermost scope that assigns it."""
        for scope in _scopes(name):
            values = [
                a.value
                for a in ast.walk(scope)
                if isinstance(a, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name.id for t in a.targets)
                and _scopes(a)[0] is scope
            ]
            if values:
                return values
        return []

    def _variable(self, name: ast.Name) -> list[str] | None:
        if values := self._bound(name):
            return self._all(values)
        for scope in _scopes(name):
            for loop in ast.walk(scope):  # for a, b, ... in ((...), (...)): b's literals
                if (
                    isinstance(loop, ast.For)
                    and isinstance(loop.target, ast.Tuple)
                    and isinstance(loop.iter, ast.Tuple | ast.List)
                ):
                    names = [_name(t) for t in loop.target.elts]
                    if name.id in names:
                        at = names.index(name.id)
                        rows = [r for r in loop.iter.elts if isinstance(r, ast.Tuple)]
                        return self._all([r.elts[at] for r in rows])
            if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
                params = [a.arg for a in scope.args.args]
                if name.id in params:
                    return self._passed(scope.name, params.index(name.id), name.id)
        return None

    def _passed(self, function: str, at: int, param: str) -> list[str]:
        """What the callers of `function` pass as its parameter number `at`."""
        given = []
        for _, tree in modules():
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and _name(call.func) == function:
                    given += call.args[at : at + 1]
                    given += [k.value for k in call.keywords if k.arg == param]
        return self._all(given)


def raised() -> list[Raised]:
    classes = error_classes()
    found = []
    for path, tree in modules():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            error = _name(node.exc.func)
            if error not in classes:
                continue
            args = node.exc.args[: 2 if classes[error] == "InvalidField" else 1]
            reader = Reader()
            texts = reader._all(list(args))
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append(Raised(where, error, tuple(texts), tuple(reader.unread)))
    return found


def test_the_scan_finds_billings_errors() -> None:
    """The reader is not blind: templates of every shape are among those found."""
    texts = {t for r in raised() for t in r.texts}
    assert "a customer with email %(email)s already exists" in texts  # a literal
    assert {"customer.email", "is not an email address"} <= texts  # an InvalidField's two
    assert "viewing refused: the contract is suspended" in texts  # a module table's value
    assert "the PAC refused the CFDI: %(error)s" in texts  # what callers pass
    assert len(texts) > 100


@pytest.mark.parametrize("code", ["es", "pt"])
def test_every_error_template_is_translated_with_its_slots(code: str) -> None:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalogue = read_po(fh)
    problems = set()
    for r in raised():
        for text in r.texts:
            message = catalogue.get(text)
            if message is None or not message.string:
                problems.add(f"{r.where} {r.error}: untranslated {text!r}")
                continue
            slots, kept = set(SLOT.findall(text)), set(SLOT.findall(str(message.string)))
            if slots != kept:
                problems.add(f"{r.where} {r.error}: {text!r} -> {message.string!r} slots {kept}")
    assert sorted(problems) == []


def test_every_error_message_is_a_readable_template() -> None:
    """An f-string (or anything computed) raised as a message could never be translated."""
    unread = [f"{r.where} {r.error}: {', '.join(r.unread)}" for r in raised() if r.unread]
    assert unread == []
