"""The canonical weight schema every backend follows, and seeded initial weights in it.

Each op declares its weights in the op registry (:mod:`dpcdsl.ops`), names relative to
the node: ``conv.weight`` (conv, pool), or ``depthwise.weight`` and
``pointwise.weight`` (sepconv), each with ``.bias`` when ``bias = true``, and each
followed by its norm: BatchNorm (``bn``, ``depthwise_bn``, ``pointwise_bn``: ``weight``,
``bias``, ``running_mean``, ``running_var``), GroupNorm (``gn``, ``depthwise_gn``, ...:
``weight``, ``bias``) or none. A cell's weights are its nodes' under the node names
(``b0.depthwise.weight``). Shapes are PyTorch's (OIHW).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer, node_weights, with_widths
from dpcdsl.ops import Weight

Shape = tuple[int, ...]


def weights_of(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, Weight]:
    """Canonical name -> :class:`~dpcdsl.ops.Weight`, for every weight of ``cell``, as
    the op registry declares them."""
    cell = with_widths(cell, in_channels)
    tensors = infer(cell, in_channels)
    out: dict[str, Weight] = {}
    for node in cell.nodes:
        ws = node_weights(node, [tensors[i] for i in node.inputs], tensors[node.name])
        out.update({f"{node.name}.{k}": w for k, w in ws.items()})
    return out


def weight_shapes(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, Shape]:
    """Canonical name -> shape, for every weight of ``cell``."""
    return {k: w.shape for k, w in weights_of(cell, in_channels).items()}


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
