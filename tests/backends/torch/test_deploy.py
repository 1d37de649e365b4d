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
