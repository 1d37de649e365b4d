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

from dpcdsl import limits
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.printer import print_expr
from dpcdsl.ops import (
    OPS,
    OpError,
    Tensor,
    Weight,
    feature_size,
    pool_window,
    pooled_size,
    reference_window,
)

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
    madds: int = 0  # nominal: every weight at every output position
    computed_madds: int = 0  # what the backends compute (taps over padding skipped)

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

    @property
    def computed_madds(self) -> int:
        """The multiply-adds the compiled module computes at these sizes: ``madds``
        less the atrous taps that read only padding."""
        return self._sum("computed_madds")

    def totals(self) -> dict[str, int]:
        return {
            "branch_conv_weights": self.branch_conv_weights,
            "projection_weights": self.projection_weights,
            "bn_params": self.bn_params,
            "params": self.params,
            "branch_madds": self.branch_madds,
            "madds": self.madds,
            "computed_madds": self.computed_madds,
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
    """A short label from the op registry: ``sepconv 3x3 r(1,6)``, ``pool 2x4``."""
    return OPS[node.op].describe(dict(node.attrs))


def _per_input(value: int | Size | Mapping[str, Any], inputs: tuple[str, ...],
               what: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [i for i in inputs if i not in value]
        if missing:
            raise DpcError.at(None, f"no {what} given for input '{missing[0]}'",
                              code="DPC601")
        return {i: value[i] for i in inputs}
    return {i: value for i in inputs}


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _input_tensor(cell: ir.Cell, name: str, channels: Any, size: Any) -> Tensor:
    """The tensor of an input, from the channels and size a caller gives: positive
    integers within the limits, or a located error that names the input."""
    if not _positive(channels):
        raise DpcError.at(cell.span, f"the channels of input '{name}' must be a positive "
                          f"integer, got {channels!r}", hint="in_channels=2048, or "
                          "--in-channels 2048 on the command line", code="DPC601")
    if size is not None:
        if (not isinstance(size, tuple | list) or len(size) != 2
                or not all(_positive(s) for s in size)):
            raise DpcError.at(cell.span, f"the size of input '{name}' must be two positive "
                              f"integers (height, width), got {size!r}", code="DPC601")
        size = (int(size[0]), int(size[1]))
    limits.check_tensor(channels, size, cell.span, f"input '{name}'")
    return Tensor(channels, size)


def _error(node: ir.Node, e: OpError) -> DpcError:
    return DpcError.at(node.span, f"node '{node.name}': {e.message}", hint=e.hint,
                       code="DPC601")


def out_tensor(node: ir.Node, ins: list[Tensor]) -> Tensor:
    """The tensor a node makes from its inputs (sizes may be unknown: None)."""
    try:
        return OPS[node.op].out(dict(node.attrs), ins)
    except OpError as e:
        raise _error(node, e) from None


def node_weights(node: ir.Node, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    """A node's canonical weights, names relative to the node (``conv.weight``)."""
    spec = OPS[node.op]
    if spec.weights is None:
        return {}
    return spec.weights(dict(node.attrs), ins, out)


def with_widths(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> ir.Cell:
    """``cell`` with every width it reads off a tensor (``x.channels``, and arithmetic
    on it) worked out for ``in_channels``: what the backends build, the cost model
    costs and the weights are named from. The cell itself when it reads none. A width
    that does not fit its argument (a conv of ``x.channels // 64`` channels on 32) is
    a located error that names the node."""
    if not any(isinstance(v, ir.IRNode) for n in cell.nodes for _, v in n.attrs):
        return cell
    chans = _per_input(in_channels, cell.inputs, "channel count")
    nodes = []
    for node in cell.nodes:
        attrs = tuple((k, _width(node, k, v, chans) if isinstance(v, ir.IRNode) else v)
                      for k, v in node.attrs)
        node = node.model_copy(update={"attrs": attrs})
        ins = [Tensor(chans[i], None) for i in node.inputs]
        chans[node.name] = out_tensor(node, ins).channels
        nodes.append(node)
    return cell.model_copy(update={"nodes": tuple(nodes)})


def _width(node: ir.Node, key: str, expr: Any, chans: Mapping[str, int]) -> int:
    """The value of the width ``expr`` of the argument ``key`` of ``node``."""
    def value(e: Any) -> int:
        if isinstance(e, ir.ChannelsOf):
            return int(chans[e.tensor.id])
        if isinstance(e, ir.Arith):
            left, right = value(e.left), value(e.right)
            if e.op == "//" and right == 0:
                raise DpcError.at(node.span, f"node '{node.name}': {key} = "
                                  f"{print_expr(expr)} divides by 0 here ({_given(expr, chans)})",
                                  code="DPC601")
            return int(ir.ARITH[e.op](left, right))
        return int(e.value)

    result = value(expr)
    arg = OPS[node.op].arg(key)
    problem = arg.problem(result) if arg is not None else None
    if problem is not None:
        raise DpcError.at(node.span, f"node '{node.name}': {node.op}({key} = "
                          f"{print_expr(expr)}) is {result} here ({_given(expr, chans)}): "
                          f"{problem}", hint="a width read off a tensor depends on the "
                          "input channels the cell is built for", code="DPC601")
    return result


def _given(expr: Any, chans: Mapping[str, int]) -> str:
    """The widths ``expr`` reads, as ``x.channels = 32``."""
    read = dict.fromkeys(n.tensor.id for n in expr.walk() if isinstance(n, ir.ChannelsOf))
    return ", ".join(f"{t}.channels = {chans[t]}" for t in read)


def infer(cell: ir.Cell, in_channels: int | Mapping[str, int],
          size: Size | Mapping[str, Size] | None = None) -> dict[str, Tensor]:
    """The tensor of every input and node of ``cell``: channels, and sizes when the
    inputs' sizes are given. An architecture over the limits on channels, weights or
    (with sizes) activations (:mod:`dpcdsl.limits`) is refused here, before any backend
    allocates it."""
    cell = with_widths(cell, in_channels)
    chans = _per_input(in_channels, cell.inputs, "channel count")
    sizes = _per_input(size, cell.inputs, "size") if size is not None else {}
    out = {i: _input_tensor(cell, i, chans[i], sizes.get(i)) for i in cell.inputs}
    weights = values = 0
    for node in cell.nodes:
        ins = [out[i] for i in node.inputs]
        t = out[node.name] = out_tensor(node, ins)
        limits.check_tensor(t.channels, t.size, node.span, f"node '{node.name}'")
        weights += sum(w.size for w in node_weights(node, ins, t).values())
        limits.check_weights(weights, node.span)
        if t.size is not None:
            values += t.channels * t.size[0] * t.size[1]
            limits.check_activations(values, node.span)
    return out


def infer_channels(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, int]:
    """The channel count of every input and node of ``cell``; no sizes are needed."""
    return {k: t.channels for k, t in infer(cell, in_channels).items()}


def cost(cell: ir.Cell, in_channels: int | Mapping[str, int],
         size: Size | Mapping[str, Size]) -> CostReport:
    """Params and multiply-adds of each node of ``cell``.

    ``in_channels`` and ``size`` (H, W) are given for every input, or as a mapping from
    input name, for cells with several inputs (a decoder reading two feature maps).
    """
    cell = with_widths(cell, in_channels)
    tensors = infer(cell, in_channels, size)
    projections = _projections(cell)
    rows = [NodeCost(name=i, op="input", detail="input", role="input",
                     channels=tensors[i].channels, size=tensors[i].size or (0, 0))
            for i in cell.inputs]
    for node in cell.nodes:
        spec = OPS[node.op]
        ins, out = [tensors[i] for i in node.inputs], tensors[node.name]
        weights = node_weights(node, ins, out)
        try:
            madds = spec.madds(dict(node.attrs), ins, out, weights) if spec.madds else 0
            computed = madds if spec.computed_madds is None else \
                spec.computed_madds(dict(node.attrs), ins, out, weights)
        except OpError as e:
            raise _error(node, e) from None
        conv = sum(w.size for w in weights.values() if w.kind == "weight")
        role = "projection" if node.name in projections else "branch" if conv else "other"
        rows.append(NodeCost(name=node.name, op=node.op, detail=describe(node), role=role,
                             channels=out.channels, size=out.size or (0, 0),
                             conv_weights=conv,
                             bn_params=sum(w.size for w in weights.values()
                                           if w.kind == "norm"),
                             madds=madds, computed_madds=computed))
    return CostReport(cell=cell.name, in_channels={i: tensors[i].channels for i in cell.inputs},
                      sizes={i: tensors[i].size or (0, 0) for i in cell.inputs},
                      nodes=tuple(rows))


def through_passthrough(cell: ir.Cell, name: str) -> ir.Node | None:
    """The node named ``name``, followed back through ops that pass their input on
    unchanged (dropout, identity); None for a cell input."""
    by_name = {n.name: n for n in cell.nodes}
    node = by_name.get(name)
    while node is not None and OPS[node.op].passthrough:
        node = by_name.get(node.inputs[0])
    return node


def projection_of(cell: ir.Cell, node: ir.Node) -> ir.Node | None:
    """The gathering node (a concat) that ``node`` projects, when ``node`` is a
    projection: an op that can project (a 1x1 conv) reading, through passthrough ops,
    an op that gathers its inputs. None otherwise."""
    spec = OPS[node.op]
    if spec.projects is None or not spec.projects(dict(node.attrs)):
        return None
    src = through_passthrough(cell, node.inputs[0])
    return src if src is not None and OPS[src.op].gathers else None


def _projections(cell: ir.Cell) -> set[str]:
    return {n.name for n in cell.nodes if projection_of(cell, n) is not None}


__all__ = ["CostReport", "NodeCost", "cost", "describe", "feature_size", "infer",
           "infer_channels", "node_weights", "out_tensor", "pool_window", "pooled_size",
           "projection_of", "reference_window", "through_passthrough"]
