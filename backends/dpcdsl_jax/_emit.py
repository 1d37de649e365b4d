"""Lowering: a concrete :class:`~dpcdsl.lang.ir.Cell` to standalone Flax NNX source.

The same generator as the PyTorch backend (:mod:`dpcdsl.compiler.codegen`) with the JAX dialect
below; :func:`build` executes the emitted source. Layout at the boundary: the emitted
module takes and returns **NHWC** arrays, JAX's native layout; from PyTorch's NCHW use
``x.transpose(0, 2, 3, 1)``, and back with ``y.transpose(0, 3, 1, 2)``. Weights move in
PyTorch's layout through :mod:`dpcdsl_jax._weights`.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping

from flax import nnx

from dpcdsl.compiler import codegen
from dpcdsl.compiler.codegen import Dialect, Lowering, emit_module
from dpcdsl.lang import ir
from dpcdsl_jax import _layers

BN_MOMENTUM = 0.0003
BN_EPS = 1e-5


def _dropout(node: ir.Node, var: str, ins: list[str], cin: list[int],
             cout: int) -> tuple[str | None, str]:
    spatial = ", broadcast_dims=(1, 2)" if node.attr("spatial") else ""  # whole channels
    return f"nnx.Dropout({node.attr('p')!r}{spatial}, rngs=rngs)", f"self.{var}({ins[0]})"


def _resize(a: Mapping[str, object], x: str, size: str) -> str:
    if a["mode"] == "nearest":
        return f"resize_nearest({x}, {size})"
    return f"resize_bilinear({x}, {size}, align_corners={bool(a['align_corners'])})"



#: op name -> its Flax NNX lowering: the shared ones (:func:`dpcdsl.compiler.codegen.lowerings`)
#: and these; an op registered from outside the core adds its entry here (and its layer
#: classes to LAYERS)
LOWERINGS: dict[str, Lowering] = codegen.lowerings({
    "upsample": codegen.expression(
        lambda ins, a: _resize(a, ins[0], f"{ins[1]}.shape[1:3]")),
    "resize": codegen.expression(
        lambda ins, a: _resize(a, ins[0],
                               codegen.resize_target(a, lambda x: f"{x}.shape[1:3]", ins))),
    "concat": codegen.expression(
        lambda ins, a: f"jnp.concatenate([{', '.join(ins)}], axis=-1)"),
    "dropout": _dropout,
})
#: layer class or function name -> the source the emitter copies into a file
LAYERS: dict[str, Callable[[], str]] = codegen.layer_sources(_layers.LAYERS)


JAX = Dialect(
    name="jax",
    framework="jax and flax",
    imports="import jax\nimport jax.numpy as jnp\nfrom flax import nnx\n",
    base="nnx.Module",
    tensor="jax.Array",
    call="__call__",
    init_params="*, rngs: nnx.Rngs, ",
    init_prelude=(),
    layer_kwargs=", rngs=rngs, **bn",
    reserved=frozenset(set(keyword.softkwlist) | set(dir(nnx.Module))
                       | {"jax", "jnp", "nnx", "rngs"}),
    lowerings=LOWERINGS,
    layers=LAYERS,
)


def class_name(cell: ir.Cell) -> str:
    """The name of the emitted class: ``dpc_cityscapes`` -> ``DpcCityscapes``."""
    return JAX.class_name(cell)


def emit(cell: ir.Cell, in_channels: int | Mapping[str, int],
         bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS) -> str:
    """Standalone Flax NNX source for ``cell`` with ``in_channels`` per input.

    ``bn_momentum`` (PyTorch's convention) and ``bn_eps`` are the defaults of the emitted
    class's constructor.
    """
    return emit_module(cell, in_channels, JAX, bn_momentum, bn_eps)


def build(cell: ir.Cell, in_channels: int | Mapping[str, int], seed: int = 0,
          bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS) -> nnx.Module:
    """The live module for ``cell``: :func:`emit`'s source, executed, with weights
    drawn from ``nnx.Rngs(seed)``."""
    source = emit(cell, in_channels, bn_momentum=bn_momentum, bn_eps=bn_eps)
    cls = codegen.exec_source(source, f"jax:{cell.name}")[class_name(cell)]
    cls.__dpc_source__ = source
    module: nnx.Module = cls(rngs=nnx.Rngs(seed))
    return module


def source_of(module: nnx.Module) -> str:
    """The emitted source a module built by :func:`build` came from."""
    src = getattr(type(module), "__dpc_source__", None)
    if src is None:
        raise TypeError(f"{type(module).__name__} was not built by dpcdsl_jax.build")
    return str(src)
