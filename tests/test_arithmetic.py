"""Integer arithmetic on values (``channels // 4``, ``2 * k + 1``): parsed with the usual
precedence, printed back with the parentheses the tree needs, checked, counted and built
(a set operand makes a set of the distinct results)."""

from __future__ import annotations

import pytest

from dpcdsl.lang import ir
from dpcdsl.lang.checker import check
from dpcdsl.lang.params import with_params
from dpcdsl.lang.printer import format_module, print_expr
from dpcdsl.lang.program import load_text
from dpcdsl.lang.space import Space
from dpcdsl.lang.syntax import parse


def value(text: str) -> ir.Arith:
    return parse(f"let v = {text}").items[0].value


@pytest.mark.parametrize("text, tree", [
    ("1 + 2 * 3", ("+", 1, ("*", 2, 3))),
    ("(1 + 2) * 3", ("*", ("+", 1, 2), 3)),
    ("8 - 2 - 1", ("-", ("-", 8, 2), 1)),
    ("8 - (2 - 1)", ("-", 8, ("-", 2, 1))),
    ("64 // 4 // 2", ("//", ("//", 64, 4), 2)),
    ("w * 2 + k // 2", ("+", ("*", "w", 2), ("//", "k", 2))),
])
def test_precedence_and_the_text_it_prints_back(text: str, tree: tuple) -> None:
    def shape(e):
        if isinstance(e, ir.Arith):
            return (e.op, shape(e.left), shape(e.right))
        return e.value if isinstance(e, ir.Int) else e.id

    e = value(text)
    assert shape(e) == tree
    assert print_expr(e) == text and value(print_expr(e)) == e


def test_a_cells_widths_come_from_its_parameters() -> None:
    text = ("cell block(x, width = 64, out = 32) {\n"
            "  a = conv(x, kernel = 1, channels = width // 4)\n"
            "  b = upconv(a, channels = width // 4)\n"
            "  return conv(b, kernel = 2 * 0 + 1, channels = out)\n}\n"
            "cell two(x) { return block(block(x, width = 128, out = 64), width = 64) }\n")
    program = load_text(text)
    assert check(program) == []
    nodes = {n.name: n for n in Space(program, "two").concrete().nodes}
    assert nodes["out_in_block_a"].attr("channels") == 32
    assert nodes["out_a"].attr("channels") == 16
    assert parse(format_module(parse(text))) == parse(text)


def test_a_set_operand_makes_a_choice_of_the_distinct_results() -> None:
    space = Space.from_text("cell a(x) { return conv(x, kernel = {0, 1, 2} * 2 + 1) }")
    assert space.count() == 3
    assert sorted(c.nodes[0].attr("kernel") for c in space.enumerate()) == [1, 3, 5]
    # {2, 3} // 2 is {1}: one architecture, not two
    assert Space.from_text("cell a(x) { return conv(x, kernel = {2, 3} // 2) }").count() == 1


def test_a_parameter_set_from_outside_may_be_arithmetic() -> None:
    program = load_text("cell a(x, w = 8) { return conv(x, channels = w) }")
    cell = Space(with_params(program, None, {"w": value("64 // 4")})).concrete()
    assert cell.nodes[0].attr("channels") == 16


@pytest.mark.parametrize("text, code, message", [
    ("conv(x, channels = 8 // 0)", "DPC401", "division by 0"),
    ("conv(x, channels = 0.5 * 8)", "DPC401", "arithmetic takes integers, got 0.5"),
    ("conv(x, channels = 4 - 4)", "DPC401",
     "conv(channels = ...): expected a positive integer, got 0"),
    ("conv(x, channels = q + 1)", "DPC201", "undefined name 'q'"),
    ("conv(x + 1)", "DPC211", "a tensor is needed here, not a value"),
    ("conv(x, channels = y * 2)", "DPC213", "'y' is a tensor, but a value is needed here"),
    ("conv(x, kernel = {3, 1 + 2})", "DPC402", "a set lists the same value twice"),
])
def test_bad_arithmetic_is_named(text: str, code: str, message: str) -> None:
    diags = check(load_text(f"cell a(x) {{ y = relu(x) return {text} }}"))
    assert [(d.code, d.message) for d in diags] == [(code, message)]
