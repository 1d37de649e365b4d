"""Shared code generation for backends, as sqlglot shares its generator between
dialects: a backend describes its :class:`Dialect` (imports, base class, a table with
one lowering per op, where its layer classes' source comes from) and
:func:`emit_module` writes one readable module for a concrete cell. An op without an
entry in the table goes through one :func:`unsupported` error. The helpers at the end
(:func:`layer_lowering`, :func:`expression`) build table entries; the core names no
backend's layer classes.

Names from the ``.dpc`` text become Python identifiers only through :class:`Names`: a
keyword, an attribute of the framework's module class or a name the file itself uses
gets a trailing underscore (``class`` -> ``class_``). Weights keep the ``.dpc`` names:
the emitted class maps its attributes back in ``node_names``.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import linecache
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels, with_widths
from dpcdsl.lang.printer import print_cell
from dpcdsl.ops import ACTIVATIONS, Attrs, pool_window

#: (layer constructor or None, forward expression) for one node, given its Python
#: name, its inputs' Python names, their channels and its own channels
Lowering = Callable[[ir.Node, str, list[str], list[int], int], tuple[str | None, str]]

#: names every emitted file uses for itself
OWN_NAMES = frozenset({"self", "node_names", "in_channels", "bn"})


@dataclass(frozen=True)
class Dialect:
    name: str  # the backend's registered name
    framework: str  # the name the docstring of an emitted file gives
    imports: str  # the import lines
    base: str  # "nn.Module"
    tensor: str  # "torch.Tensor"
    call: str  # "forward"
    init_params: str  # extra leading constructor parameters, e.g. "*, rngs: nnx.Rngs, "
    init_prelude: tuple[str, ...]  # lines before the layers, e.g. super().__init__()
    layer_kwargs: str  # appended to each layer constructor, e.g. ", **bn"
    reserved: frozenset[str]  # names of the framework and its module class
    lowerings: Mapping[str, Lowering]  # op name -> its lowering
    layers: Mapping[str, Callable[[], str]]  # layer class name -> its source

    def names(self) -> Names:
        """A fresh namer for one emitted file of this dialect: the names of the
        framework and of every layer (the library's, and those ops bring) are taken."""
        brought = {n for lower in self.lowerings.values() for n in lowering_layers(lower)}
        return Names(self.reserved | set(self.layers) | brought)

    def class_name(self, cell: ir.Cell) -> str:
        """The name of the class emitted for ``cell``."""
        return class_name(cell, self.names().reserved)


class Names:
    """Safe, unique Python identifiers for ``.dpc`` names."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.reserved = frozenset(reserved) | OWN_NAMES | set(keyword.kwlist)
        self.py: dict[str, str] = {}
        self.taken: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.py:
            return self.py[name]
        safe = name if name.isidentifier() else re.sub(r"\W", "_", name)
        if safe.startswith("__"):  # would be name-mangled inside the class
            safe = "n" + safe
        while safe in self.reserved or safe in self.taken or not safe.isidentifier():
            safe += "_"
        self.py[name] = safe
        self.taken.add(safe)
        return safe


def class_name(cell: ir.Cell, reserved: Iterable[str] = ()) -> str:
    """``dpc_cityscapes`` -> ``DpcCityscapes``; never a keyword or a reserved name."""
    camel = "".join(part[:1].upper() + part[1:] for part in cell.name.split("_"))
    if not camel.isidentifier() or camel in set(reserved) or keyword.iskeyword(camel):
        camel = "Cell" + camel
    return camel


def emit_module(cell: ir.Cell, in_channels: int | Mapping[str, int], dialect: Dialect,
                bn_momentum: float, bn_eps: float) -> str:
    """One standalone module for ``cell`` in ``dialect``."""
    cell = with_widths(cell, in_channels)
    chans = infer_channels(cell, in_channels)
    layers = dict(dialect.layers)  # the library's, and those the cell's ops bring
    for op in dict.fromkeys(n.op for n in cell.nodes):
        if op in dialect.lowerings:
            layers.update(lowering_layers(dialect.lowerings[op]))
    names = dialect.names()
    inputs = [names(i) for i in cell.inputs]
    init: list[str] = []
    body: list[str] = []
    weighted: dict[str, str] = {}
    for node in cell.nodes:
        var = names(node.name)
        args = (node, var, [names(i) for i in node.inputs], [chans[i] for i in node.inputs],
                chans[node.name])
        lower = dialect.lowerings.get(node.op)
        if lower is None:
            raise unsupported(node, dialect.name)
        layer, expr = lower(*args)
        if layer is not None:
            if layer.split("(", 1)[0] in layers:
                layer = layer[:-1] + dialect.layer_kwargs + ")"
            init.append(f"self.{var} = {layer}")
            weighted[var] = node.name
        body.append(f"{var} = {expr}")
    body.append(f"return {names(cell.output)}")

    dpc = "\n".join("    " + line if line else "" for line in print_cell(cell).splitlines())
    parts = [f'"""{cell.name}: a dense-prediction head compiled by dpcdsl.\n\n'
             f"Generated by dpcdsl from this cell; standalone: it imports only "
             f'{dialect.framework}.\n\n{dpc}\n"""\n\nfrom __future__ import annotations\n\n'
             f"{dialect.imports}"]
    used = _uses("\n".join(init + body), layers)
    parts += ["\n\n" + source() for name, source in layers.items() if name in used]
    sig = ", ".join(f"{i}: {dialect.tensor}" for i in inputs)
    lines = [
        f"class {dialect.class_name(cell)}({dialect.base}):",
        f'    """The cell {cell.name!r}. ``node_names`` maps each layer attribute to its '
        "node;",
        f"    they differ where a node's name is a Python keyword or an attribute of "
        f'{dialect.base}."""',
        "",
        _dict_line("in_channels", {i: chans[i] for i in cell.inputs}),
        _dict_line("node_names", weighted),
        "",
        wrap(f"    def __init__(self, {dialect.init_params}bn_momentum: float = "
             f"{bn_momentum!r}, bn_eps: float = {bn_eps!r}) -> None:"),
        *(f"        {line}" for line in dialect.init_prelude),
        *(["        bn = dict(bn_momentum=bn_momentum, bn_eps=bn_eps)"]
          if any("**bn" in line for line in init) else []),
        *(wrap(f"        {line}") for line in init),
        *(["        pass"] if not init and not dialect.init_prelude else []),
        "",
        f"    def {dialect.call}(self, {sig}) -> {dialect.tensor}:",
        *(wrap(f"        {line}") for line in body),
    ]
    parts.append("\n\n" + "\n".join(lines) + "\n")
    return "".join(parts)


