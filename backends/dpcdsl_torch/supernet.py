"""Supernets in PyTorch: a space compiled to one module of shared weights.

A :class:`Supernet` holds the bank (:mod:`dpcdsl.compiler.supernet`: one tensor per
key) and runs a candidate as the module :func:`~dpcdsl_torch._emit.build` makes for
its cell, with that module's parameters and running statistics replaced by the bank's
tensors, the same objects. A candidate's forward is then exactly its stand-alone
computation, its gradients land in the bank, and its BatchNorm updates the bank's
statistics. Built modules are cached per cell (:data:`CACHED_MODULES`); they hold no
weights of their own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from dpcdsl.compiler import supernet as rule
from dpcdsl.compiler.rewrite import at_output_stride
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels
from dpcdsl.lang.space import Space
from dpcdsl.ops import Weight
from dpcdsl_torch._emit import BN_EPS, BN_MOMENTUM, build
from dpcdsl_torch._runtime import labels_of
from dpcdsl_torch._weights import _canonical_keys, import_weights
from dpcdsl_torch.proxy import ProxyHead

#: built candidate modules kept, least recently used dropped first
CACHED_MODULES = 64


class Supernet(nn.Module):
    """Every candidate of ``space`` over one bank of shared weights.

    ``forward(*inputs, decisions=...)`` runs the candidate that ``decisions`` (as
    :meth:`Space.encode <dpcdsl.lang.space.Space.encode>` gives them) pick;
    :meth:`extract` gives its weights under canonical names. With ``num_classes``,
    each candidate is a proxy head (the cell and a 1x1 classifier, canonical names
    under ``cell.`` and ``classifier.``)."""

    def __init__(self, space: Space, in_channels: int | Mapping[str, int],
                 output_stride: int = 16, seed: int = 0, num_classes: int | None = None,
                 bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS,
                 bank: rule.Bank | None = None) -> None:
        super().__init__()
        self.space = space
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.seed = seed
        self.num_classes = num_classes
        self.bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.bank = rule.bank_of(space, in_channels, num_classes, seed) if bank is None \
            else bank
        self.tensors = nn.Module()  # the bank's tensors, as parameters and buffers
        self.slots: dict[str, str] = {}  # key -> attribute of self.tensors
        #: keys made after construction, when a candidate first needed them
        self.added: list[str] = []
        with torch.no_grad():
            for key, w in self.bank.weights.items():
                self._make(key, w)
        self._built: OrderedDict[str, nn.Module] = OrderedDict()
        self._cells: OrderedDict[tuple[tuple[str, int], ...], ir.Cell] = OrderedDict()

    # ------------------------------------------------------------ the bank
    def _make(self, key: str, w: Weight) -> torch.Tensor:
        value = torch.from_numpy(rule.initial_value(key, w, self.seed))
        device = self.device
        slot = f"w{len(self.slots)}"
        if w.kind == "stat":
            self.tensors.register_buffer(slot, value.to(device))
        else:
            self.tensors.register_parameter(slot, nn.Parameter(value.to(device)))
        self.slots[key] = slot
        return self.tensor(key)

    @property
    def device(self) -> torch.device:
        """Where the bank is (one tensor says it: they move together)."""
        return self.tensor(next(iter(self.slots))).device if self.slots else \
            torch.device("cpu")

    def tensor(self, key: str) -> torch.Tensor:
        """The bank's tensor for ``key``."""
        return getattr(self.tensors, self.slots[key])

    def state(self) -> dict[str, np.ndarray]:
        """Every tensor of the bank, by key, as numpy."""
        return {k: self.tensor(k).detach().cpu().numpy().copy() for k in self.slots}

    def load_state(self, arrays: Mapping[str, Any]) -> None:
        """Set the bank from :meth:`state`'s arrays; keys the bank lacks are made."""
        with torch.no_grad():
            for key, value in arrays.items():
                if key not in self.slots:
                    self._make(key, self._weight_of(key, np.shape(value)))
                    self.added.append(key)
                self.tensor(key).copy_(torch.as_tensor(np.asarray(value)))

    @staticmethod
    def _weight_of(key: str, shape: tuple[int, ...]) -> Weight:
        leaf = key.split(":")[2].rsplit(".", 1)[-1]
        kind = "stat" if leaf in ("running_mean", "running_var") else "weight"
        return Weight(tuple(shape), kind)

    def _apply(self, fn: Any, recurse: bool = True) -> Supernet:
        self._built.clear()  # built modules hold the old buffers
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------ candidates
    def cell(self, decisions: Mapping[str, int]) -> ir.Cell:
        """The candidate's cell at the supernet's output stride; decisions that are not
        the space's are refused, naming the decision (``DPC602``)."""
        frozen = tuple(sorted(decisions.items()))
        found = self._cells.get(frozen)
        if found is None:
            found = at_output_stride(self.space.decode(dict(decisions)), self.output_stride)
            self._cells[frozen] = found
            if len(self._cells) > 4 * CACHED_MODULES:
                self._cells.popitem(last=False)
        return found

    def shares(self, cell: ir.Cell) -> dict[str, tuple[str, Weight]]:
        if self.num_classes is None:
            return rule.shares(cell, self.in_channels)
        return rule.head_shares(cell, self.in_channels, self.num_classes)

    def module(self, cell: ir.Cell) -> nn.Module:
        """The candidate's module, its weights the bank's (built once, then cached)."""
        found = self._built.get(cell.hash)
        if found is not None:
            self._built.move_to_end(cell.hash)
            return found
        module = build(cell, self.in_channels, seed=self.seed, **self.bn)
        if self.num_classes is not None:
            width = infer_channels(cell, self.in_channels)[cell.output]
            module = ProxyHead(module, width, self.num_classes)
        shared = self.shares(cell)
        device = self.device
        with torch.no_grad():
            for state_key, name in _canonical_keys(module).items():
                key, w = shared[name]
                if key not in self.slots:  # a weight no walk of the bank met
                    self._make(key, w)
                    self.added.append(key)
                owner, leaf = state_key.rsplit(".", 1)
                sub = module.get_submodule(owner)
                tensor = self.tensor(key)
                if leaf in sub._parameters and isinstance(tensor, nn.Parameter):
                    sub._parameters[leaf] = tensor
                else:
                    sub._buffers[leaf] = tensor
        module.to(device)  # what is left of its own: counters
        module.train(self.training)
        self._built[cell.hash] = module
        if len(self._built) > CACHED_MODULES:
            self._built.popitem(last=False)
        return module

    def forward(self, *inputs: torch.Tensor, decisions: Mapping[str, int]) -> torch.Tensor:
        module = self.module(self.cell(decisions))
        module.train(self.training)
        return module(*inputs)

    def extract(self, decisions: Mapping[str, int] | ir.Cell) -> dict[str, np.ndarray]:
        """The candidate's inherited weights under its canonical names, as numpy: what
        ``import_weights`` loads into the module ``dpcdsl.compile(cell)`` builds."""
        cell = decisions if isinstance(decisions, ir.Cell) else self.cell(decisions)
        out = {}
        for name, (key, w) in self.shares(cell).items():
            if key not in self.slots:
                with torch.no_grad():
                    self._make(key, w)
                self.added.append(key)
            out[name] = self.tensor(key).detach().cpu().numpy().copy()
        return out


