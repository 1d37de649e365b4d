"""Compiled cells under torch.compile and torch.export, on the CPU."""

from __future__ import annotations

import pytest
import torch
from dpcdsl_torch import build

from tests.backends.torch.conftest import load_example

CASES = ["dpc_cityscapes", "aspp", "deeplabv3plus"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_torch_compile_matches_eager(name: str) -> None:
    ex = load_example(name)
    module = build(ex.cell, ex.in_channels).eval()
    compiled = torch.compile(module, fullgraph=True)
    xs = ex.inputs()
    with torch.no_grad():
        torch.testing.assert_close(compiled(*xs), module(*xs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_torch_export_matches_eager(name: str) -> None:
    ex = load_example(name)
    module = build(ex.cell, ex.in_channels).eval()
    xs = ex.inputs()
    program = torch.export.export(module, tuple(xs))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*xs), module(*xs), rtol=1e-5, atol=1e-6)
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "aten.conv2d.default" in ops


@pytest.mark.slow
def test_torch_compile_trains_at_several_sizes() -> None:
    """Training the top-1 DPC under torch.compile at a second input size (a
    dynamic-shape recompile). Eager mode trains depthwise convs through DepthwiseTaps,
    whose shape-dependent windows inductor failed to compile dynamically ("Cannot
    convert expression to float"); under the compiler the plain conv runs."""
    ex = load_example("dpc_cityscapes")
    torch.manual_seed(0)
    module = build(ex.cell, 32)
    step = torch.compile(module)
    for size in ((33, 33), (65, 129)):
        module.zero_grad()
        step(torch.randn(2, 32, *size)).square().mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in module.parameters())
