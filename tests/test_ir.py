"""The one IR traversal: children derived from fields, and visitors that handle every
IR class (a new class that a visitor does not handle fails here)."""

from __future__ import annotations

import typing

import pytest

from dpcdsl.lang import _expand, ir
from dpcdsl.lang._node import IRNode, Visitor
from dpcdsl.lang.printer import ExprPrinter, StmtPrinter
from dpcdsl.lang.syntax import parse

EXPRS = {c.__name__ for c in typing.get_args(ir.Expr)}
STATEMENTS = {c.__name__ for c in typing.get_args(ir.Statement)}
ITEMS = {c.__name__ for c in typing.get_args(ir.Item)}


def _surface_classes() -> set[str]:
    out = set()
    for name, obj in vars(ir).items():
        if isinstance(obj, type) and issubclass(obj, IRNode) and obj.__module__ == "dpcdsl.lang.ir" \
                and name not in ("Stmt",):
            out.add(name)
    return out


def test_the_unions_name_every_surface_class() -> None:
    structural = {"Param", "Module"}  # parts of cells and files, not expressions or statements
    assert _surface_classes() == EXPRS | STATEMENTS | ITEMS | structural


def test_the_printers_handle_every_class() -> None:
    assert ExprPrinter.strict and StmtPrinter.strict
    assert EXPRS <= ExprPrinter.handles()
    assert STATEMENTS | ITEMS <= StmtPrinter.handles()


def test_the_expander_describes_every_statement_class_once() -> None:
    # one description per statement, which building and counting both run
    assert {c.__name__ for c in _expand._WALKS} == STATEMENTS


def test_children_come_from_the_fields() -> None:
    module = parse("cell a(x) { y = conv(x, rate = {1, 2}) return one_of(y, x) }")
    cell = module.items[0]
    kinds = [type(n).__name__ for n in cell.walk()]
    assert kinds[:2] == ["CellDef", "Param"]
    assert {"Call", "Kwarg", "SetLit", "Int", "OneOf", "Name", "Return"} <= set(kinds)
    call = next(n for n in cell.walk() if isinstance(n, ir.Call))
    assert [type(c).__name__ for c in call.children()] == ["Name", "Kwarg"]


def test_a_strict_visitor_refuses_an_unhandled_class() -> None:
    class Partial(Visitor[str]):
        strict = True

        def visit_Int(self, e: ir.Int) -> str:
            return "int"

    assert Partial().visit(ir.Int(value=1)) == "int"
    with pytest.raises(TypeError, match="does not handle Float"):
        Partial().visit(ir.Float(value=1.0))


@pytest.mark.slow
def test_the_default_visit_reaches_every_node() -> None:
    class Names(Visitor[None]):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def visit_Name(self, e: ir.Name) -> None:
            self.seen.append(e.id)

    v = Names()
    v.visit(parse("cell a(x) { y = conv(x) return concat(y, x) }"))
    assert v.seen == ["x", "y", "x"]
