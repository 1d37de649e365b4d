"""examples/aspp.dpc against a hand-written module with torchvision's ASPP structure."""

from __future__ import annotations

import torch
from dpcdsl_torch import build

from tests.backends.torch.conftest import load_example
from tests.backends.torch.handwritten import TorchvisionASPP


def shapes(module: torch.nn.Module) -> list[tuple[int, ...]]:
    return [tuple(v.shape) for k, v in module.state_dict().items()]


def test_same_parameter_shapes_in_the_same_order() -> None:
    compiled = build(load_example("aspp").cell, 2048)
    reference = TorchvisionASPP(2048)
    assert shapes(compiled) == shapes(reference)
    assert [tuple(p.shape) for p in compiled.parameters()] == \
        [tuple(p.shape) for p in reference.parameters()]


def test_same_weights_same_outputs_in_eval_mode() -> None:
    compiled = build(load_example("aspp").cell, 64, seed=0)
    reference = TorchvisionASPP(64)
    x = torch.randn(2, 64, 33, 33)
    compiled(x)  # distinct running statistics, so copying them is tested
    reference.load_state_dict(dict(zip(reference.state_dict(), compiled.state_dict().values())))
    compiled.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=1e-5, atol=1e-5)
