"""Weights under canonical names, in PyTorch's layout, and safetensors files.

A canonical name is a node name from the ``.dpc`` text followed by the layer's own
parameter name: ``b0.depthwise.weight``, ``project.bn.running_var``. Parameters and
BatchNorm running statistics are weights; ``num_batches_tracked`` is not (it is a
counter, and only matters for cumulative averaging, which the cells do not use).
Inside a larger model (a segmentation model) the cell's prefix comes first:
``head.b0.depthwise.weight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dpcdsl.train import weightfile

SKIPPED = ("num_batches_tracked",)


def _canonical_keys(module: nn.Module) -> dict[str, str]:
    """state_dict key -> canonical name, for every weight."""
    renames: dict[str, str] = {}
    for prefix, sub in module.named_modules():
        mapping = getattr(type(sub), "node_names", None)
        if isinstance(mapping, dict):
            for attr, node in mapping.items():
                if attr != node:
                    renames[f"{prefix}.{attr}" if prefix else attr] = \
                        f"{prefix}.{node}" if prefix else node
    out = {}
    for key in module.state_dict():
        if key.rsplit(".", 1)[-1] in SKIPPED:
            continue
        name = key
        # the longest renamed module path that prefixes the key
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in renames:
                name = ".".join([renames[head], *parts[cut:]])
                break
        out[key] = name
    return out


def export_weights(module: nn.Module) -> dict[str, np.ndarray]:
    """Every weight of ``module`` as a numpy array under its canonical name."""
    state = module.state_dict()
    return {name: state[key].detach().cpu().numpy().copy()
            for key, name in _canonical_keys(module).items()}


def import_weights(module: nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Load canonical weights into ``module``. A missing, extra or mis-shaped tensor is
    an error that names it (all of them, not just the first); nothing is loaded then."""
    keys = _canonical_keys(module)
    state = module.state_dict()
    by_name = {name: key for key, name in keys.items()}
    weightfile.check({name: tuple(state[key].shape) for name, key in by_name.items()},
                     weights, type(module).__name__)
    with torch.no_grad():
        for name, key in by_name.items():
            target = state[key]
            target.copy_(torch.as_tensor(np.asarray(weights[name]), dtype=target.dtype))


def save_weights(module: nn.Module, path: str | Path) -> None:
    """Write the canonical weights to a safetensors file (no pickle)."""
    weightfile.write(export_weights(module), path)


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Read canonical weights from a safetensors file into ``module``."""
    import_weights(module, weightfile.read(path))
