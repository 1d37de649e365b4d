"""The reference implementation's JSON cell format (tensorflow/models, DeepLab).

A list of branches, each ``{"op": "conv" | "pyramid_pooling", "kernel": k,
"rate": [r_h, r_w], "grid_size": [g_h, g_w], "input": i}``; ``input`` -1 reads the
backbone features, ``k`` the output of branch k. Kernel 3 with ``conv`` is a 3x3
atrous separable conv. The cell then concatenates the branches, applies dropout
(keep 0.9) and a 1x1 projection, which the JSON leaves implicit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dpcdsl import ir
from dpcdsl.errors import DpcError
from dpcdsl.program import load_text
from dpcdsl.space import Space

_SPAN = ir.Span


def _fail(file: str, message: str, hint: str | None = None) -> DpcError:
    return DpcError.at(_SPAN(file=file, line=1, column=1), message, hint=hint)


def _pair(item: dict[str, Any], key: str, i: int, file: str) -> tuple[int, int]:
    v = item.get(key)
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x >= 1
                                                        for x in v)):
        raise _fail(file, f"branch {i}: `{key}` must be a list of two positive integers, "
                    f"got {v!r}")
    return v[0], v[1]


def to_dpc_text(branches: Any, name: str = "dpc", file: str = "<json>",
                channels: int = 256, dropout: float = 0.1) -> str:
    """The ``.dpc`` text of a DeepLab JSON cell (already decoded from JSON)."""
    if not isinstance(branches, list) or not branches:
        raise _fail(file, "a DeepLab cell is a non-empty JSON list of branches")
    lines = [f"cell {name}(x, channels = {channels}) {{"]
    for i, item in enumerate(branches):
        if not isinstance(item, dict):
            raise _fail(file, f"branch {i}: expected an object, got {item!r}")
        op, src = item.get("op"), item.get("input")
        if not isinstance(src, int) or not -1 <= src < i:
            raise _fail(file, f"branch {i}: `input` must be -1 (the features) or an "
                        f"earlier branch 0..{i - 1}, got {src!r}")
        reads = "x" if src == -1 else f"b{src}"
        if op == "conv":
            kernel = item.get("kernel")
            if kernel == 1:
                lines.append(f"  b{i} = conv({reads}, kernel = 1)")
            elif kernel == 3:
                rh, rw = _pair(item, "rate", i, file)
                rate = str(rh) if rh == rw else f"({rh}, {rw})"
                lines.append(f"  b{i} = sepconv({reads}, kernel = 3, rate = {rate})")
            else:
                raise _fail(file, f"branch {i}: `kernel` must be 1 or 3, got {kernel!r}")
        elif op == "pyramid_pooling":
            gh, gw = _pair(item, "grid_size", i, file)
            grid = str(gh) if gh == gw else f"({gh}, {gw})"
            lines.append(f"  b{i} = pool({reads}, grid = {grid})")
        else:
            raise _fail(file, f"branch {i}: unknown op {op!r}",
                        hint="the reference knows \"conv\" and \"pyramid_pooling\"")
    concat = ", ".join(f"b{i}" for i in range(len(branches)))
    lines.append(f"  return conv(dropout(concat({concat}), p = {dropout}), kernel = 1)")
    lines.append("}")
    return "\n".join(lines) + "\n"


def read(path: str | Path, name: str | None = None) -> tuple[str, ir.Cell]:
    """Read a DeepLab JSON file: its ``.dpc`` text and its concrete cell."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise _fail(str(path), f"cannot read {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise DpcError.at(_SPAN(file=str(path), line=e.lineno, column=e.colno),
                          f"invalid JSON: {e.msg}") from None
    cell_name = name or _identifier(path.stem)
    text = to_dpc_text(data, cell_name, str(path))
    return text, from_text(text, cell_name)


def from_text(text: str, cell: str | None = None) -> ir.Cell:
    return Space(load_text(text, "<deeplab>"), cell).concrete()


def _identifier(stem: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return out if out and not out[0].isdigit() else f"cell_{out}"


def to_json(cell: ir.Cell) -> list[dict[str, Any]]:
    """The DeepLab JSON list of a cell shaped like a DPC: branches reading the input
    or earlier branches, then concat, optional dropout, and a 1x1 projection."""
    if len(cell.inputs) != 1:
        raise _fail(cell.name, "a DeepLab cell has exactly one input")
    nodes = {n.name: n for n in cell.nodes}
    out = nodes.get(cell.output)
    src = nodes.get(out.inputs[0]) if out is not None and out.op == "conv" else None
    while src is not None and src.op in ("dropout", "identity"):
        src = nodes.get(src.inputs[0])
    if out is None or out.op != "conv" or out.attr("kernel") != 1 or src is None \
            or src.op != "concat":
        raise DpcError.at(cell.span, f"cell '{cell.name}' does not end in a 1x1 projection "
                          "of a concat of branches, so it has no DeepLab JSON form")
    index = {name: i for i, name in enumerate(src.inputs)}
    items = []
    for i, name in enumerate(src.inputs):
        node = nodes.get(name)
        if node is None:
            raise DpcError.at(cell.span, f"branch {i} is the input itself, which the "
                              "DeepLab format cannot express")
        reads = node.inputs[0]
        if reads == cell.inputs[0]:
            where = -1
        elif reads in index and index[reads] < i:
            where = index[reads]
        else:
            raise DpcError.at(node.span, f"branch '{name}' reads '{reads}', which is "
                              "neither the input nor an earlier branch")
        if node.op == "sepconv" and node.attr("kernel") == 3:
            items.append({"kernel": 3, "rate": list(node.attr("rate")), "op": "conv",
                          "input": where})
        elif node.op == "conv" and node.attr("kernel") == 1:
            items.append({"kernel": 1, "rate": [1, 1], "op": "conv", "input": where})
        elif node.op == "pool":
            items.append({"op": "pyramid_pooling", "grid_size": list(node.attr("grid")),
                          "input": where})
        else:
            raise DpcError.at(node.span, f"branch '{name}' is `{node.op}` "
                              f"({node.attrs}), which the DeepLab format cannot express",
                              hint="it knows 1x1 conv, 3x3 separable conv and pooling")
    return items


def write(cell: ir.Cell, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(cell), indent=1) + "\n")
    return path
