"""The JAX backend's runtime hooks: running a module on numpy arrays, and threads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def forward(module: nnx.Module, inputs: list[np.ndarray]) -> np.ndarray:
    """``module`` in eval mode on NCHW float arrays (NHWC inside, JAX's layout): NCHW
    out."""
    module.eval()
    y = _call(module, *[jnp.asarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))
                        for x in inputs])
    return np.asarray(y).transpose(0, 3, 1, 2)


@nnx.jit
def _call(module: nnx.Module, *xs: jax.Array) -> jax.Array:
    """The forward pass compiled as one program: op by op, XLA compiles each op alone
    for each shape it meets, which takes longer than the whole pass at once."""
    return module(*xs)


def set_threads(threads: int) -> None:
    """XLA sizes its CPU thread pool once, when JAX starts: a worker's share is set
    through the environment its process starts with (``OMP_NUM_THREADS``, which the
    pool executor sets), so there is nothing to change here at run time."""
    del threads