_loaded = 0


def exec_source(source: str, label: str) -> dict[str, Any]:
    """Execute emitted source as a fresh module and return its namespace. The source is
    registered in linecache, as torch.fx registers its generated code, so tracebacks,
    ``inspect`` and compilers can read it."""
    global _loaded
    _loaded += 1
    filename = f"<dpcdsl:{label}:{_loaded}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"dpcdsl_generated_{_loaded}"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


_EMITTED = re.compile(r"<dpcdsl:[^>]*>")
_QUOTED = re.compile(r'File "(<dpcdsl:[^>]*>)", line (\d+)')
_ASSIGNED = re.compile(r"^\s*(\w+)\s*=")


def node_at(error: BaseException, node_names: Mapping[str, str]) -> str | None:
    """The node of a cell whose line of an emitted module the deepest frame of
    ``error`` was running, in its chain of causes and in the tracebacks their messages
    quote (compilers report where they were tracing that way); None where no frame was
    in emitted code. ``node_names`` is the module's map of layer attributes to nodes:
    every other line assigns a variable named as its node."""
    lines: list[tuple[str, int]] = []
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            if _EMITTED.fullmatch(tb.tb_frame.f_code.co_filename):
                lines.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
            tb = tb.tb_next
        lines += [(f, int(n)) for f, n in _QUOTED.findall(str(e))]
        e = e.__cause__ or e.__context__
    for filename, lineno in reversed(lines):
        found = _ASSIGNED.match(linecache.getline(filename, lineno))
        if found:
            return node_names.get(found.group(1), found.group(1).rstrip("_") or None)
    return None


def layer_sources(layers: Mapping[str, Any]) -> dict[str, Callable[[], str]]:
    """A backend's layer library as :class:`Dialect` takes it: each name with a
    function that gives its source, read from the file once (every emitted module
    copies the layers it uses, and reading them again cost 0.1 s a build)."""
    return {name: functools.cache(functools.partial(inspect.getsource, obj))
            for name, obj in layers.items()}


