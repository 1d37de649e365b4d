"""PyTorch pieces of the proxy task: the backbone as a feature extractor for the cache,
and the train and predict steps of cells, each plus a 1x1 classifier, trained fused
(the loop itself is :func:`dpcdsl.train.proxy.train`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels
from dpcdsl.train.data.cache import Extractor, FeatureCache
from dpcdsl.train.data.task import Task
from dpcdsl_torch._emit import build
from dpcdsl_torch._runtime import device_of, labels_of
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
    wanted = task.backbone.levels
    levels = [net.level(v) for v in wanted]

    @torch.no_grad()
    def run(images: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(images).to(device)
        feats = net(x)
        return [net.pick(x, feats, k).float().cpu().numpy() for k in levels]

    run.backbone = net  # type: ignore[attr-defined]
    return Extractor(run, wanted, net.normalisation)


class ProxyHead(nn.Module):
    """A compiled cell and a 1x1 classifier with bias."""

    def __init__(self, cell: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.cell = cell
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cell(*xs))


class _Streams:
    """One random stream per head, as each has it trained alone: the global stream
    after ``manual_seed(seed)`` and the head's construction (its classifier's initial
    draw), which :meth:`add` records; only the head's dropout draws from it after.
    With one head, or no dropout at all, the global stream is left as it is."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.states: list[torch.Tensor] = []
        self.swap = False

    def add(self, head: nn.Module) -> None:
        """Record the stream of a head just built."""
        self.states.append(self._get())
        dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in head.modules())
        self.swap = len(self.states) > 1 and (self.swap or dropout)

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state(self.device) if self.cuda else torch.get_rng_state()

    def _set(self, state: torch.Tensor) -> None:
        if self.cuda:
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)

    @contextlib.contextmanager
    def of(self, k: int) -> Iterator[None]:
        """Head ``k``'s stream, for its forward pass."""
        if not self.swap:
            yield
            return
        self._set(self.states[k])
        yield
        self.states[k] = self._get()


def proxy_steps(cells: Sequence[ir.Cell], cache: FeatureCache, task: Task,
                weights: Sequence[Mapping[str, Any]]) -> tuple[Callable[..., list[float]],
                                                               Callable[..., list[np.ndarray]]]:
    """``step(features, labels, active) -> losses`` (SGD, momentum, coupled weight
    decay, poly schedule) and ``predict(features, size, active) -> labels``, for a
    head per cell, each starting from its ``weights``. ``features`` holds one array
    per input of the cells; ``active`` the heads to run (default: all).

    The heads train fused: one forward pass per head on the same batch, the sum of
    their losses in one backward pass, one optimiser step over every head, and one
    transfer of the losses to the host. The heads share no parameters, so each
    head's gradients, statistics and dropout draws are those it would have trained
    with alone."""
    device = device_of(task)
    spec = task.train
    heads = nn.ModuleList()
    streams = _Streams(device)
    for cell, w in zip(cells, weights, strict=True):
        torch.manual_seed(task.seed)  # each head's stream starts here, as alone
        in_channels = cache.in_channels(cell, task)
        out_channels = infer_channels(cell, in_channels)[cell.output]
        head = ProxyHead(build(cell, in_channels, seed=task.seed,
                               bn_momentum=spec.momentum_of_bn), out_channels,
                         cache.num_classes).to(device)
        import_weights(head, w)
        heads.append(head)
        streams.add(head)
    opt = torch.optim.SGD(heads.parameters(), lr=spec.lr, momentum=spec.momentum,
                          weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(1 - s / spec.steps, 0.0) ** spec.power)
    align = spec.align_corners
    every = tuple(range(len(heads)))

    def step(features: Sequence[np.ndarray], labels: np.ndarray,
             active: Sequence[int] = every) -> list[float]:
        heads.train()
        xs = [torch.from_numpy(f).to(device) for f in features]
        y = torch.from_numpy(labels.astype(np.int64)).to(device)
        losses = []
        for k in active:
            with streams.of(k):
                logits = heads[k](*xs)
            if logits.shape[-2:] != y.shape[-2:]:  # the loss may be at the logits' own size
                logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                       align_corners=align)
            losses.append(F.cross_entropy(logits, y, ignore_index=cache.ignore_index))
        opt.zero_grad(set_to_none=True)  # a head left out keeps no gradient, and no step
        total = torch.stack(losses)
        total.sum().backward()
        opt.step()
        sched.step()
        return list(total.detach().cpu().tolist())  # one transfer for every head

    @torch.no_grad()
    def predict(features: Sequence[np.ndarray], size: tuple[int, int],
                active: Sequence[int] = every) -> list[np.ndarray]:
        heads.eval()
        xs = [torch.from_numpy(f).to(device) for f in features]
        out = []
        for k in active:
            logits = F.interpolate(heads[k](*xs), size=tuple(size), mode="bilinear",
                                   align_corners=align)
            out.append(labels_of(logits).cpu().numpy())
        return out

    step.heads = list(heads)  # type: ignore[attr-defined]
    return step, predict
