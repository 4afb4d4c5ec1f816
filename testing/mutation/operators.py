"""The mutations: small changes to one node of a module's syntax tree.

Each :class:`Mutant` is one change a real bug could be (a comparison turned, ``and`` for ``or``,
a constant off by one, a ``not`` dropped, a branch's condition forced). A test suite that
pins the module's behaviour fails on each of them; one that stays green has a gap, unless
the change is *equivalent* (it changes nothing observable), which a person decides once and
writes in ``testing/mutation/equivalents.toml``.

A mutant is named by where it is, stably across unrelated edits: the enclosing function's
qualified name, the operator, and its position among that function's mutants of the same
operator (``classify.classify_reply:compare:3``) — not by line number, which every edit above
it would change.

Not mutated: docstrings, annotations, logging and metric calls' arguments, string constants
(a changed message is seldom a bug, and would flood the list with equivalents).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Applies one mutation to the node it was found at (in a fresh copy of the tree).
Change = Callable[[ast.AST], None]

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
#: Calls whose arguments are for people or dashboards, not for what happens to mail.
_QUIET_CALLS = frozenset(
    {"debug", "info", "warning", "error", "exception", "inc", "observe", "set", "labels"}
)


@dataclass(frozen=True)
class Mutant:
    """One change to one module."""

    module: str  # path relative to the repository, e.g. "shared/wire/tokens.py"
    name: str  # "<function>:<operator>:<n>", stable across unrelated edits
    line: int
    description: str  # what changed, for people ("== -> !=")
    source: str  # the whole mutated module

    @property
    def ident(self) -> str:
        """``module::name``: how the equivalents list names it."""
        return f"{self.module}::{self.name}"


@dataclass
class _Site:
    path: tuple[tuple[str, int], ...]  # how to reach the node from the module (field, index)
    operator: str
    description: str
    line: int
    scope: str


def mutants(module: str, source: str) -> Iterator[Mutant]:
    """Every mutant of ``source`` (the text of ``module``), in source order."""
    tree = ast.parse(source)
    counts: dict[tuple[str, str], int] = {}
    for site, change in _sites(tree):
        key = (site.scope, site.operator)
        counts[key] = counts.get(key, 0) + 1
        mutated = copy.deepcopy(tree)
        node = _follow(mutated, site.path)
        change(node)
        yield Mutant(
            module=module,
            name=f"{site.scope}:{site.operator}:{counts[key]}",
            line=site.line,
            description=site.description,
            source=ast.unparse(mutated) + "\n",
        )


def _follow(tree: ast.AST, path: tuple[tuple[str, int], ...]) -> ast.AST:
    node: ast.AST = tree
    for field, index in path:
        value = getattr(node, field)
        node = value[index] if index >= 0 else value
    return node


def _sites(tree: ast.Module) -> Iterator[tuple[_Site, Change]]:
    yield from _walk(tree, (), "<module>")


def _walk(
    node: ast.AST, path: tuple[tuple[str, int], ...], scope: str
) -> Iterator[tuple[_Site, Change]]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        scope = node.name if scope == "<module>" else f"{scope}.{node.name}"
    yield from _here(node, path, scope)
    for field, value in ast.iter_fields(node):
        if field in {"annotation", "returns", "decorator_list", "type_comment"}:
            continue
        if _is_quiet(node):
            return
        if isinstance(value, list):
            for index, child in enumerate(value):
                if isinstance(child, ast.AST) and not _is_docstring(node, field, index, child):
                    yield from _walk(child, (*path, (field, index)), scope)
        elif isinstance(value, ast.AST):
            yield from _walk(value, (*path, (field, -1)), scope)


def _is_docstring(parent: ast.AST, field: str, index: int, child: ast.AST) -> bool:
    return (
        field == "body"
        and index == 0
        and isinstance(parent, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and isinstance(child, ast.Expr)
        and isinstance(child.value, ast.Constant)
        and isinstance(child.value.value, str)
    )


def _is_quiet(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _QUIET_CALLS
    )


def _here(
    node: ast.AST, path: tuple[tuple[str, int], ...], scope: str
) -> Iterator[tuple[_Site, Change]]:
    line = getattr(node, "lineno", 0)
    for operator, description, change in _changes(node):
        yield _Site(path, operator, description, line, scope), change


def _changes(node: ast.AST) -> Iterator[tuple[str, str, Change]]:
    """(operator, description, change) of every mutation of ``node`` itself."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap is not None:
                yield "compare", f"{_op(op)} -> {_op(swap())}", _set_op(index, swap)
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield "boolop", f"{_op(node.op)} -> {_op(other())}", _set_attr("op", other)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "not", "not x -> x", _unwrap_not
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        yield from _arithmetic(node)
    elif isinstance(node, ast.Constant):
        yield from _constant(node.value)
    elif isinstance(node, ast.If | ast.While | ast.IfExp):
        yield "condition", "condition -> True", _force_test(True)
        yield "condition", "condition -> False", _force_test(False)
    elif isinstance(node, ast.Return) and not _returns_none(node):
        yield "return", "return x -> return None", _set_return_none


def _arithmetic(node: ast.BinOp | ast.AugAssign) -> Iterator[tuple[str, str, Change]]:
    swap = _BINOP_SWAPS.get(type(node.op))
    if swap is None:
        return
    if isinstance(node, ast.AugAssign):
        yield "augassign", f"{_op(node.op)}= -> {_op(swap())}=", _set_attr("op", swap)
    else:
        yield "binop", f"{_op(node.op)} -> {_op(swap())}", _set_attr("op", swap)


def _constant(value: object) -> Iterator[tuple[str, str, Change]]:
    if isinstance(value, bool):
        yield "constant", f"{value} -> {not value}", _set_value(not value)
    elif isinstance(value, int | float):
        yield "constant", f"{value} -> {value + 1}", _set_value(value + 1)


def _returns_none(node: ast.Return) -> bool:
    return node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None)


def _op(op: ast.AST) -> str:
    return {
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
        ast.In: "in",
        ast.NotIn: "not in",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.And: "and",
        ast.Or: "or",
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.Pow: "**",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.LShift: "<<",
        ast.RShift: ">>",
    }.get(type(op), type(op).__name__)


def _set_op(index: int, kind: type[ast.cmpop]) -> Change:
    def change(target: ast.AST) -> None:
        assert isinstance(target, ast.Compare)
        target.ops[index] = kind()

    return change


def _set_attr(field: str, kind: type[ast.AST]) -> Change:
    def change(target: ast.AST) -> None:
        setattr(target, field, kind())

    return change


def _set_value(value: bool | int | float) -> Change:
    def change(target: ast.AST) -> None:
        assert isinstance(target, ast.Constant)
        target.value = value

    return change


def _unwrap_not(target: ast.AST) -> None:
    # The parent holds the UnaryOp, so the node stays and its meaning is inverted instead:
    # ``not not x`` has x's truth value, which is all a ``not`` feeds.
    assert isinstance(target, ast.UnaryOp)
    target.operand = ast.UnaryOp(op=ast.Not(), operand=target.operand)


def _force_test(value: bool) -> Change:
    def change(target: ast.AST) -> None:
        assert isinstance(target, ast.If | ast.While | ast.IfExp)
        target.test = ast.Constant(value=value)

    return change


def _set_return_none(target: ast.AST) -> None:
    assert isinstance(target, ast.Return)
    target.value = ast.Constant(value=None)
