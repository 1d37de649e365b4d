"""Lowering: a concrete :class:`~dpcdsl.lang.ir.Cell` to standalone PyTorch source.

There is one lowering path. :func:`emit` writes the source through the shared
generator (:mod:`dpcdsl.compiler.codegen`) and the torch dialect below; :func:`build` executes
that same source, as torch.fx does with the forward it generates. The emitted file has
the layer classes the cell needs, copied from :mod:`dpcdsl_torch._layers`, and one
``nn.Module`` class for the cell: ``__init__`` builds a layer per node, ``forward`` is
straight-line code in topological order.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping

import torch
from torch import nn

from dpcdsl.compiler import codegen
from dpcdsl.compiler.codegen import Dialect, Lowering, emit_module
from dpcdsl.lang import ir
from dpcdsl_torch import _layers

BN_MOMENTUM = 0.0003
BN_EPS = 1e-5

def _dropout(node: ir.Node, var: str, ins: list[str], cin: list[int],
             cout: int) -> tuple[str | None, str]:
    cls = "nn.Dropout2d" if node.attr("spatial") else "nn.Dropout"
    return f"{cls}({node.attr('p')!r})", f"self.{var}({ins[0]})"


def _mode(a: Mapping[str, object]) -> str:
    """F.interpolate's mode (and align_corners, which nearest does not take)."""
    if a["mode"] == "nearest":
        return 'mode="nearest"'
    return f'mode="bilinear", align_corners={bool(a["align_corners"])}'



#: op name -> its PyTorch lowering: the shared ones (:func:`dpcdsl.compiler.codegen.lowerings`)
#: and these; an op registered from outside the core adds its entry here (and its layer
#: classes to LAYERS)
LOWERINGS: dict[str, Lowering] = codegen.lowerings({
    "upsample": codegen.expression(
        lambda ins, a: f"F.interpolate({ins[0]}, size={ins[1]}.shape[-2:], {_mode(a)})"),
    "resize": codegen.expression(
        lambda ins, a: f"F.interpolate({ins[0]}, "
                       + (f"scale_factor={a['scale']}" if a["scale"] else
                          f"size={tuple(a['size'])}") + f", {_mode(a)})"),
    "concat": codegen.expression(lambda ins, a: f"torch.cat([{', '.join(ins)}], dim=1)"),
    "dropout": _dropout,
})
#: layer class name -> the source the emitter copies into a file
LAYERS: dict[str, Callable[[], str]] = codegen.layer_sources(_layers.LAYERS)


TORCH = Dialect(
    name="torch",
    framework="torch",
    imports="import torch\nfrom torch import nn\nfrom torch.nn import functional as F\n",
    base="nn.Module",
    tensor="torch.Tensor",
    call="forward",
    init_params="",
    init_prelude=("super().__init__()",),
    layer_kwargs=", **bn",
    reserved=frozenset(set(keyword.softkwlist) | set(dir(nn.Module)) | set(vars(nn.Module()))
                       | {"torch", "nn", "F"}),
    lowerings=LOWERINGS,
    layers=LAYERS,
)


def class_name(cell: ir.Cell) -> str:
    """The name of the emitted class: ``dpc_cityscapes`` -> ``DpcCityscapes``."""
    return TORCH.class_name(cell)


def emit(cell: ir.Cell, in_channels: int | Mapping[str, int],
         bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS) -> str:
    """Standalone PyTorch source for ``cell`` with ``in_channels`` per input.

    ``bn_momentum`` and ``bn_eps`` are the defaults of the emitted class's constructor.
    """
    return emit_module(cell, in_channels, TORCH, bn_momentum, bn_eps)


def build(cell: ir.Cell, in_channels: int | Mapping[str, int], seed: int = 0,
          bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS) -> nn.Module:
    """The live module for ``cell``: :func:`emit`'s source, executed. Weights are
    initialised from ``seed`` without touching the global random state."""
    source = emit(cell, in_channels, bn_momentum=bn_momentum, bn_eps=bn_eps)
    cls = codegen.exec_source(source, f"torch:{cell.name}")[class_name(cell)]
    cls.__dpc_source__ = source
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module: nn.Module = cls()
    return module


def source_of(module: nn.Module) -> str:
    """The emitted source a module built by :func:`build` came from."""
    src = getattr(type(module), "__dpc_source__", None)
    if src is None:
        raise TypeError(f"{type(module).__name__} was not built by dpcdsl_torch.build")
    return str(src)
