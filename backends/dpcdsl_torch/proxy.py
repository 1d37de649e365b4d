"""PyTorch pieces of the proxy task: the backbone as a feature extractor for the cache,
and the train and predict steps of a cell plus a 1x1 classifier (the loop itself is
:func:`dpcdsl.proxy.train`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dpcdsl import ir
from dpcdsl.analysis import infer_channels
from dpcdsl.data.cache import Extractor, FeatureCache
from dpcdsl.data.task import Task
from dpcdsl_torch._emit import build
from dpcdsl_torch._runtime import device_of
from dpcdsl_torch._weights import import_weights
from dpcdsl_torch.model import backbone


def feature_extractor(task: Task) -> Extractor:
    """The task's backbone in eval mode: images (N, 3, H, W) -> its features at each
    level the task's cell reads, with the normalisation its weights expect."""
    device = device_of(task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.backbone.seed)
        net = backbone(task.backbone.name, task.backbone.output_stride,
                       task.backbone.pretrained, task.backbone.pretrained_file)
        net = net.eval().to(device)
    strides = task.backbone.levels
    levels = [net.level(s) for s in strides]

    @torch.no_grad()
    def run(images: np.ndarray) -> list[np.ndarray]:
        feats = net(torch.from_numpy(images).to(device))
        return [feats[k].float().cpu().numpy() for k in levels]

    run.backbone = net  # type: ignore[attr-defined]
    return Extractor(run, strides, net.normalisation)


class ProxyHead(nn.Module):
    """A compiled cell and a 1x1 classifier with bias."""

    def __init__(self, cell: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.cell = cell
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cell(*xs))


def proxy_steps(cell: ir.Cell, cache: FeatureCache, task: Task,
                weights: Mapping[str, Any]) -> tuple[Callable[..., float],
                                                     Callable[..., np.ndarray]]:
    """``step(features, labels) -> loss`` (SGD, momentum, coupled weight decay, poly
    schedule) and ``predict(features, size) -> labels``, starting from ``weights``;
    ``features`` holds one array per input of the cell."""
    torch.manual_seed(task.seed)
    device = device_of(task)
    in_channels = cache.in_channels(cell, task)
    out_channels = infer_channels(cell, in_channels)[cell.output]
    head = ProxyHead(build(cell, in_channels, seed=task.seed,
                           bn_momentum=task.train.momentum_of_bn), out_channels,
                     cache.num_classes).to(device)
    import_weights(head, weights)
    spec = task.train
    opt = torch.optim.SGD(head.parameters(), lr=spec.lr, momentum=spec.momentum,
                          weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(1 - s / spec.steps, 0.0) ** spec.power)

    align = spec.align_corners

    def step(features: Sequence[np.ndarray], labels: np.ndarray) -> float:
        head.train()
        xs = [torch.from_numpy(f).to(device) for f in features]
        y = torch.from_numpy(labels.astype(np.int64)).to(device)
        logits = head(*xs)
        if logits.shape[-2:] != y.shape[-2:]:  # the loss may be at the logits' own size
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                   align_corners=align)
        loss = F.cross_entropy(logits, y, ignore_index=cache.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss.item())

    @torch.no_grad()
    def predict(features: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        head.eval()
        logits = head(*(torch.from_numpy(f).to(device) for f in features))
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align)
        return logits.argmax(1).cpu().numpy()

    step.head = head  # type: ignore[attr-defined]
    return step, predict
