"""Widths read off tensors: ``x.channels`` is the width of the tensor ``x``, known when
the cell is built for its input channels. One cell then serves every encoder: the
backends build it, the cost model costs it and the weights are named for the widths
that ``in_channels`` gives; counting, sampling, encoding, formatting and checking treat
it as one value. (The library's DPT head projects each ViT block back to its own width
with it, tested equal to smp's module in tests/heads.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import dpcdsl
from dpcdsl import backends
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.printer import formatted
from dpcdsl.lang.space import Space

SPACE = """cell widen(x, width = 8) {
  return conv(x, kernel = 1, channels = width)
}

cell fuse(a, b) {
  for t in (a, b) {
    r = widen(t, width = t.channels * 2)
  }
  let half = a.channels // 2
  z = conv(concat(r0, r1), kernel = 1, channels = half + b.channels)
  return conv(z, kernel = 3, channels = {z.channels, 4})
}
"""


def codes(text: str) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in dpcdsl.check(dpcdsl.load_text(text))]


def test_it_formats_and_parses_back() -> None:
    assert formatted(SPACE) == SPACE
    with pytest.raises(DpcError, match="a tensor has no attribute 'width'") as e:
        dpcdsl.load_text("cell a(x) { return conv(x, channels = x.width) }")
    assert e.value.diagnostics[0].hint == "its width is x.channels"


def test_one_cell_builds_for_each_encoders_widths() -> None:
    space = Space.from_text(SPACE)
    assert space.count() == 2  # the width is one value; the set is the one choice
    cell = space.decode({"out.channels": 0})
    width = cell.node("z").attr("channels")  # worked out when built
    assert isinstance(width, ir.Arith) and not isinstance(width, int)
    for a, b in ((6, 10), (16, 4)):
        head = dpcdsl.compile(cell, backend="torch", in_channels={"a": a, "b": b})
        shapes = [tuple(p.shape) for n, p in head.named_parameters() if n.endswith("weight")
                  and p.dim() == 4]
        z = a // 2 + b
        assert shapes == [(2 * a, a, 1, 1), (2 * b, b, 1, 1), (z, 2 * a + 2 * b, 1, 1),
                          (z, z, 3, 3)]
        out = head(torch.randn(1, a, 5, 5), torch.randn(1, b, 5, 5))
        assert out.shape == (1, z, 5, 5)
        report = cost(cell, {"a": a, "b": b}, (5, 5))
        assert report.params == sum(p.numel() for p in head.parameters())


def test_the_canonical_text_keeps_the_width_and_encoding_finds_it() -> None:
    space = Space.from_text(SPACE)
    for cell in space.enumerate():
        text = cell.canonical_text()
        assert "channels = r0_out.channels" not in text  # r0 is a node, not read
        assert "channels = a.channels * 2" in text and "a.channels // 2 + b.channels" in text
        assert Space.from_text(text).concrete() == cell
        assert space.decode(space.encode(cell)) == cell


@pytest.mark.slow
def test_the_jax_build_equals_the_torch_build() -> None:
    cell = Space.from_text(SPACE).decode({"out.channels": 0})
    channels = {"a": 6, "b": 10}
    head = dpcdsl.compile(cell, backend="torch", in_channels=channels).eval()
    jax_backend = backends.get("jax")
    module = jax_backend.build(cell, channels, seed=1)
    jax_backend.import_weights(module, backends.get("torch").export_weights(head))
    xs = [torch.randn(2, 6, 7, 5), torch.randn(2, 10, 7, 5)]
    with torch.no_grad():
        want = head(*xs).numpy()
    got = np.asarray(jax_backend.forward(module, [x.numpy() for x in xs]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_width_that_does_not_fit_its_argument_is_refused_when_built() -> None:
    cell = Space.from_text("cell a(x) { return conv(x, channels = x.channels // 64) }").concrete()
    assert dpcdsl.compile(cell, backend="torch", in_channels=128) is not None
    with pytest.raises(DpcError, match=r"node 'out': conv\(channels = x.channels // 64\) is "
                       r"0 here \(x.channels = 32\): expected a positive integer"):
        dpcdsl.compile(cell, backend="torch", in_channels=32)
    with pytest.raises(DpcError, match="divides by 0 here"):
        cost(Space.from_text("cell a(x) { return conv(x, channels = 8 // (x.channels - 4)) "
                             "}").concrete(), 4, (3, 3))


@pytest.mark.parametrize("text, expected", [
    ("cell a(x) { return conv(x.channels, channels = 3) }",
     ("DPC211", "x.channels is a number, but a tensor is needed here")),
    ("cell a(x) { return conv(x, channels = y.channels) }", ("DPC201", "undefined name 'y'")),
    ("cell a(x, w = 3) { return conv(x, channels = w.channels) }",
     ("DPC211", "'w' is a value, but a tensor is needed here")),
    ("cell a(x) { return conv(x, act = x.channels) }",
     ("DPC401", "conv(act = ...): x.channels is an integer, but `act` takes one of relu, "
                "relu6, sigmoid, hardsigmoid, hardswish, gelu, none")),
    ("cell a(x) { return dropout(x, p = x.channels) }",
     ("DPC401", "dropout(p = ...): x.channels is an integer, but `p` takes a finite number")),
    ("cell a(x) {\n  y = conv(x, channels = z.channels)\n  z = conv(x)\n  return y\n}",
     ("DPC202", "'z' is used before it is defined")),
    ("cell a(x) {\n  repeat 2 as b { b = conv(x) }\n  return conv(x, channels = b.channels)\n}",
     ("DPC212", "'b' is a repeat of several branches; a single tensor is needed here")),
    ("cell a(x) {\n  let w = x.channels\n  return conv(x, channels = {x.channels, w})\n}",
     ("DPC402", "a set lists the same value twice")),
])
def test_the_checker_says_what_is_wrong(text: str, expected: tuple[str, str]) -> None:
    assert expected in codes(text)


def test_widths_work_in_sets_lets_loops_and_cells_without_a_problem() -> None:
    assert codes(SPACE) == []


def test_dpcc_compiles_a_file_for_the_widths_it_is_given(tmp_path) -> None:
    (tmp_path / "fuse.dpc").write_text(SPACE.replace("{z.channels, 4}", "z.channels"))
    out = tmp_path / "fuse.py"
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "compile", tmp_path / "fuse.dpc",
                        "--in-channels", "a=6", "--in-channels", "b=10", "-o", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    source = out.read_text()
    assert "ConvBNReLU(32, 13, " in source and "z = conv(z_concat, channels = 13)" in source
