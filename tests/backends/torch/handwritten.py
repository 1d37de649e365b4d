"""Hand-written PyTorch modules of the same structure as two compiled cells: the
reference the tests compare against, and the baseline of benchmarks/bench_torch.py.

``TorchvisionASPP`` mirrors the layer structure of torchvision's DeepLabv3 ASPP
(``convs`` ModuleList of Sequentials, ``project`` Sequential with dropout 0.5);
``TopOneDPC`` is the top-1 Cityscapes Dense Prediction Cell written out by hand.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ASPPConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, rate: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=rate, dilation=rate, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for layer in self:
            x = layer(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class TorchvisionASPP(nn.Module):
    def __init__(self, cin: int, rates: tuple[int, ...] = (12, 24, 36), cout: int = 256) -> None:
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                                   nn.BatchNorm2d(cout), nn.ReLU())]
        branches += [ASPPConv(cin, cout, r) for r in rates]
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(len(branches) * cout, cout, 1, bias=False),
                                     nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


def _sepconv(cin: int, cout: int, rate: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=rate, dilation=rate, groups=cin, bias=False),
        nn.BatchNorm2d(cin, momentum=0.0003), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout, momentum=0.0003), nn.ReLU())


class TopOneDPC(nn.Module):
    def __init__(self, cin: int, c: int = 256) -> None:
        super().__init__()
        self.b0 = _sepconv(cin, c, (1, 6))
        self.b1 = _sepconv(c, c, (18, 15))
        self.b2 = _sepconv(c, c, (6, 3))
        self.b3 = _sepconv(c, c, (1, 1))
        self.b4 = _sepconv(c, c, (6, 21))
        self.dropout = nn.Dropout(0.1)
        self.project = nn.Sequential(nn.Conv2d(5 * c, c, 1, bias=False),
                                     nn.BatchNorm2d(c, momentum=0.0003), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b0 = self.b0(x)
        b1 = self.b1(b0)
        b2 = self.b2(b1)
        b3 = self.b3(b0)
        b4 = self.b4(b0)
        return self.project(self.dropout(torch.cat([b0, b1, b2, b3, b4], dim=1)))
