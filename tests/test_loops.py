"""``for`` loops: a block written once for every level of a decoder. The body runs once
per item, its nodes named with the item's index; a name defined before the loop is
carried down the items; counting, sampling, encoding, formatting and checking see the
unrolled statements. (The library's U-Net, Linknet, MAnet and UPerNet are written with
loops and tested equal to smp's modules in tests/heads.)"""

from __future__ import annotations

import pytest

import dpcdsl
from dpcdsl.lang._expand import Expander, depth_first
from dpcdsl.lang.printer import formatted
from dpcdsl.lang.space import Space

DECODER = """cell dec(c8 @ 8, c16 @ 16, c32 @ 32, d16 = 16, d8 = 8) {
  x = c32
  for skip, width in ((c16, d16), (c8, d8)) {
    up = upsample(x, like = skip)
    x = conv(concat(up, skip), kernel = {1, 3}, channels = width)
  }
  return sum(x, resize(conv(x0, kernel = 1, channels = d8), scale = 2))
}
"""
CHANNELS = {"c8": 4, "c16": 6, "c32": 8}


def codes(text: str) -> list[str]:
    return [d.code for d in dpcdsl.check(dpcdsl.load_text(text))]


def test_the_body_runs_once_per_item_with_its_nodes_numbered() -> None:
    space = Space.from_text(DECODER)
    assert space.count() == 4  # a kernel choice per item
    cell = space.decode({"x0.kernel": 1, "x1.kernel": 0})
    assert [(n.name, n.op, n.inputs) for n in cell.nodes][:6] == [
        ("up0", "upsample", ("c32", "c16")), ("x0_concat", "concat", ("up0", "c16")),
        ("x0", "conv", ("x0_concat",)), ("up1", "upsample", ("x0", "c8")),
        ("x1_concat", "concat", ("up1", "c8")), ("x1", "conv", ("x1_concat",))]
    assert [cell.node(n).attr("channels") for n in ("x0", "x1")] == [16, 8]
    assert [cell.node(n).attr("kernel") for n in ("x0", "x1")] == [3, 1]
    # after the loop, x is the last item's and x0 the first's
    assert cell.node("out").inputs == ("x1", "out_resize")
    assert cell.node("out_resize_conv").inputs == ("x0",)


def test_count_sampling_and_encoding_agree_with_enumeration() -> None:
    space = Space.from_text(DECODER)
    found = [c for c, _ in depth_first(Expander(space.program, space.program.cell()), None)]
    assert len({c.hash for c in found}) == space.count() == 4
    for seed in range(6):
        cell, decisions = space.sample(seed)
        assert space.encode(cell) == decisions and space.decode(decisions) == cell


def test_it_compiles_and_runs() -> None:
    import torch

    cell = Space.from_text(DECODER).sample(0)[0]
    head = dpcdsl.compile(cell, backend="torch", in_channels=CHANNELS).eval()
    y = head(torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4), torch.randn(1, 8, 2, 2))
    assert tuple(y.shape) == (1, 8, 8, 8)


def test_values_and_sets_per_item() -> None:
    text = """cell c(x, channels = 8) {
  for k, w in ((1, 4), ({3, 5}, 8)) {
    x2 = conv(x, kernel = k, channels = w)
  }
  return concat(x20, x21)
}"""
    space = Space.from_text(text)
    assert space.count() == 2
    assert {space.sample(s)[0].node("x21").attr("kernel") for s in range(20)} == {3, 5}


def test_it_formats_back_to_itself() -> None:
    text = formatted(DECODER)
    assert "  for skip, width in ((c16, d16), (c8, d8)) {\n    up = " in text
    assert formatted(text) == text
    one = formatted("cell c(x) { for s in (x,) { y = relu(s) } return y }")
    assert "for s in (x,) {" in one


@pytest.mark.parametrize("text, code, message", [
    ("cell c(x, w = 4) { for a, b in ((x, w), (x,)) { y = conv(a, channels = b) } return y }",
     "DPC505", "each item of the loop gives its 2 names (a, b) a part each; this one has 1"),
    ("cell c(x) { for a in (relu(x), x) { y = relu(a) } return y }",
     "DPC505", "an item of a loop is a name or a value"),
    ("cell c(x, w = 4) { for a in (x, w) { y = relu(a) } return y }",
     "DPC505", "the loop's 'a' is a tensor for one item and a value for another"),
    ("cell c(x) { for a in (x,) { for b in (a,) { y = relu(b) } } return y }",
     "DPC505", "loops and repeats cannot nest"),
    ("cell c(x) { repeat 2 as b { for a in (x,) { y = relu(a) } b = y } return concat(b) }",
     "DPC505", "loops and repeats cannot nest"),
    ("cell c(x) { for a in (x,) { return relu(a) } }",
     "DPC502", "`return` belongs at the end of a cell, not in a loop"),
    ("cell c(x) { for x in (x,) { y = relu(x) } return y }",
     "DPC203", "the loop's name 'x' is already defined"),
    ("cell c(x) { for a, a in ((x, x),) { y = relu(a) } return y }",
     "DPC203", "the loop names 'a' twice"),
    ("cell c(x) { for a in (x, x) { y = relu(a) y = relu(y) } return y }",
     "DPC203", "'y' is defined twice"),
    ("cell c(x) { y0 = relu(x) for a in (x,) { y = relu(a) } return sum(y, y0) }",
     "DPC203", "'y0' is a name made up for the nodes of the loop's 'y'"),
    ("cell c(x) { for a in (x,) { y = relu(a) } return sum(y, y1) }",
     "DPC201", "undefined name 'y1'"),
    ("cell c(x) { for conv in (x,) { y = relu(conv) } return y }",
     "DPC204", "'conv' is a built-in name"),
])
def test_malformed_loops_are_located_errors(text: str, code: str, message: str) -> None:
    diags = dpcdsl.check(dpcdsl.load_text(text))
    assert any(d.code == code and message in d.message for d in diags), diags


def test_a_name_carried_down_the_items_is_not_defined_twice() -> None:
    assert codes(DECODER) == []
    # a name the body assigns, not defined before the loop, is the last item's after it
    assert codes("cell c(x, z @ 16) { for a in (x, z) { y = relu(a) } return y }") == []
