"""The checker's passes: each is a strict visitor with a rule for every IR class, each
finds its own kind of problem alone, and together they are what ``check`` says."""

from __future__ import annotations

import typing

import pytest

from dpcdsl.lang import ir
from dpcdsl.lang._node import IRNode
from dpcdsl.lang.checker import PASSES, check
from dpcdsl.lang.checker._base import Pass
from dpcdsl.lang.program import load_text

SURFACE = {c.__name__ for u in (ir.Expr, ir.Statement, ir.Item) for c in typing.get_args(u)}
SURFACE |= {"Param", "Module"}


def test_the_surface_classes_are_all_of_them() -> None:
    found = {name for name, obj in vars(ir).items() if isinstance(obj, type)
             and issubclass(obj, IRNode) and obj.__module__ == "dpcdsl.lang.ir" and name != "Stmt"}
    assert found == SURFACE


@pytest.mark.parametrize("cls", PASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("node", sorted(SURFACE))
def test_every_pass_has_a_rule_for_every_ir_class(cls: type[Pass], node: str) -> None:
    assert cls.strict
    assert node in cls.handles()


@pytest.mark.parametrize("cls", PASSES, ids=lambda c: c.__name__)
def test_a_class_no_pass_knows_is_an_error_in_every_pass(cls: type[Pass]) -> None:
    class Odd(IRNode):
        pass

    with pytest.raises(TypeError, match=f"{cls.__name__} does not handle Odd"):
        cls(load_text("cell a(x) { return x }")).visit(Odd())


# each pass alone finds its own problems, and no other pass finds them
OWN = {
    "Names": ("cell a(x) { y = conv(z) y = relu(x) return q }", {"DPC201", "DPC203"}),
    "Values": ("cell a(x) { y = conv(x, kernel = {1, 1}) return conv(y, rate = 0) }",
               {"DPC402", "DPC401"}),
    "Calls": ("cell a(x) { y = convv(x) return conv(x, x, kernal = 3) }",
              {"DPC301", "DPC302", "DPC305"}),
    "Recursion": ("cell a(x) { return a(x) }", {"DPC504"}),
    "Shapes": ("cell a(x) { y = conv(x, channels = 8) z = conv(x, channels = 16) "
               "return sum(y, z) }", {"DPC601"}),
}


@pytest.mark.parametrize("cls", PASSES, ids=lambda c: c.__name__)
def test_each_pass_finds_its_own_problems(cls: type[Pass]) -> None:
    text, codes = OWN[cls.__name__]
    program = load_text(text)
    assert {d.code for d in cls(program).run()} == codes
    for other in PASSES:  # (the shapes pass runs on sound texts only)
        if other is not cls and not other.needs_clean:
            assert not {d.code for d in other(program).run()} & codes, other.__name__
    assert codes <= {d.code for d in check(program)}


def test_the_shapes_pass_waits_for_a_sound_text() -> None:
    (shapes,) = [p for p in PASSES if p.needs_clean]
    text = "cell a(x) { y = conv(x, channels = 8) z = conv(x, channels = 16) " \
           "w = sum(y, z) return relu(NAME) }"
    assert {d.code for d in check(load_text(text.replace("NAME", "w")))} == {"DPC601"}
    assert {d.code for d in check(load_text(text.replace("NAME", "q")))} == {"DPC201"}
    assert shapes.__name__ == "Shapes"