class SupernetSteps:
    """The proxy task's steps for a supernet of heads (the backend's ``supernet_steps``
    hook): ``step`` trains the candidate a step picks, as the proxy trains one head
    (SGD, momentum, coupled weight decay, the poly schedule set from the step, so a
    resumed run goes on exactly), and ``predictor`` makes a candidate's stand-alone
    head from the bank, its BatchNorm statistics recalibrated."""

    def __init__(self, space: Space, cache: Any, task: Any, in_channels: Mapping[str, int],
                 bank: rule.Bank | None = None) -> None:
        from dpcdsl_torch._runtime import device_of

        spec = task.train
        self.task, self.spec, self.ignore = task, spec, cache.ignore_index
        self.device = device_of(task)
        self.net = Supernet(space, in_channels, output_stride=task.backbone.output_stride,
                            seed=task.seed, num_classes=cache.num_classes,
                            bn_momentum=spec.momentum_of_bn, bank=bank).to(self.device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=spec.lr, momentum=spec.momentum,
                                   weight_decay=spec.weight_decay)
        self._grown = len(self.net.added)

    def _grow(self) -> None:
        """Parameters a candidate made since the last step join the optimiser."""
        new = [self.net.tensor(k) for k in self.net.added[self._grown:]]
        params = [t for t in new if isinstance(t, nn.Parameter)]
        if params:
            self.opt.add_param_group({"params": params})
        self._grown = len(self.net.added)

    def step(self, features: list[np.ndarray], labels: np.ndarray,
             decisions: Mapping[str, int], k: int) -> float:
        from torch.nn import functional as F

        torch.manual_seed(self.task.seed * 1_000_003 + k)  # dropout
        self.net.train()
        xs = [torch.from_numpy(f).to(self.device) for f in features]
        y = torch.from_numpy(labels.astype(np.int64)).to(self.device)
        logits = self.net(*xs, decisions=decisions)
        self._grow()
        if logits.shape[-2:] != y.shape[-2:]:
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                   align_corners=self.spec.align_corners)
        loss = F.cross_entropy(logits, y, ignore_index=self.ignore)
        for group in self.opt.param_groups:
            group["lr"] = self.spec.lr * max(1 - (k - 1) / self.spec.steps, 0.0) ** self.spec.power
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach().cpu())

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The bank, and the optimiser's momentum, by key."""
        keys = {id(self.net.tensor(k)): k for k in self.net.slots}
        momentum = {keys[id(p)]: s["momentum_buffer"].cpu().numpy()
                    for p, s in self.opt.state.items() if s.get("momentum_buffer") is not None}
        return self.net.state(), momentum

    def load(self, bank: Mapping[str, np.ndarray], momentum: Mapping[str, np.ndarray]) -> None:
        self.net.load_state(bank)
        self._grow()
        for key, value in momentum.items():
            p = self.net.tensor(key)
            self.opt.state[p]["momentum_buffer"] = torch.from_numpy(value.copy()).to(self.device)

    def extract(self, decisions: Mapping[str, int] | ir.Cell) -> dict[str, np.ndarray]:
        return self.net.extract(decisions)

    def predictor(self, decisions: Mapping[str, int] | ir.Cell,
                  calibrate: list[list[np.ndarray]]) -> Any:
        """``predict(features, size, active)`` of the candidate's stand-alone head
        with its inherited weights, after its BatchNorm statistics are measured anew on
        the ``calibrate`` batches (a cumulative average, in train mode, dropout off)."""
        from torch.nn import functional as F

        cell = decisions if isinstance(decisions, ir.Cell) else self.net.cell(decisions)
        width = infer_channels(cell, self.net.in_channels)[cell.output]
        head = ProxyHead(build(cell, self.net.in_channels, seed=self.task.seed, **self.net.bn),
                         width, self.net.num_classes or 0)
        import_weights(head, self.net.extract(cell))
        head.to(self.device).eval()
        norms = [m for m in head.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for batch in calibrate if norms else ():
                head(*[torch.from_numpy(f).to(self.device) for f in batch])
        head.eval()
        align = self.spec.align_corners

        @torch.no_grad()
        def predict(features: list[np.ndarray], size: tuple[int, int],
                    active: Any = (0,)) -> list[np.ndarray]:
            xs = [torch.from_numpy(f).to(self.device) for f in features]
            logits = F.interpolate(head(*xs), size=tuple(size), mode="bilinear",
                                   align_corners=align)
            return [labels_of(logits).cpu().numpy()]

        predict.head = head  # type: ignore[attr-defined]
        return predict


def supernet_steps(space: Space, cache: Any, task: Any, in_channels: Mapping[str, int],
                   bank: rule.Bank | None = None) -> SupernetSteps:
    """The backend's ``supernet_steps`` hook (:class:`SupernetSteps`)."""
    return SupernetSteps(space, cache, task, in_channels, bank)


def compile_space(space: Space, in_channels: int | Mapping[str, int], output_stride: int = 16,
                  seed: int = 0, **options: Any) -> Supernet:
    """The supernet of ``space`` (the backend's ``compile_space`` hook)."""
    return Supernet(space, in_channels, output_stride=output_stride, seed=seed, **options)


__all__ = ["CACHED_MODULES", "Supernet", "SupernetSteps", "compile_space", "supernet_steps"]
