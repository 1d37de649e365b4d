"""The canonical formatter.

``format_module(parse(x)) == x`` for canonical text ``x``, and
``parse(format_module(m)) == m`` for every module ``m``. Flat cells print through
:func:`print_cell`, one node per line, defaults left out.
"""

from __future__ import annotations

from typing import Any

from dpcdsl import limits
from dpcdsl.errors import DpcError, Span
from dpcdsl.lang import ir
from dpcdsl.lang._arith import arith_text
from dpcdsl.lang._node import Visitor
from dpcdsl.lang.flat import INDENT, node_call, print_cell
from dpcdsl.lang.flat import float_text as _float
from dpcdsl.lang.syntax import parse

WIDTH = 88


class ExprPrinter(Visitor[str]):
    """One expression as canonical text; every expression class has its method."""

    strict = True

    def visit_Int(self, e: ir.Int) -> str:
        return str(e.value)

    def visit_Float(self, e: ir.Float) -> str:
        return _float(e.value)

    def visit_Bool(self, e: ir.Bool) -> str:
        return "true" if e.value else "false"

    def visit_Name(self, e: ir.Name) -> str:
        return e.id

    def visit_ChannelsOf(self, e: ir.ChannelsOf) -> str:
        return f"{e.tensor.id}.channels"

    def visit_Earlier(self, e: ir.Earlier) -> str:
        return "earlier"

    def visit_Tuple(self, e: ir.Tuple) -> str:
        inner = _args(e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"

    def visit_SetLit(self, e: ir.SetLit) -> str:
        return "{" + _args(e.items) + "}"

    def visit_Kwarg(self, e: ir.Kwarg) -> str:
        return f"{e.name} = {self.visit(e.value)}"

    def visit_Call(self, e: ir.Call) -> str:
        return f"{e.func}({_args((*e.args, *e.kwargs))})"

    def visit_OneOf(self, e: ir.OneOf) -> str:
        text = f"one_of({_args(e.options)})"
        return text if e.apply is None else f"{text}({_args(e.apply)})"

    def visit_Arith(self, e: ir.Arith) -> str:
        return arith_text(e, self.visit)


_EXPR = ExprPrinter()


def print_expr(e: Any) -> str:
    """The canonical text of an expression."""
    return _EXPR.visit(e)


def _args(items: Any) -> str:
    return ", ".join(print_expr(i) for i in items)


def _value(e: Any, indent: str, lead: str) -> list[str]:
    """Print ``lead + e``; a long applied/plain one_of puts one option per line."""
    flat = lead + print_expr(e)
    if len(indent) + len(flat) <= WIDTH or not isinstance(e, ir.OneOf):
        return [indent + flat]
    lines = [indent + lead + "one_of("]
    lines += [indent + INDENT + print_expr(o) + "," for o in e.options]
    close = ")" if e.apply is None else f")({_args(e.apply)})"
    return lines + [indent + close]


class StmtPrinter(Visitor[list[str]]):
    """One statement or top-level item as lines of canonical text, after its comments;
    every statement class has its method."""

    strict = True

    def visit_Let(self, s: ir.Let, indent: str) -> list[str]:
        return _value(s.value, indent, f"let {s.name} = ")

    def visit_Assign(self, s: ir.Assign, indent: str) -> list[str]:
        return _value(s.value, indent, f"{s.target} = ")

    def visit_Return(self, s: ir.Return, indent: str) -> list[str]:
        return _value(s.value, indent, "return ")

    def visit_Import(self, s: ir.Import, indent: str) -> list[str]:
        return [f'{indent}import "{s.path}"']

    def visit_Repeat(self, s: ir.Repeat, indent: str) -> list[str]:
        return [f"{indent}repeat {s.count} as {s.name} {{",
                *_block(s.body, indent + INDENT), indent + "}"]

    def visit_For(self, s: ir.For, indent: str) -> list[str]:
        items = print_expr(ir.Tuple(items=s.items))
        return [f"{indent}for {', '.join(s.names)} in {items} {{",
                *_block(s.body, indent + INDENT), indent + "}"]

    def visit_CellDef(self, s: ir.CellDef, indent: str) -> list[str]:
        params = ", ".join(
            (p.name if p.level is None else f"{p.name} @ {p.level}")
            + ("" if p.default is None else f" = {print_expr(p.default)}")
            for p in s.params
        )
        depth = "" if s.depth is None else f" depth {s.depth}"
        return [f"{indent}cell {s.name}({params}){depth} {{",
                *_block(s.body, indent + INDENT), indent + "}"]


_STMT = StmtPrinter()


def _stmt(s: Any, indent: str) -> list[str]:
    return [indent + c for c in s.comments] + _STMT.visit(s, indent)


def _block(body: Any, indent: str) -> list[str]:
    lines: list[str] = []
    for i, s in enumerate(body):
        if i and s.blank_before:
            lines.append("")
        lines += _stmt(s, indent)
    return lines


def format_module(module: ir.Module) -> str:
    """The canonical text of a module, ending in one newline."""
    with limits.stack_guard(module.span, "the module"):
        return _format_module(module)


NOT_CLOSED = ("formatting {file} gave text that does not parse back to the same program; "
              "the file is left as it is")


def formatted(text: str, file: str = "<string>") -> str:
    """The canonical text of ``text``, checked to parse back to the same module (so
    ``dpcc fmt`` never writes a file it would change the meaning of)."""
    module = parse(text, file)
    out = format_module(module)
    try:
        same = parse(out, file) == module
    except DpcError:
        same = False
    if not same:
        raise DpcError.at(module.span or Span(file=file), NOT_CLOSED.format(file=file),
                          hint="please report this input: it is a formatter bug",
                          sources={file: text}, code="DPC905")
    return out


def _format_module(module: ir.Module) -> str:
    lines: list[str] = []
    for i, item in enumerate(module.items):
        if i and (item.blank_before or isinstance(item, ir.CellDef)
                  or isinstance(module.items[i - 1], ir.CellDef)):
            lines.append("")
        lines += _stmt(item, "")
    if module.trailing_comments:
        if lines:
            lines.append("")
        lines += list(module.trailing_comments)
    return "\n".join(lines) + "\n" if lines else ""


__all__ = ["ExprPrinter", "StmtPrinter", "format_module", "formatted", "node_call", "print_cell",
           "print_expr"]
