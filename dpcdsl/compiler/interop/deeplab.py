"""The reference implementation's JSON cell format (tensorflow/models, DeepLab).

Each op's JSON form is declared with the op (``deeplab`` in the op registry); this
module only lays out the list and its branch inputs.

A list of branches, each ``{"op": "conv" | "pyramid_pooling", "kernel": k,
"rate": [r_h, r_w], "grid_size": [g_h, g_w], "input": i}``; ``input`` -1 reads the
backbone features, ``k`` the output of branch k. Kernel 3 with ``conv`` is a 3x3
atrous separable conv. The cell then concatenates the branches, applies dropout
(keep 0.9) and a 1x1 projection, which the JSON leaves implicit.
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

from dpcdsl import limits
from dpcdsl._files import load_json
from dpcdsl.errors import Diagnostic, DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import projection_of
from dpcdsl.lang.program import load_text
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS, OpError

_SPAN = ir.Span


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40


def _show(value: Any) -> str:
    """A JSON value for a message: shortened, however long or deep it is."""
    return _REPR.repr(value)


def _fail(file: str, message: str, hint: str | None = None) -> DpcError:
    return DpcError.at(_SPAN(file=file, line=1, column=1), message, hint=hint,
                       code="DPC702")


def _branch(item: Any, i: int, file: str, options: dict[str, Any]) -> str:
    """The ``.dpc`` call of one JSON branch (without its input): the first registered op
    whose DeepLab form takes the item."""
    if not isinstance(item, dict):
        raise _fail(file, f"branch {i}: expected an object, got {_show(item)}")
    try:
        for spec in OPS.values():
            form = spec.deeplab
            args = form.from_json(item, options) if form is not None else None
            if args is not None:
                return f"{spec.name}(%s, {args})"
    except OpError as e:
        raise _fail(file, f"branch {i}: {e.message}", e.hint) from None
    known = sorted({s.deeplab.op for s in OPS.values() if s.deeplab is not None})
    raise _fail(file, f"branch {i}: unknown op {_show(item.get('op'))}",
                hint="the reference knows " + " and ".join(f'"{k}"' for k in known))


def to_dpc_text(branches: Any, name: str = "dpc", file: str = "<json>",
                channels: int = 256, dropout: float = 0.1, pooling: str = "reference",
                crop: int | tuple[int, int] | None = None) -> str:
    """The ``.dpc`` text of a DeepLab JSON cell (already decoded from JSON).

    ``pyramid_pooling`` becomes the reference's own computation (``mode = reference``:
    a stride-1 window set by ``crop``), or with ``pooling = "paper"`` the paper's grid.
    As in the reference, ``kernel`` is ``k`` or ``[k, k]`` and any negative ``input``
    reads the backbone features.
    """
    if pooling not in ("reference", "paper"):
        raise _fail(file, f"pooling must be 'reference' or 'paper', got {pooling!r}")
    if not isinstance(branches, list) or not branches:
        raise _fail(file, "a DeepLab cell is a non-empty JSON list of branches")
    if len(branches) > limits.MAX_JSON_BRANCHES:
        raise DpcError.at(_SPAN(file=file, line=1, column=1),
                          f"the cell has {len(branches):,} branches, more than "
                          f"{limits.MAX_JSON_BRANCHES:,}",
                          hint="dpcdsl.limits.MAX_JSON_BRANCHES sets this limit",
                          code=limits.CODE)
    options = {"pooling": pooling,
               "crop": (crop, crop) if isinstance(crop, int) else crop}
    lines = [f"cell {name}(x, channels = {channels}) {{"]
    for i, item in enumerate(branches):
        src = item.get("input") if isinstance(item, dict) else None
        call = _branch(item, i, file, options)
        if not isinstance(src, int) or isinstance(src, bool) or src >= i:
            raise _fail(file, f"branch {i}: `input` must be negative (the features) or an "
                        f"earlier branch 0..{i - 1}, got {_show(src)}")
        lines.append(f"  b{i} = " + call % ("x" if src < 0 else f"b{src}"))
    concat = ", ".join(f"b{i}" for i in range(len(branches)))
    lines.append(f"  return conv(dropout(concat({concat}), p = {dropout}), kernel = 1)")
    lines.append("}")
    return "\n".join(lines) + "\n"


def read(path: str | Path, name: str | None = None, pooling: str = "reference",
         crop: int | tuple[int, int] | None = None) -> tuple[str, ir.Cell]:
    """Read a DeepLab JSON file: its ``.dpc`` text and its concrete cell (see
    :func:`to_dpc_text` for ``pooling`` and ``crop``)."""
    path = Path(path)
    data = load_json(path, "DeepLab JSON cell", "DPC702")
    cell_name = name or _identifier(path.stem)
    text = to_dpc_text(data, cell_name, str(path), pooling=pooling, crop=crop)
    return text, from_text(text, cell_name)


def from_text(text: str, cell: str | None = None) -> ir.Cell:
    return Space(load_text(text, "<deeplab>"), cell).concrete()


def _identifier(stem: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return out if out and not out[0].isdigit() else f"cell_{out}"


def to_json(cell: ir.Cell) -> list[dict[str, Any]]:
    """The DeepLab JSON list of a cell shaped like a DPC: branches reading the input
    or earlier branches, then concat, dropout 0.1 and a 1x1 projection. A setting the
    JSON cannot hold (a width other than 256, no BN or ReLU, another dropout) is an
    error, never dropped silently. A pool in the reference's own mode (``mode =
    reference``, as ``read`` imports it) is its ``pyramid_pooling`` item: the JSON means
    that computation, and the reference takes the crop that sets its window from its
    own flags (:func:`crops` lists them), so an import followed by an export gives the
    JSON back."""
    if len(cell.inputs) != 1:
        raise _fail(cell.name, "a DeepLab cell has exactly one input")
    out = next((n for n in cell.nodes if n.name == cell.output), None)
    src = projection_of(cell, out) if out is not None else None
    if out is None or src is None:
        raise DpcError.at(cell.span, f"cell '{cell.name}' does not end in a 1x1 projection "
                          "of a concat of branches, so it has no DeepLab JSON form", code="DPC702")
    nodes = {n.name: n for n in cell.nodes}
    index = {name: i for i, name in enumerate(src.inputs)}
    items = []
    for i, name in enumerate(src.inputs):
        node = nodes.get(name)
        if node is None:
            raise DpcError.at(cell.span, f"branch {i} is the input itself, which the "
                              "DeepLab format cannot express", code="DPC702")
        reads = node.inputs[0]
        if reads == cell.inputs[0]:
            where = -1
        elif reads in index and index[reads] < i:
            where = index[reads]
        else:
            raise DpcError.at(node.span, f"branch '{name}' reads '{reads}', which is "
                              "neither the input nor an earlier branch", code="DPC702")
        form = OPS[node.op].deeplab
        item = form.to_json(dict(node.attrs)) if form is not None else None
        if item is None:
            expressible = ", ".join(n for n, s in OPS.items() if s.deeplab is not None)
            raise DpcError.at(node.span, f"branch '{name}' is `{node.op}` "
                              f"({node.attrs}), which the DeepLab format cannot express",
                              hint=f"it knows 1x1 conv, 3x3 separable conv and pooling "
                                   f"(ops: {expressible})", code="DPC702")
        items.append({**item, "input": where})
    _refuse_lossy(cell, out, [nodes[n] for n in src.inputs])
    return items


#: what the JSON leaves implicit, as the reference fixes it: every conv's width, BN and
#: ReLU after each conv without bias, and the dropout rate before the projection (keep 0.9)
IMPLICIT: dict[str, Any] = {"channels": 256, "norm": "bn", "act": "relu", "bias": False,
                            "atrous": True}
REFERENCE_DROPOUT = 0.1


def _refuse_lossy(cell: ir.Cell, out: ir.Node, branches: list[ir.Node]) -> None:
    """Every setting of the cell that the JSON cannot hold, as one error, so that an
    export never drops a setting silently."""
    problems: list[tuple[ir.Node, str]] = []
    for node in [*branches, out]:
        attrs = dict(node.attrs)
        for key, want in IMPLICIT.items():
            if key in attrs and attrs[key] != want:
                problems.append((node, f"{key} = {str(attrs[key]).lower()}: the JSON holds "
                                 f"no {key}, the reference always uses {str(want).lower()}"))
    chain = []  # the passthrough ops between the concat and the projection
    node = next(n for n in cell.nodes if n.name == out.inputs[0])
    while OPS[node.op].passthrough:
        chain.append(node)
        node = next(n for n in cell.nodes if n.name == node.inputs[0])
    rates = [dict(n.attrs)["p"] for n in chain if "p" in dict(n.attrs)]
    if rates != [REFERENCE_DROPOUT]:
        problems.append((out, f"dropout {rates or 'none'} before the projection: the "
                         f"reference applies dropout {REFERENCE_DROPOUT} (keep 0.9)"))
    if problems:
        raise DpcError([Diagnostic(span=n.span or _SPAN(file=cell.name),
                                   message=f"cannot export '{n.name}' losslessly: {m}",
                                   hint="change the setting, or keep the .dpc file",
                                   code="DPC702") for n, m in problems])


def crops(cell: ir.Cell) -> dict[str, tuple[int, int]]:
    """The crop of each reference-mode pool: what the reference must be run with
    (``--crop_size``) for its exported JSON to compute as the cell does."""
    out = {}
    for n in cell.nodes:
        attrs: dict[str, Any] = dict(n.attrs)
        crop = attrs.get("crop")
        if attrs.get("mode") == "reference" and isinstance(crop, tuple):
            out[n.name] = (int(crop[0]), int(crop[1]))
    return out


def write(cell: ir.Cell, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(cell), indent=1) + "\n")
    return path
