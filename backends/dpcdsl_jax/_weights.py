"""Weights under the canonical names and in the canonical (PyTorch) layout.

The names are the PyTorch backend's: ``b0.depthwise.weight``, ``out.bn.running_var``.
Flax keeps conv kernels as HWIO (``kernel``); they are transposed to PyTorch's OIHW
(``weight``) on export and back on import, so weights move freely between the
backends and through safetensors files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dpcdsl.train import weightfile

HWIO_TO_OIHW = (3, 2, 0, 1)
OIHW_TO_HWIO = (2, 3, 1, 0)


def _variables(module: nnx.Module) -> Iterator[tuple[str, nnx.Variable[Any], bool]]:
    """(canonical name, variable, is a conv kernel) for every weight."""
    items = list(nnx.iter_graph(module))  # children may come before their parents
    owners = {tuple(path): value for path, value in items if isinstance(value, nnx.Module)}
    for path, value in items:
        if not isinstance(value, nnx.Param | nnx.BatchStat):
            continue
        parts = []
        for i, key in enumerate(path):
            owner = owners.get(tuple(path[:i]))
            names = getattr(type(owner), "node_names", None) if owner is not None else None
            parts.append(names.get(key, key) if isinstance(names, dict) else str(key))
        kernel = parts[-1] == "kernel"
        if kernel:
            parts[-1] = "weight"
        yield ".".join(parts), value, kernel


def export_weights(module: nnx.Module) -> dict[str, np.ndarray]:
    """Every weight of ``module`` as a numpy array under its canonical name, in
    PyTorch's layout."""
    out = {}
    for name, var, kernel in _variables(module):
        array = np.asarray(var[...])
        out[name] = array.transpose(HWIO_TO_OIHW).copy() if kernel else array.copy()
    return out


def import_weights(module: nnx.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Load canonical weights into ``module``. A missing, extra or mis-shaped tensor is
    an error that names it (all of them); nothing is loaded then."""
    entries = {name: (var, kernel) for name, var, kernel in _variables(module)}
    expected = {}
    for name, (var, kernel) in entries.items():
        shape = tuple(np.shape(var[...]))
        expected[name] = tuple(shape[i] for i in HWIO_TO_OIHW) if kernel else shape
    weightfile.check(expected, weights, type(module).__name__)
    for name, (var, kernel) in entries.items():
        array = np.asarray(weights[name], dtype=np.float32)
        var[...] = jnp.asarray(array.transpose(OIHW_TO_HWIO) if kernel else array)


def save_weights(module: nnx.Module, path: str | Path) -> None:
    """Write the canonical weights to a safetensors file (no pickle)."""
    weightfile.write(export_weights(module), path)


def load_weights(module: nnx.Module, path: str | Path) -> None:
    """Read canonical weights from a safetensors file into ``module``."""
    import_weights(module, weightfile.read(path))