def _uses(code: str, layers: Mapping[str, Callable[[], str]]) -> set[str]:
    """The layers ``code`` names, and the layers those name, and so on."""
    used: set[str] = set()
    texts = [code]
    while texts:
        text = texts.pop()
        for name, source in layers.items():
            if name not in used and re.search(rf"\b{name}\b", text):
                used.add(name)
                texts.append(source())
    return used


def _dict_line(name: str, items: Mapping[str, Any], width: int = 100) -> str:
    line = f"    {name} = {{" + ", ".join(f"{k!r}: {v!r}" for k, v in items.items()) + "}"
    if len(line) <= width:
        return line
    body = "".join(f"        {k!r}: {v!r},\n" for k, v in items.items())
    return f"    {name} = {{\n{body}    }}"


def wrap(line: str, width: int = 100) -> str:
    """Break a long ``x = f(a, b, ...)`` line after commas, aligned under the bracket."""
    if len(line) <= width or "(" not in line:
        return line
    indent = " " * (line.index("(") + 1)
    out, current = [], ""
    for piece in re.split(r"(?<=,) ", line):
        if current and len(current) + 1 + len(piece) > width:
            out.append(current)
            current = indent + piece
        else:
            current = f"{current} {piece}" if current else piece
    out.append(current)
    return "\n".join(out)


def unsupported(node: ir.Node, backend: str) -> DpcError:
    """The one error for an op a backend's lowering table lacks."""
    return DpcError.at(node.span, f"the {backend} backend has no lowering for op "
                       f"'{node.op}'", hint=f"add '{node.op}' to the backend's LOWERINGS "
                       "table (docs/architecture.md, \"Adding an op\")", code="DPC901")


def flags(attrs: Attrs) -> str:
    """The norm, activation and bias of a conv-like layer where they differ from the
    layers' defaults (BatchNorm, ReLU, no bias): ``, norm="gn", groups=8, act="sigmoid"``."""
    norm, act = attrs.get("norm", "bn"), attrs.get("act", "relu")
    return (f", norm={norm!r}" if norm != "bn" else "") + \
        (f", groups={attrs['groups']}" if norm == "gn" else "") + \
        (f", act={act!r}" if act != "relu" else "") + \
        (", bias=True" if attrs.get("bias") else "") + \
        ("" if attrs.get("inner", True) else ", inner=False")


def layer_lowering(layer: str | type, args: Callable[[Attrs, list[int], int], str]
                   ) -> Lowering:
    """A node made by one layer with weights, applied to its first input: ``self.v =
    Layer(<args>)`` and ``self.v(x)``; ``args(attrs, cin, cout)`` writes the
    constructor's arguments. ``layer`` names a class of the backend's layer library, or
    is a class of the op's own (an op registered outside the core): its source is then
    copied into every emitted file that uses it, as the library's are, so it may use
    only the names those files import (the framework's) and the library's layers. Its
    constructor takes the library's keywords too (``bn_momentum``, ``bn_eps``; in JAX
    ``rngs``)."""
    cls = layer if isinstance(layer, str) else layer.__name__

    def lower(node: ir.Node, var: str, ins: list[str], cin: list[int],
              cout: int) -> tuple[str | None, str]:
        return f"{cls}({args(dict(node.attrs), cin, cout)})", f"self.{var}({ins[0]})"

    if not isinstance(layer, str):
        lower.layers = layer_sources({cls: layer})  # type: ignore[attr-defined]
    return lower


def lowering_layers(lowering: Lowering) -> Mapping[str, Callable[[], str]]:
    """The layers a lowering brings with it (:func:`layer_lowering`'s ``layer``)."""
    return getattr(lowering, "layers", {})


def conv_args(attrs: Attrs, cin: list[int], cout: int) -> str:
    """The arguments of a conv-like layer: channels, kernel, rate, flags."""
    rate = "" if tuple(attrs["rate"]) == (1, 1) else f", rate={tuple(attrs['rate'])}"
    stride = "" if attrs.get("stride", 1) == 1 else f", stride={attrs['stride']}"
    return f"{cin[0]}, {cout}, kernel={attrs['kernel']}{rate}{stride}{flags(attrs)}"


def upconv_args(attrs: Attrs, cin: list[int], cout: int) -> str:
    """The arguments of a transposed conv layer: channels, kernel, stride, padding."""
    return (f"{cin[0]}, {cout}, kernel={attrs['kernel']}, stride={attrs['stride']}, "
            f"pad={attrs['pad']}" + (f", out_pad={attrs['out_pad']}" if attrs["out_pad"]
                                     else "") + flags(attrs))


