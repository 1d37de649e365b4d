"""A cell as a graph: networkx for analysis, graphviz for pictures."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import describe
from dpcdsl.ops import OPS

OUTPUT = "__output__"
#: fills of the input and output nodes; each op's own comes from the op registry
_ENDS = "#dbe9f6"


def to_networkx(cell: ir.Cell) -> nx.DiGraph:
    """Nodes: the inputs, every op, and an output node; edges follow the data flow.
    Each node has ``op`` and ``label``; each edge ``slot`` (argument position)."""
    g = nx.DiGraph(name=cell.name)
    for i in cell.inputs:
        g.add_node(i, op="input", label=i)
    for n in cell.nodes:
        g.add_node(n.name, op=n.op, label=describe(n), attrs=dict(n.attrs))
        for slot, src in enumerate(n.inputs):
            g.add_edge(src, n.name, slot=slot)
    g.add_node(OUTPUT, op="output", label="output")
    g.add_edge(cell.output, OUTPUT, slot=0)
    return g


def to_dot(cell: ir.Cell) -> str:
    """Graphviz DOT text, top to bottom from the inputs to the output."""
    import graphviz

    g = to_networkx(cell)
    dot = graphviz.Digraph(cell.name, graph_attr={"rankdir": "TB", "label": cell.name,
                                                  "labelloc": "t", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "style": "rounded,filled",
                                      "fontname": "Helvetica"})
    for name, data in g.nodes(data=True):
        op = data["op"]
        label = data["label"] if op in ("input", "output") else f"{name}\n{data['label']}"
        shape = "ellipse" if op in ("input", "output") else "box"
        fill = _ENDS if op in ("input", "output") else OPS[op].color
        dot.node(name, label, shape=shape, fillcolor=fill)
    for src, dst in g.edges():
        dot.edge(src, dst)
    return dot.source


def render(cell: ir.Cell, path: str | Path) -> Path:
    """Write ``cell`` as ``.dot``, ``.svg`` or ``.png``, chosen by the suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("dot", "gv", "svg", "png", "pdf"):
        raise DpcError.at(None, f"cannot draw to '{path.name}': use a .dot, .svg, .png or "
                          ".pdf file name", code="DPC903")
    if fmt in ("dot", "gv"):
        path.write_text(to_dot(cell))
        return path
    path.write_bytes(_pipe(cell, fmt))
    return path


def to_svg(cell: ir.Cell) -> str:
    """The picture as SVG text, for embedding in HTML."""
    return _pipe(cell, "svg").decode()


def _pipe(cell: ir.Cell, fmt: str) -> bytes:
    import graphviz

    try:
        return bytes(graphviz.Source(to_dot(cell)).pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise DpcError.at(None, "the graphviz program `dot` is not installed",
                          hint="install it (Debian: `apt-get install graphviz`), or write "
                               "a .dot file instead", code="DPC902") from None
