"""Analytic cost of a concrete cell: parameters and multiply-adds per node.

No framework is involved. Conv weights, BatchNorm parameters and the projection are
reported apart, so the DPC paper's Table 1 (branch conv weights only) can be checked
line by line. Multiply-adds count the convolutions; averaging, resizing, BN and ReLU
are not multiply-adds and are left out, as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from dpcdsl import ir
from dpcdsl.errors import DpcError

Size = tuple[int, int]


class NodeCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    op: str
    detail: str
    role: str  # "input" | "branch" | "projection" | "other"
    channels: int
    size: Size
    conv_weights: int = 0
    bn_params: int = 0
    madds: int = 0

    @property
    def params(self) -> int:
        return self.conv_weights + self.bn_params


class CostReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    cell: str
    in_channels: dict[str, int]
    sizes: dict[str, Size]
    nodes: tuple[NodeCost, ...]

    def _sum(self, field: str, role: str | None = None) -> int:
        return sum(getattr(n, field) for n in self.nodes if role is None or n.role == role)

    @property
    def branch_conv_weights(self) -> int:
        """Conv weights of every node but the projection (the paper's Table 1 figure)."""
        return self._sum("conv_weights", "branch")

    @property
    def projection_weights(self) -> int:
        return self._sum("conv_weights", "projection")

    @property
    def bn_params(self) -> int:
        return self._sum("bn_params")

    @property
    def params(self) -> int:
        return self._sum("conv_weights") + self.bn_params

    @property
    def branch_madds(self) -> int:
        return self._sum("madds", "branch")

    @property
    def madds(self) -> int:
        return self._sum("madds")

    def totals(self) -> dict[str, int]:
        return {
            "branch_conv_weights": self.branch_conv_weights,
            "projection_weights": self.projection_weights,
            "bn_params": self.bn_params,
            "params": self.params,
            "branch_madds": self.branch_madds,
            "madds": self.madds,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "in_channels": self.in_channels,
            "sizes": {k: list(v) for k, v in self.sizes.items()},
            "nodes": [
                {**n.model_dump(), "size": list(n.size), "params": n.params}
                for n in self.nodes
            ],
            "totals": self.totals(),
        }


def describe(node: ir.Node) -> str:
    """A short label: ``sepconv 3x3 r(1,6)``, ``pool 2x4 paper``."""
    a: dict[str, Any] = dict(node.attrs)
    if node.op in ("conv", "sepconv"):
        k = a["kernel"]
        rate = a["rate"]
        r = "" if rate == (1, 1) else f" r{rate[0]}" if rate[0] == rate[1] else \
            f" r({rate[0]},{rate[1]})"
        return f"{node.op} {k}x{k}{r}"
    if node.op == "pool":
        g = a["grid"]
        return f"pool {g[0]}x{g[1]}" + ("" if a["mode"] == "paper" else " reference")
    if node.op == "dropout":
        return f"dropout {a['p']:g}"
    return node.op


def reference_window(crop: int, output_stride: int, grid: int) -> int:
    """The DeepLab pooling window: floor((crop - 1) / (OS * g) + 1)."""
    return (crop - 1) // (output_stride * grid) + 1


def feature_size(crop: int, output_stride: int) -> int:
    """floor((crop - 1) / OS + 1), the backbone's feature size for a crop."""
    return (crop - 1) // output_stride + 1


def _per_input(value: int | Size | Mapping[str, Any], inputs: tuple[str, ...],
               what: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [i for i in inputs if i not in value]
        if missing:
            raise DpcError.at(None, f"no {what} given for input '{missing[0]}'")
        return {i: value[i] for i in inputs}
    return {i: value for i in inputs}


def _error(node: ir.Node, message: str) -> DpcError:
    return DpcError.at(node.span, f"node '{node.name}': {message}")


def out_channels(node: ir.Node, in_channels: list[int]) -> int:
    """The channel count a node makes from its inputs' channel counts."""
    if node.op == "concat":
        return sum(in_channels)
    if node.op == "sum" and len(set(in_channels)) > 1:
        raise _error(node, f"sum of inputs with different channel counts {in_channels}")
    if node.op in ("conv", "sepconv", "pool"):
        return int(node.attr("channels"))
    return in_channels[0]


def infer_channels(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, int]:
    """The channel count of every input and node of ``cell``; no sizes are needed."""
    chans = _per_input(in_channels, cell.inputs, "channel count")
    for node in cell.nodes:
        chans[node.name] = out_channels(node, [chans[i] for i in node.inputs])
    return chans


def cost(cell: ir.Cell, in_channels: int | Mapping[str, int],
         size: Size | Mapping[str, Size]) -> CostReport:
    """Params and multiply-adds of each node of ``cell``.

    ``in_channels`` and ``size`` (H, W) are given for every input, or as a mapping from
    input name, for cells with several inputs (a decoder reading two feature maps).
    """
    chans = infer_channels(cell, in_channels)
    sizes = {k: tuple(v) for k, v in _per_input(size, cell.inputs, "size").items()}
    shape: dict[str, Size] = dict(sizes)
    by_name = {n.name: n for n in cell.nodes}
    rows = [NodeCost(name=i, op="input", detail="input", role="input", channels=chans[i],
                     size=sizes[i]) for i in cell.inputs]
    for node in cell.nodes:
        a: dict[str, Any] = dict(node.attrs)
        cin, cout = chans[node.inputs[0]], chans[node.name]
        h, w = shape[node.inputs[0]]
        weights = bn = madds = 0
        out_size: Size = (h, w)
        if node.op in ("concat", "sum"):
            in_sizes = {shape[i] for i in node.inputs}
            if len(in_sizes) > 1:
                raise _error(node, f"{node.op} of feature maps of different sizes "
                             f"{sorted(in_sizes)}; upsample them first")
        elif node.op == "upsample":
            out_size = shape[node.inputs[1]]
        elif node.op == "conv":
            k = a["kernel"]
            weights = k * k * cin * cout
            bn = 2 * cout if a["bn"] else 0
            madds = weights * h * w
        elif node.op == "sepconv":
            k = a["kernel"]
            weights = k * k * cin + cin * cout
            bn = 2 * (cin + cout) if a["bn"] else 0
            madds = weights * h * w
        elif node.op == "pool":
            ph, pw = pooled_size(node, (h, w))
            weights = cin * cout
            bn = 2 * cout if a["bn"] else 0
            madds = weights * ph * pw
        shape[node.name] = out_size
        rows.append(NodeCost(name=node.name, op=node.op, detail=describe(node),
                             role=_role(node, by_name) if weights else "other",
                             channels=cout, size=out_size, conv_weights=weights,
                             bn_params=bn, madds=madds))
    return CostReport(cell=cell.name, in_channels={i: chans[i] for i in cell.inputs},
                      sizes=sizes, nodes=tuple(rows))


def pooled_size(node: ir.Node, size: Size) -> Size:
    """The size of a pool node's map between averaging and the 1x1 conv: the grid in
    paper mode, ``size - window + 1`` for the reference's stride-1 window."""
    h, w = size
    gh, gw = node.attr("grid")
    if gh > h or gw > w:
        raise _error(node, f"pool grid {gh}x{gw} is larger than the {h}x{w} feature map")
    if node.attr("mode") == "paper":
        return gh, gw
    ph, pw = (s - k + 1 for s, k in zip(size, pool_window(node)))
    if ph < 1 or pw < 1:
        (ch, cw) = node.attr("crop")
        raise _error(node, f"the reference pooling window for crop {ch}x{cw} is larger "
                     f"than the {h}x{w} feature map")
    return ph, pw


def pool_window(node: ir.Node) -> Size:
    """The reference mode's averaging window (h, w) for a pool node."""
    (ch, cw), stride = node.attr("crop"), node.attr("output_stride")
    gh, gw = node.attr("grid")
    return reference_window(ch, stride, gh), reference_window(cw, stride, gw)


def _role(node: ir.Node, by_name: Mapping[str, ir.Node]) -> str:
    """A 1x1 conv fed by a concat (through dropout or identity) is the projection."""
    if node.op != "conv" or node.attr("kernel") != 1:
        return "branch"
    src = by_name.get(node.inputs[0])
    while src is not None and src.op in ("dropout", "identity"):
        src = by_name.get(src.inputs[0])
    return "projection" if src is not None and src.op == "concat" else "branch"
