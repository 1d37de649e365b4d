"""The canonical formatter.

``format_module(parse(x)) == x`` for canonical text ``x``, and
``parse(format_module(m)) == m`` for every module ``m``. Flat cells print through
:func:`print_cell`, one node per line, defaults left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dpcdsl.ops import CELL_CHANNELS, OPS

if TYPE_CHECKING:
    from dpcdsl import ir

INDENT = "  "
WIDTH = 88


def print_expr(e: Any) -> str:
    from dpcdsl import ir

    if isinstance(e, ir.Int):
        return str(e.value)
    if isinstance(e, ir.Float):
        return _float(e.value)
    if isinstance(e, ir.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, ir.Earlier):
        return "earlier"
    if isinstance(e, ir.Tuple):
        inner = ", ".join(print_expr(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, ir.SetLit):
        return "{" + ", ".join(print_expr(i) for i in e.items) + "}"
    if isinstance(e, ir.Kwarg):
        return f"{e.name} = {print_expr(e.value)}"
    if isinstance(e, ir.Call):
        return f"{e.func}({_args((*e.args, *e.kwargs))})"
    if isinstance(e, ir.OneOf):
        text = f"one_of({_args(e.options)})"
        return text if e.apply is None else f"{text}({_args(e.apply)})"
    raise TypeError(f"cannot print {type(e).__name__}")  # pragma: no cover


def _args(items: Any) -> str:
    return ", ".join(print_expr(i) for i in items)


def _float(v: float) -> str:
    text = repr(float(v))
    return text if any(c in text for c in ".eE") else text + ".0"


def _value(e: Any, indent: str, lead: str) -> list[str]:
    """Print ``lead + e``; a long applied/plain one_of puts one option per line."""
    from dpcdsl import ir

    flat = lead + print_expr(e)
    if len(indent) + len(flat) <= WIDTH or not isinstance(e, ir.OneOf):
        return [indent + flat]
    lines = [indent + lead + "one_of("]
    lines += [indent + INDENT + print_expr(o) + "," for o in e.options]
    close = ")" if e.apply is None else f")({_args(e.apply)})"
    return lines + [indent + close]


def _stmt(s: Any, indent: str) -> list[str]:
    from dpcdsl import ir

    lines = [indent + c for c in s.comments]
    if isinstance(s, ir.Let):
        lines += _value(s.value, indent, f"let {s.name} = ")
    elif isinstance(s, ir.Assign):
        lines += _value(s.value, indent, f"{s.target} = ")
    elif isinstance(s, ir.Return):
        lines += _value(s.value, indent, "return ")
    elif isinstance(s, ir.Import):
        lines.append(f'{indent}import "{s.path}"')
    elif isinstance(s, ir.Repeat):
        lines.append(f"{indent}repeat {s.count} as {s.name} {{")
        lines += _block(s.body, indent + INDENT)
        lines.append(indent + "}")
    elif isinstance(s, ir.CellDef):
        params = ", ".join(
            p.name if p.default is None else f"{p.name} = {print_expr(p.default)}"
            for p in s.params
        )
        depth = "" if s.depth is None else f" depth {s.depth}"
        lines.append(f"{indent}cell {s.name}({params}){depth} {{")
        lines += _block(s.body, indent + INDENT)
        lines.append(indent + "}")
    else:  # pragma: no cover
        raise TypeError(type(s).__name__)
    return lines


def _block(body: Any, indent: str) -> list[str]:
    lines: list[str] = []
    for i, s in enumerate(body):
        if i and s.blank_before:
            lines.append("")
        lines += _stmt(s, indent)
    return lines


def format_module(module: ir.Module) -> str:
    """The canonical text of a module, ending in one newline."""
    from dpcdsl import ir

    lines: list[str] = []
    for i, item in enumerate(module.items):
        if i and (item.blank_before or isinstance(item, ir.CellDef)
                  or isinstance(module.items[i - 1], ir.CellDef)):
            lines.append("")
        lines += _stmt(item, "")
    if module.trailing_comments:
        if lines:
            lines.append("")
        lines += list(module.trailing_comments)
    return "\n".join(lines) + "\n" if lines else ""


def _attr_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return str(value[0])
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def node_call(node: ir.Node, cell_channels: int) -> str:
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
            parts.append(f"{arg.name} = {_attr_text(value)}")
    return f"{node.op}({', '.join(parts)})"


def print_cell(cell: ir.Cell) -> str:
    """The canonical text of a flat cell."""
    head = ", ".join([*cell.inputs, f"channels = {cell.channels}"])
    lines = [f"cell {cell.name}({head}) {{"]
    lines += [f"{INDENT}{n.name} = {node_call(n, cell.channels)}" for n in cell.nodes]
    lines.append(f"{INDENT}return {cell.output}")
    lines.append("}")
    return "\n".join(lines) + "\n"
