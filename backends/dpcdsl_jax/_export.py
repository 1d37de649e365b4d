"""Export to StableHLO, through ``jax.export``: the module's forward, with its weights,
as a serialised :class:`jax.export.Exported` that any JAX can load and run.

The batch axis is symbolic, shared by all inputs. Height and width are fixed at the
traced size: the layers read sizes while tracing (which atrous taps can reach real
pixels, the bounds of adaptive pooling cells, the interpolation weights of a resize),
as XLA programs do. The exported function takes and returns NHWC arrays, as the
emitted module does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dpcdsl.compiler import codegen
from dpcdsl.errors import DpcError, ExportFailure
from dpcdsl_jax import export_formats


def export(module: nnx.Module, inputs: Sequence[np.ndarray], path: str | Path,
           format: str = "stablehlo", names: Sequence[str] | None = None,
           output: str = "out") -> None:
    """Write ``module`` (in eval mode) as serialised StableHLO at ``path``, traced at
    the sizes of the NCHW ``inputs``, with a symbolic batch."""
    del names, output  # a StableHLO function's arguments are positional
    if format not in export_formats:
        raise DpcError.at(None, f"the jax backend does not write {format!r}",
                          hint=f"it writes {', '.join(export_formats)}", code="DPC907")
    module.eval()
    graphdef, state = nnx.split(module)

    def forward(*xs: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(*xs)

    (batch,) = jax.export.symbolic_shape("batch")
    specs = [jax.ShapeDtypeStruct((batch, x.shape[2], x.shape[3], x.shape[1]), jnp.float32)
             for x in inputs]
    try:
        exported = jax.export.export(jax.jit(forward))(*specs)
    except Exception as e:  # noqa: BLE001  (any tracing failure is reported by node)
        raise ExportFailure(f"{type(e).__name__}: {_first_line(e)}",
                            codegen.node_at(e, getattr(module, "node_names", {}))) from None
    Path(path).write_bytes(exported.serialize())


def _first_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def load_exported(path: str | Path, format: str = "stablehlo") -> Callable[
        [list[np.ndarray]], np.ndarray]:
    """A written StableHLO file, run on NCHW float arrays: NCHW out."""
    exported = jax.export.deserialize(bytearray(Path(path).read_bytes()))

    def run(inputs: list[np.ndarray]) -> np.ndarray:
        xs = [jnp.asarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1)) for x in inputs]
        return np.asarray(exported.call(*xs)).transpose(0, 3, 1, 2)

    return run


__all__ = ["export", "export_formats", "load_exported"]


def time_forward(module: nnx.Module, inputs: Sequence[np.ndarray], runtime: str, warmup: int,
                 runs: int) -> list[float]:
    """Seconds of each of ``runs`` forward passes of ``module`` in eval mode, compiled
    with ``jax.jit``, on the NCHW ``inputs`` (NHWC inside), after ``warmup`` untimed
    ones (the first compiles); each waits for its result."""
    import time

    del runtime  # one runtime: jax
    module.eval()
    graphdef, state = nnx.split(module)
    forward = jax.jit(lambda state, *xs: nnx.merge(graphdef, state)(*xs))
    xs = [jnp.asarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1)) for x in inputs]
    for _ in range(max(1, warmup)):
        forward(state, *xs).block_until_ready()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        forward(state, *xs).block_until_ready()
        times.append(time.perf_counter() - start)
    return times
