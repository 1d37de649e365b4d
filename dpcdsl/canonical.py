"""The canonical weight schema every backend follows, and seeded initial weights in it.

A node with weights has, under its name: ``conv.weight`` (conv, pool), or
``depthwise.weight`` and ``pointwise.weight`` (sepconv), each conv followed by its
BatchNorm (``bn``, ``depthwise_bn``, ``pointwise_bn``: ``weight``, ``bias``,
``running_mean``, ``running_var``) unless ``bn = false``. Shapes are PyTorch's (OIHW).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpcdsl import ir
from dpcdsl.cost import infer_channels

Shape = tuple[int, ...]


def _bn(prefix: str, channels: int, bn: bool) -> dict[str, Shape]:
    if not bn:
        return {}
    return {f"{prefix}.{k}": (channels,) for k in ("weight", "bias", "running_mean",
                                                   "running_var")}


def weight_shapes(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, Shape]:
    """Canonical name -> shape, for every weight of ``cell``."""
    chans = infer_channels(cell, in_channels)
    out: dict[str, Shape] = {}
    for node in cell.nodes:
        cin, cout = chans[node.inputs[0]], chans[node.name]
        n = node.name
        if node.op == "conv":
            k = node.attr("kernel")
            out[f"{n}.conv.weight"] = (cout, cin, k, k)
            out.update(_bn(f"{n}.bn", cout, node.attr("bn")))
        elif node.op == "sepconv":
            k = node.attr("kernel")
            out[f"{n}.depthwise.weight"] = (cin, 1, k, k)
            out.update(_bn(f"{n}.depthwise_bn", cin, node.attr("bn")))
            out[f"{n}.pointwise.weight"] = (cout, cin, 1, 1)
            out.update(_bn(f"{n}.pointwise_bn", cout, node.attr("bn")))
        elif node.op == "pool":
            out[f"{n}.conv.weight"] = (cout, cin, 1, 1)
            out.update(_bn(f"{n}.bn", cout, node.attr("bn")))
    return out


def initial_weights(shapes: Mapping[str, Shape], seed: int) -> dict[str, Any]:
    """Seeded initial weights for a canonical schema, the same in every backend: convs
    He-normal (fan-in), BN scale 1 and shift 0, running statistics 0 and 1, biases 0."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "weight" and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            out[name] = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        elif leaf in ("weight", "running_var"):
            out[name] = np.ones(shape, np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out
