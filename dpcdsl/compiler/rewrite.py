"""Rewrites of concrete cells that keep their structure."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import Size, infer, with_widths
from dpcdsl.ops import OPS

#: the output stride that rates in ``.dpc`` files are written for, as in DeepLab
BASE_OUTPUT_STRIDE = 16


def at_output_stride(cell: ir.Cell, output_stride: int) -> ir.Cell:
    """``cell`` for backbone features at ``output_stride``.

    Rates are written for output stride 16; each op's ``at_output_stride`` rule in the
    op registry says what changes: as in the DeepLab reference the rates of atrous
    convs (kernel above 1) scale by 16 / output_stride (doubled at 8), and
    reference-mode pools take the new output stride, which sets their window.
    """
    if output_stride == BASE_OUTPUT_STRIDE:
        return cell
    if output_stride < 1:
        raise DpcError.at(cell.span, f"output stride must be positive, got {output_stride}",
                          code="DPC603")

    def attrs_of(node: ir.Node) -> dict[str, Any] | None:
        rule = OPS[node.op].at_output_stride
        return None if rule is None else rule(
            dict(node.attrs), functools.partial(_scaled, node, output_stride), output_stride)

    return _rewritten(cell, attrs_of)


def _rewritten(cell: ir.Cell, attrs_of: Callable[[ir.Node], dict[str, Any] | None]
               ) -> ir.Cell:
    """``cell`` with each node's attributes as ``attrs_of(node)`` gives them (None:
    the node unchanged)."""
    nodes = []
    for node in cell.nodes:
        attrs = attrs_of(node)
        nodes.append(node if attrs is None else
                     node.model_copy(update={"attrs": tuple(sorted(attrs.items()))}))
    return cell.model_copy(update={"nodes": tuple(nodes)})


def _scaled(node: ir.Node, output_stride: int, rate: int) -> int:
    scaled, rest = divmod(rate * BASE_OUTPUT_STRIDE, output_stride)
    if rest or scaled < 1:
        raise DpcError.at(node.span, f"node '{node.name}': rate {rate} does not scale to "
                          f"output stride {output_stride} (16 / {output_stride} x {rate} is "
                          "not a positive integer)",
                          hint="use output stride 8 or 16, or rates that divide evenly",
                          code="DPC603")
    return scaled


def at_size(cell: ir.Cell, in_channels: int | Mapping[str, int],
            size: Size | Mapping[str, Size]) -> ir.Cell:
    """``cell`` as the computation it is on inputs of ``size``: each op's ``at_size``
    rule in the op registry puts its attributes in one canonical form for its inputs'
    sizes (an atrous conv's rate at least the map's size on an axis becomes that size:
    its outer taps read only padding). Two cells with the same result compute the same
    function at that size, so a search trains one of them. Widths read off tensors
    (``x.channels``) are worked out for ``in_channels``."""
    cell = with_widths(cell, in_channels)
    tensors = infer(cell, in_channels, size)

    def attrs_of(node: ir.Node) -> dict[str, Any] | None:
        rule = OPS[node.op].at_size
        return None if rule is None else rule(dict(node.attrs),
                                              [tensors[i] for i in node.inputs])

    return _rewritten(cell, attrs_of)