def pool_lowering(grid_cls: str, window_cls: str) -> Lowering:
    """``pool``: the paper's grid form with ``grid_cls``, the reference's stride-1 window
    with ``window_cls`` (the window worked out here, from the crop and output stride)."""

    def lower(node: ir.Node, var: str, ins: list[str], cin: list[int],
              cout: int) -> tuple[str | None, str]:
        a: dict[str, Any] = dict(node.attrs)
        align = ", align_corners=True" if a.get("align_corners") else ""
        if a["mode"] == "paper":
            layer = f"{grid_cls}({cin[0]}, {cout}, grid={tuple(a['grid'])}{flags(a)}{align})"
        elif a["mode"] == "window":  # a window and step of its own, corners as told
            layer = (f"{window_cls}({cin[0]}, {cout}, window={pool_window(a)}, "
                     f"step={tuple(a['step'])}{flags(a)}, align_corners={bool(align)})")
        else:  # the reference's: stride 1, corners aligned
            layer = f"{window_cls}({cin[0]}, {cout}, window={pool_window(a)}{flags(a)})"
        return layer, f"self.{var}({ins[0]})"

    return lower


def expression(write: Callable[[list[str], Attrs], str]) -> Lowering:
    """A node that is one expression of its inputs, with no layer."""

    def lower(node: ir.Node, var: str, ins: list[str], cin: list[int],
              cout: int) -> tuple[str | None, str]:
        return None, write(ins, dict(node.attrs))

    return lower


#: lowerings every framework writes the same way
SUM = expression(lambda ins, a: " + ".join(ins))
MUL = expression(lambda ins, a: " * ".join(ins))  # broadcasting does the gates
IDENTITY = expression(lambda ins, a: ins[0])


def window_pool(kind: str) -> Lowering:
    """``maxpool`` (``kind`` max) or ``avgpool`` (avg): the functions ``<kind>_pool``
    (windows) and ``adaptive_<kind>_pool`` (a grid) of each backend's layers."""
    return expression(
        lambda ins, a: f"adaptive_{kind}_pool({ins[0]}, {tuple(a['grid'])})"
        if tuple(a["grid"]) != (0, 0) else
        f"{kind}_pool({ins[0]}, {tuple(a['window'])}, "
        f"{tuple(a['step']) if tuple(a['step']) != (0, 0) else tuple(a['window'])})")


def resize_target(attrs: Attrs, shape: Callable[[str], str], ins: list[str]) -> str:
    """The size a ``resize`` node makes, as an expression: its fixed ``size``, or its
    input's size times ``scale`` (``shape(x)`` is the expression of x's (h, w))."""
    if tuple(attrs["size"]) != (0, 0):
        return str(tuple(attrs["size"]))
    s = attrs["scale"]
    return f"({shape(ins[0])}[0] * {s}, {shape(ins[0])}[1] * {s})"


def activation(act: str) -> Lowering:
    """An activation op, as ``activate(x, "<act>")``: the function each backend's
    layers define (and copy into an emitted file)."""
    return expression(lambda ins, a: f"activate({ins[0]}, {act!r})")


def lowerings(overrides: Mapping[str, Lowering]) -> dict[str, Lowering]:
    """A backend's table: the lowerings every backend writes the same way (the layer
    classes each backend's library defines under the same names, and the expressions
    every framework spells alike), with the backend's own ``overrides`` over them. The
    table is the backend's own: an op registered from outside the core adds its entry
    to it."""
    common: dict[str, Lowering] = {
        "conv": layer_lowering("ConvBNReLU", conv_args),
        "sepconv": layer_lowering("SepConvBNReLU", conv_args),
        "pool": pool_lowering("GridPool", "WindowPool"),
        "sum": SUM,
        "mul": MUL,
        "identity": IDENTITY,
        "upconv": layer_lowering("UpConvBNReLU", upconv_args),
        "maxpool": window_pool("max"),
        "avgpool": window_pool("avg"),
        "position_attention": layer_lowering("PositionAttention", lambda a, cin, cout:
                                             f"{cin[0]}, inner={a['inner']}"),
        "layernorm": layer_lowering("LayerNorm2d", lambda a, cin, cout:
                                    f"{cin[0]}, eps={a['eps']!r}"),
        **{act: activation(act) for act in ACTIVATIONS if act != "none"},
    }
    return {**common, **overrides}
