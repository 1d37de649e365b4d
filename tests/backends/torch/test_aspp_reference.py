"""examples/aspp.dpc against torchvision's own DeepLabv3 ASPP module."""

from __future__ import annotations

import torch
from dpcdsl_torch import build
from torchvision.models.segmentation.deeplabv3 import ASPP

from dpcdsl.compiler.rewrite import at_output_stride
from tests.backends.torch.conftest import load_example

#: torchvision's DeepLabv3 runs its backbone at output stride 8 with these rates
TORCHVISION_RATES = [12, 24, 36]
TORCHVISION_BN_MOMENTUM = 0.1  # PyTorch's default, which torchvision keeps


def pair(cin: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The example compiled at output stride 8, and torchvision's ASPP with its weights."""
    cell = at_output_stride(load_example("aspp").cell, 8)
    compiled = build(cell, cin, seed=0, bn_momentum=TORCHVISION_BN_MOMENTUM)
    reference = ASPP(cin, TORCHVISION_RATES)
    reference.load_state_dict(dict(zip(reference.state_dict(),
                                       compiled.state_dict().values())))
    return compiled, reference


def test_same_parameters_in_the_same_order() -> None:
    compiled, reference = pair(2048)
    assert [tuple(v.shape) for v in compiled.state_dict().values()] == \
        [tuple(v.shape) for v in reference.state_dict().values()]
    assert [tuple(p.shape) for p in compiled.parameters()] == \
        [tuple(p.shape) for p in reference.parameters()]
    dilations = [m.dilation for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.dilation for m in compiled.modules() if isinstance(m, torch.nn.Conv2d)] == \
        dilations and (36, 36) in dilations


def test_same_outputs_and_running_statistics() -> None:
    compiled, reference = pair(64)
    x = torch.randn(2, 64, 33, 33)
    compiled.train()
    reference.train()
    with torch.no_grad():
        compiled(x)
        reference(x)  # one training step of BatchNorm statistics, momentum 0.1 in both
    for (name, a), b in zip(compiled.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    compiled.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=1e-5, atol=1e-5)
