"""Supernets in JAX: the bank of :mod:`dpcdsl.compiler.supernet` as arrays, and any
candidate of the space run over it, with a bounded number of compilations.

Compiling each candidate as one program would compile once per candidate, and a space
holds billions. Instead a candidate runs node by node, and each node runs as a compiled
program of its own *computation*: its op, its attributes and its inputs' channels,
whatever its position or its name (a one-node cell with its names made neutral, built
by :func:`~dpcdsl_jax._emit.build`). The weights are arguments, taken from the bank by
the node's keys. Candidates share node computations, so the compilations are bounded by
the distinct computations the space's positions can hold (for the paper's space, one per
op, rate pair or grid and input width), not by the candidates: :attr:`Supernet.compiled`
counts them.

With the same seed the bank starts as the PyTorch backend's does (the core draws it), so
the two give the same outputs for the same candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dpcdsl.compiler import supernet as rule
from dpcdsl.compiler.rewrite import at_output_stride
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels, with_widths
from dpcdsl.lang.space import Space
from dpcdsl_jax._emit import BN_EPS, BN_MOMENTUM, build
from dpcdsl_jax._weights import import_weights

#: the name a node takes in its neutral one-node cell, and its inputs' prefix
NODE, INPUT = "n", "i"


def _apply(graphdef: Any, state: Any, *xs: jax.Array) -> jax.Array:
    module = nnx.merge(graphdef, state)
    return module(*xs)


#: one compiled program per node computation and input shape (the graph is static)
_run = jax.jit(_apply, static_argnums=0)


def neutral(node: ir.Node, channels: Mapping[str, int], cell_channels: int
            ) -> tuple[ir.Cell, dict[str, int], list[str]]:
    """The node as a one-node cell whose names say nothing of its position: the cell,
    its inputs' channels, and the node's inputs in the cell's input order."""
    order = list(dict.fromkeys(node.inputs))
    names = {t: f"{INPUT}{k}" for k, t in enumerate(order)}
    alone = ir.Node(name=NODE, op=node.op, inputs=tuple(names[t] for t in node.inputs),
                    attrs=node.attrs)
    cell = ir.Cell(name="node", inputs=tuple(names[t] for t in order), channels=cell_channels,
                   nodes=(alone,), output=NODE)
    return cell, {names[t]: channels[t] for t in order}, order


class Supernet:
    """Every candidate of ``space`` over one bank of shared weights, in eval mode:
    ``forward(*inputs, decisions=...)`` on NHWC arrays, ``extract(decisions)``: the
    candidate's weights under canonical names, in PyTorch's layout (what
    ``import_weights`` loads into the module ``dpcdsl.compile(cell, backend="jax")``
    builds)."""

    def __init__(self, space: Space, in_channels: int | Mapping[str, int],
                 output_stride: int = 16, seed: int = 0, bn_momentum: float = BN_MOMENTUM,
                 bn_eps: float = BN_EPS, bank: rule.Bank | None = None) -> None:
        self.space, self.in_channels = space, in_channels
        self.output_stride, self.seed = output_stride, seed
        self.bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.bank = rule.bank_of(space, in_channels, None, seed) if bank is None else bank
        self.arrays: dict[str, np.ndarray] = {
            key: rule.initial_value(key, w, seed) for key, w in self.bank.weights.items()}
        self._nodes: dict[tuple[str, tuple[tuple[str, int], ...]], nnx.Module] = {}

    @property
    def compiled(self) -> int:
        """Programs compiled so far, for every supernet of this process (the compiled
        node computations are shared)."""
        return int(_run._cache_size())  # type: ignore[attr-defined]

    def cell(self, decisions: Mapping[str, int]) -> ir.Cell:
        return at_output_stride(self.space.decode(dict(decisions)), self.output_stride)

    def extract(self, decisions: Mapping[str, int] | ir.Cell) -> dict[str, np.ndarray]:
        cell = decisions if isinstance(decisions, ir.Cell) else self.cell(decisions)
        out = {}
        for name, (key, w) in rule.shares(cell, self.in_channels).items():
            if key not in self.arrays:  # a weight no walk of the bank met
                self.arrays[key] = rule.initial_value(key, w, self.seed)
            out[name] = self.arrays[key]
        return out

    def load_state(self, arrays: Mapping[str, Any]) -> None:
        """Set the bank from arrays by key (a PyTorch supernet's ``state()``)."""
        self.arrays.update({k: np.asarray(v, np.float32) for k, v in arrays.items()})

    def _module(self, cell: ir.Cell, channels: dict[str, int]) -> nnx.Module:
        key = (cell.canonical_text(), tuple(sorted(channels.items())))
        found = self._nodes.get(key)
        if found is None:
            found = build(cell, channels, seed=self.seed, **self.bn)
            found.eval()
            self._nodes[key] = found
        return found

    def forward(self, *inputs: Any, decisions: Mapping[str, int]) -> jax.Array:
        cell = self.cell(decisions)
        wide = with_widths(cell, self.in_channels)
        channels = infer_channels(wide, self.in_channels)
        weights = self.extract(cell)
        values: dict[str, jax.Array] = dict(zip(cell.inputs, map(jnp.asarray, inputs),
                                                strict=True))
        for node in wide.nodes:
            alone, widths, order = neutral(node, channels, cell.channels)
            module = self._module(alone, widths)
            prefix = f"{node.name}."
            own = {f"{NODE}.{k[len(prefix):]}": v for k, v in weights.items()
                   if k.startswith(prefix)}
            if own:
                import_weights(module, own)
            graphdef, state = nnx.split(module)
            values[node.name] = _run(graphdef, state, *[values[t] for t in order])
        return values[cell.output]

    __call__ = forward


def compile_space(space: Space, in_channels: int | Mapping[str, int], output_stride: int = 16,
                  seed: int = 0, **options: Any) -> Supernet:
    """The supernet of ``space`` (the backend's ``compile_space`` hook)."""
    return Supernet(space, in_channels, output_stride=output_stride, seed=seed, **options)


__all__ = ["Supernet", "compile_space", "neutral"]
