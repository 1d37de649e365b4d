"""What each head of the library reproduces: the library's own module, how it is
called, and the settings both are built with. Adding a head to ``examples/heads/``
means adding its entry here; a test checks that every head has one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from segmentation_models_pytorch.decoders.deeplabv3.decoder import (
    DeepLabV3Decoder,
    DeepLabV3PlusDecoder,
)
from segmentation_models_pytorch.decoders.dpt.decoder import DPTDecoder
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.linknet.decoder import LinknetDecoder
from segmentation_models_pytorch.decoders.manet.decoder import MAnetDecoder
from segmentation_models_pytorch.decoders.pan.decoder import PANDecoder
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPDecoder
from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from segmentation_models_pytorch.decoders.unetplusplus.decoder import UnetPlusPlusDecoder
from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead
from torchvision.models.segmentation.lraspp import LRASPPHead

Size = tuple[int, int]
T = TypeVar("T")


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
    #: where the library declares its blocks in an order in which they cannot be
    #: computed (U-Net++), the prefixes of the head's node names in the library's order
    order: tuple[str, ...] = ()

    def in_library_order(self, named: Iterable[tuple[str, T]]) -> list[tuple[str, T]]:
        """The compiled head's named tensors in the order of the library's."""
        items = list(named)
        if not self.order:
            return items
        rank = {prefix: i for i, prefix in enumerate(self.order)}
        return sorted(items, key=lambda kv: next(rank[p] for p in self.order
                                                 if kv[0].startswith(p)))


def _one(module: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    return module(xs[0])


#: the class tokens of a ViT's four blocks, as 1x1 maps
_tokens = {f"t{i}": (1, 1) for i in range(1, 5)}

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
    "smp_deeplabv3plus": Reference(
        # smp: separable ASPP, rates 12, 24, 36 at output stride 16; it reads
        # features[2] (stride 4) and features[-1]
        build=lambda: DeepLabV3PlusDecoder([3, 8, 16, 24, 32, 64], 5, 32, (12, 24, 36),
                                           16, aspp_separable=True, aspp_dropout=0.5),
        call=lambda m, xs: m([None, None, xs[1], None, None, xs[0]]),
        in_channels={"high": 64, "low": 16}, options={"channels": 32},
        sizes=({"high": (6, 6), "low": (24, 24)}, {"high": (7, 5), "low": (28, 20)})),
    "smp_psp": Reference(
        build=lambda: PSPDecoder([3, 8, 16, 24, 32, 64], out_channels=32, dropout=0.2),
        call=lambda m, xs: m([xs[0]]), in_channels={"x": 64},
        options={"channels": 32, "branch": 16},
        sizes=({"x": (12, 12)}, {"x": (13, 11)})),
    "smp_fpn": Reference(
        build=lambda: FPNDecoder([3, 8, 16, 24, 32, 64], 5, pyramid_channels=32,
                                 segmentation_channels=32, dropout=0.2),
        call=lambda m, xs: m(list(xs)),
        in_channels={"c2": 16, "c3": 24, "c4": 32, "c5": 64},
        options={"pyramid": 32, "channels": 32},
        sizes=({"c2": (16, 16), "c3": (8, 8), "c4": (4, 4), "c5": (2, 2)},
               {"c2": (24, 16), "c3": (12, 8), "c4": (6, 4), "c5": (3, 2)})),
    "smp_segformer": Reference(
        # features: the image, an empty level (MiT encoders have none at stride 2), then
        # strides 4 to 32; the decoder resizes to a quarter of the image's size
        build=lambda: SegformerDecoder([3, 0, 16, 24, 32, 64], 5, segmentation_channels=32),
        call=lambda m, xs: m([_level(xs[0], 4, 3), _level(xs[0], 2, 0), *xs]),
        in_channels={"c4": 16, "c8": 24, "c16": 32, "c32": 64}, options={"channels": 32},
        sizes=({"c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c4": (24, 16), "c8": (12, 8), "c16": (6, 4), "c32": (3, 2)})),
    "smp_unet": Reference(
        # features: the image (the last block takes its size), then strides 2 to 32
        build=lambda: UnetDecoder([3, 8, 16, 24, 32, 64], (32, 24, 16, 8, 8)),
        call=lambda m, xs: m([_level(xs[0], 2, 3), *xs]),
        in_channels={"c2": 8, "c4": 16, "c8": 24, "c16": 32, "c32": 64},
        options={"d16": 32, "d8": 24, "d4": 16, "d2": 8, "d1": 8},
        sizes=({"c2": (32, 32), "c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c2": (48, 32), "c4": (24, 16), "c8": (12, 8), "c16": (6, 4), "c32": (3, 2)})),
    "smp_linknet": Reference(
        build=lambda: LinknetDecoder([3, 8, 16, 24, 32, 64], prefinal_channels=8),
        call=lambda m, xs: m([_level(xs[0], 2, 3), *xs]),
        in_channels={"c2": 8, "c4": 16, "c8": 24, "c16": 32, "c32": 64},
        options={"w2": 8, "w4": 16, "w8": 24, "w16": 32, "w32": 64, "channels": 8},
        sizes=({"c2": (32, 32), "c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c2": (48, 32), "c4": (24, 16), "c8": (12, 8), "c16": (6, 4), "c32": (3, 2)})),
    "smp_upernet": Reference(
        # features: the image and stride 2 (unread), then strides 4 to 32; at the first
        # size (a 64x64 image) the pyramid's 3 and 6 bins are finer than the 2x2 map at
        # stride 32, as adaptive pooling allows
        build=lambda: UPerNetDecoder([3, 8, 16, 24, 32, 64], decoder_channels=16),
        call=lambda m, xs: m([_level(xs[0], 4, 3), _level(xs[0], 2, 8), *xs]),
        in_channels={"c4": 16, "c8": 24, "c16": 32, "c32": 64}, options={"channels": 16},
        sizes=({"c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c4": (56, 52), "c8": (28, 26), "c16": (14, 13), "c32": (7, 7)})),
    "smp_pan": Reference(
        # features: the image and stride 2 (unread), then strides 4 to 32; the three
        # max poolings at stride 32 need 8 rows and columns
        build=lambda: PANDecoder([3, 8, 16, 24, 32, 64], encoder_depth=5, decoder_channels=16),
        call=lambda m, xs: m([_level(xs[0], 4, 3), _level(xs[0], 2, 8), *xs]),
        in_channels={"c4": 16, "c8": 24, "c16": 32, "c32": 64}, options={"channels": 16},
        sizes=({"c4": (64, 64), "c8": (32, 32), "c16": (16, 16), "c32": (8, 8)},
               {"c4": (72, 84), "c8": (36, 42), "c16": (18, 21), "c32": (9, 11)})),
    "smp_unetplusplus": Reference(
        build=lambda: UnetPlusPlusDecoder([3, 8, 16, 24, 32, 64], (32, 24, 16, 8, 8)),
        call=lambda m, xs: m([_level(xs[0], 2, 3), *xs]),
        in_channels={"c2": 8, "c4": 16, "c8": 24, "c16": 32, "c32": 64},
        options={"w2": 8, "w4": 16, "w8": 24, "d16": 32, "d8": 24, "d4": 16, "d2": 8,
                 "d1": 8},
        sizes=({"c2": (32, 32), "c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c2": (48, 32), "c4": (24, 16), "c8": (12, 8), "c16": (6, 4), "c32": (3, 2)}),
        # smp declares x_0_1 before x_1_1, which it reads
        order=tuple(f"x_{d}_{level}_" for level in range(4) for d in range(level + 1))
        + ("y.", "out.")),
    "smp_manet": Reference(
        # widths of at least 16 at each level, so that a sixteenth is at least 1 (smp's
        # max(1, width // 16))
        build=lambda: MAnetDecoder([3, 16, 16, 32, 32, 48], (32, 24, 16, 8, 8),
                                   pab_channels=8),
        call=lambda m, xs: m([_level(xs[0], 2, 3), *xs]),
        in_channels={"c2": 16, "c4": 16, "c8": 32, "c16": 32, "c32": 48},
        options={"w2": 16, "w4": 16, "w8": 32, "w16": 32, "w32": 48, "d16": 32, "d8": 24,
                 "d4": 16, "d2": 8, "d1": 8, "pab": 8},
        sizes=({"c2": (32, 32), "c4": (16, 16), "c8": (8, 8), "c16": (4, 4), "c32": (2, 2)},
               {"c2": (48, 32), "c4": (24, 16), "c8": (12, 8), "c16": (6, 4), "c32": (3, 2)})),
    "smp_dpt": Reference(
        # four ViT blocks at stride 16 and their class tokens, which smp passes as
        # (batch, 1, width) and the head reads as 1x1 maps; the fusion doubles sizes
        # from the stride-32 reassembly, so each side is even
        build=lambda: DPTDecoder((16,) * 4, (16,) * 4, True, "cat", (8, 16, 32, 32), 16),
        call=lambda m, xs: m(list(xs[:4]), [t.flatten(2).transpose(1, 2) for t in xs[4:]]),
        in_channels={**{f"f{i}": 16 for i in range(1, 5)}, **{f"t{i}": 16 for i in range(1, 5)}},
        options={"i1": 8, "i2": 16, "i3": 32, "i4": 32, "channels": 16},
        sizes=({**{f"f{i}": (4, 4) for i in range(1, 5)}, **_tokens},
               {**{f"f{i}": (6, 2) for i in range(1, 5)}, **_tokens})),
}


def _level(x: torch.Tensor, factor: int, channels: int) -> torch.Tensor:
    """Zeros for a level the head does not read (or reads only the size of: the image,
    whose size a U-Net's last block takes), ``factor`` times the size of ``x``."""
    return x.new_zeros(len(x), channels, *(factor * n for n in x.shape[2:]))
