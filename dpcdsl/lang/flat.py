"""The flat IR: a concrete architecture as primitive nodes in topological order, with its
canonical text (one node per line, defaults left out) and a stable content hash."""

from __future__ import annotations

import hashlib
from typing import Any, Union

from dpcdsl.lang._arith import arith_text
from dpcdsl.lang._node import IRNode
from dpcdsl.lang.levels import Level
from dpcdsl.ops import CELL_CHANNELS, OPS

INDENT = "  "

AttrValue = Union[int, float, bool, str, tuple[int, ...]]  # noqa: UP007


class Node(IRNode):
    """One primitive operation of a concrete cell. ``attrs`` holds every attribute of
    the op, defaults included, sorted by name."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: tuple[tuple[str, AttrValue], ...] = ()

    def attr(self, key: str) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        raise KeyError(f"node {self.name!r} ({self.op}) has no attribute {key!r}")


class Cell(IRNode):
    """A concrete architecture: nodes in topological order, reading ``inputs`` or
    earlier nodes; ``output`` names the result."""

    name: str
    inputs: tuple[str, ...]
    #: the backbone level each input reads, where the cell says it (``low @ 4``,
    #: ``block @ 16[0]``); () when none does
    levels: tuple[Level | None, ...] = ()
    channels: int = 256
    nodes: tuple[Node, ...]
    output: str

    @property
    def strides(self) -> tuple[int | None, ...]:
        """The stride each input reads, where the cell says it; () when none does."""
        return tuple(None if v is None else v.stride for v in self.levels)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def canonical_text(self) -> str:
        """The cell as canonical ``.dpc`` text, one node per line."""
        return print_cell(self)

    @property
    def hash(self) -> str:
        """A stable content hash: equal for equal architectures, whatever the cell's
        name or the spans it was parsed from."""
        body = print_cell(self.model_copy(update={"name": "_"}))
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def float_text(v: float) -> str:
    """A float as ``.dpc`` text: always with a point or an exponent."""
    text = repr(float(v))
    return text if any(c in text for c in ".eE") else text + ".0"


def width_text(e: Any) -> str:
    """A width read off a tensor, as the text writes it: ``x.channels // 4``."""
    if hasattr(e, "tensor"):
        return f"{e.tensor.id}.channels"
    if hasattr(e, "op"):
        return arith_text(e, width_text)
    return str(e.value)


def attr_text(value: Any) -> str:
    if isinstance(value, IRNode):  # a width read off a tensor
        return width_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return str(value[0])
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def node_call(node: Node, cell_channels: int) -> str:
    """``op(inputs, key = value, ...)`` for one flat node, defaults left out."""
    spec = OPS[node.op]
    tensor_kw = [a.name for a in spec.tensor_args]
    positional = node.inputs[: len(node.inputs) - len(tensor_kw)]
    parts = list(positional)
    parts += [f"{k} = {v}" for k, v in zip(tensor_kw, node.inputs[len(positional):])]
    attrs = dict(node.attrs)
    for arg in spec.value_args:
        value = attrs[arg.name]
        default = cell_channels if arg.default is CELL_CHANNELS else arg.default
        if value != default or type(value) is not type(default):
            parts.append(f"{arg.name} = {attr_text(value)}")
    return f"{node.op}({', '.join(parts)})"


def print_cell(cell: Cell) -> str:
    """The canonical text of a flat cell."""
    inputs = [i if not cell.levels or cell.levels[k] is None else f"{i} @ {cell.levels[k]}"
              for k, i in enumerate(cell.inputs)]
    head = ", ".join([*inputs, f"channels = {cell.channels}"])
    lines = [f"cell {cell.name}({head}) {{"]
    lines += [f"{INDENT}{n.name} = {node_call(n, cell.channels)}" for n in cell.nodes]
    lines.append(f"{INDENT}return {cell.output}")
    lines.append("}")
    return "\n".join(lines) + "\n"
