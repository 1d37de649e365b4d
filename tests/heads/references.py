"""What each head of the library reproduces: the library's own module, how it is
called, and the settings both are built with. Adding a head to ``examples/heads/``
means adding its entry here; a test checks that every head has one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3Decoder
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead
from torchvision.models.segmentation.lraspp import LRASPPHead

Size = tuple[int, int]


@dataclass(frozen=True)
class Reference:
    """``build()`` makes the library's module; ``call(module, inputs)`` runs it on the
    cell's inputs (in the cell's order). The head is loaded with ``options`` and
    compiled at ``output_stride`` for ``in_channels``; ``sizes`` are two input sizes per
    input, the second not divisible by the pooling bins. ``bn_momentum`` is the
    library's (PyTorch's default 0.1)."""

    build: Callable[[], nn.Module]
    call: Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]
    in_channels: dict[str, int]
    sizes: tuple[dict[str, Size], dict[str, Size]]
    options: dict[str, Any] = field(default_factory=dict)
    output_stride: int = 16
    bn_momentum: float = 0.1


def _one(module: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    return module(xs[0])


REFERENCES: dict[str, Reference] = {
    "fcn": Reference(
        build=lambda: FCNHead(64, 5), call=_one, in_channels={"x": 64},
        options={"inter": 16, "classes": 5},
        sizes=({"x": (12, 12)}, {"x": (13, 11)})),
    "deeplabv3": Reference(
        # torchvision: rates 12, 24, 36 at output stride 8
        build=lambda: DeepLabHead(32, 5), call=_one, in_channels={"x": 32},
        options={"channels": 256, "classes": 5}, output_stride=8,
        sizes=({"x": (12, 12)}, {"x": (13, 11)})),
    "lraspp": Reference(
        build=lambda: LRASPPHead(24, 40, 5, 16),
        call=lambda m, xs: m({"low": xs[0], "high": xs[1]}),
        in_channels={"low": 24, "high": 40}, options={"inter": 16, "classes": 5},
        sizes=({"low": (16, 16), "high": (8, 8)}, {"low": (17, 13), "high": (9, 7)})),
    "smp_deeplabv3": Reference(
        build=lambda: DeepLabV3Decoder(32, 64, (12, 24, 36), aspp_separable=False,
                                       aspp_dropout=0.5),
        call=lambda m, xs: m([xs[0]]), in_channels={"x": 32}, options={"channels": 64},
        output_stride=8, sizes=({"x": (12, 12)}, {"x": (13, 11)})),
}
