"""The layers that emitted cells are made of.

These classes are real, tested Python. The emitter copies the source of each one a
cell needs into the emitted file (with :func:`inspect.getsource`), so an emitted file
stands alone and imports only torch. Parameter names here are the canonical weight
names below a node: ``conv``, ``bn``, ``depthwise``, ``depthwise_bn``, ``pointwise``,
``pointwise_bn``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBNReLU(nn.Module):
    """A k x k atrous conv without bias and with SAME padding, then BN and ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, rate: tuple[int, int] = (1, 1),
                 bn: bool = True, relu: bool = True, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        padding = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, dilation=rate, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum) if bn else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class SepConvBNReLU(nn.Module):
    """A depthwise k x k atrous conv, BN and ReLU; then a pointwise 1x1 conv, BN and
    ReLU. There is a ReLU between the two convs, as in the DPC paper."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, rate: tuple[int, int] = (1, 1),
                 bn: bool = True, relu: bool = True, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        padding = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=padding, dilation=rate,
                                   groups=cin, bias=False)
        self.depthwise_bn = (nn.BatchNorm2d(cin, eps=bn_eps, momentum=bn_momentum) if bn
                             else nn.Identity())
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pointwise_bn = (nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum) if bn
                             else nn.Identity())
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise_bn(self.depthwise(x))
        x = F.relu(x) if self.relu else x
        x = self.pointwise_bn(self.pointwise(x))
        return F.relu(x) if self.relu else x


class GridPool(nn.Module):
    """The paper's pyramid pooling: average over a grid of g_h x g_w cells (adaptive
    average pooling), a 1x1 conv, BN and ReLU, then bilinear upsampling back to the
    input's size. A 1x1 grid is image-level pooling."""

    def __init__(self, cin: int, cout: int, grid: tuple[int, int] = (1, 1), bn: bool = True,
                 relu: bool = True, bn_momentum: float = 0.0003, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum) if bn else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(F.adaptive_avg_pool2d(x, self.grid)))
        y = F.relu(y) if self.relu else y
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class WindowPool(nn.Module):
    """The DeepLab reference's pyramid pooling: a stride-1 average over a fixed window
    (VALID padding), a 1x1 conv, BN and ReLU, then a bilinear resize with
    align_corners=True back to the input's size."""

    def __init__(self, cin: int, cout: int, window: tuple[int, int] = (1, 1),
                 bn: bool = True, relu: bool = True, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.window = window
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum) if bn else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(F.avg_pool2d(x, self.window, stride=1)))
        y = F.relu(y) if self.relu else y
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)


#: every layer class, by the op that uses it
LAYERS: dict[str, type[nn.Module]] = {
    "ConvBNReLU": ConvBNReLU,
    "SepConvBNReLU": SepConvBNReLU,
    "GridPool": GridPool,
    "WindowPool": WindowPool,
}
