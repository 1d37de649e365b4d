"""Names that must never break emitted code, shared by every backend's tests."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.space import Space

KEYWORDS = {"cell", "let", "import", "repeat", "as", "return", "one_of", "earlier", "true",
            "false", "depth"}

IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in KEYWORDS)

HOSTILE = """
cell class(self, channels = 8) {
  lambda = conv(self, kernel = 3)
  forward = sepconv(lambda, rate = 2)
  training = pool(forward, grid = 2)
  node_names = conv(self)
  __init__ = conv(self)
  __class__ = concat(lambda, forward, training, node_names, __init__)
  torch = conv(__class__)
  F = identity(torch)
  ConvBNReLU = dropout(F)
  return conv(ConvBNReLU, kernel = 1)
}
"""


def named_cell(cell_name: str, names: list[str]) -> ir.Cell:
    """A 4-channel cell with a conv, a sepconv, a pool, a sum and a dropout, named from
    ``names`` (input, then the four nodes); names the language refuses are skipped."""
    inp, a, b, c, d = names
    text = (f"cell {cell_name}({inp}, channels = 4) {{ {a} = conv({inp}, kernel = 3) "
            f"{b} = sepconv({a}) {c} = pool({inp}, grid = 2) {d} = sum({a}, {b}, {c}) "
            f"return dropout({d}) }}")
    try:
        return Space.from_text(text).concrete()
    except DpcError:  # e.g. a name reused as a parameter
        assume(False)
        raise
