"""JAX steps of the proxy task: cells, each plus a 1x1 classifier, on cached features,
trained fused with the jitted steps of :mod:`dpcdsl_jax.train` (the loop itself is
:func:`dpcdsl.train.proxy.train`). Cached features are NCHW; they become NHWC here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels
from dpcdsl.train.data.cache import FeatureCache
from dpcdsl.train.data.task import Task
from dpcdsl_jax._emit import build
from dpcdsl_jax._weights import import_weights
from dpcdsl_jax.train import Head, make_steps, optimizer, poly_sgd


def proxy_steps(cells: Sequence[ir.Cell], cache: FeatureCache, task: Task,
                weights: Sequence[Mapping[str, Any]]) -> tuple[Callable[..., list[float]],
                                                               Callable[..., list[np.ndarray]]]:
    """``step(features, labels, active) -> losses`` and ``predict(features, size,
    active) -> labels``, for a head per cell, each starting from its ``weights``; the
    same optimiser and schedule as the PyTorch backend. ``features`` holds one array
    per input of the cells; ``active`` the heads to run (default: all).

    The heads train fused: one jitted step over all of them (compiled once per set of
    active heads). Each head keeps its own optimiser and random streams, so it trains
    as it would alone."""
    spec = task.train
    heads, opts = [], []
    for cell, w in zip(cells, weights, strict=True):
        in_channels = cache.in_channels(cell, task)
        out_channels = infer_channels(cell, in_channels)[cell.output]
        module = build(cell, in_channels, seed=task.seed, bn_momentum=spec.momentum_of_bn)
        head = Head(module, out_channels, cache.num_classes, rngs=nnx.Rngs(task.seed))
        import_weights(head, w)
        heads.append(head)
        opts.append(optimizer(head, poly_sgd(spec.lr, spec.steps, spec.momentum,
                                             spec.weight_decay, spec.power)))
    train_step, eval_step = make_steps(cache.ignore_index, spec.align_corners)
    every = tuple(range(len(heads)))

    def nhwc(features: Sequence[np.ndarray]) -> list[jnp.ndarray]:
        return [jnp.asarray(f.transpose(0, 2, 3, 1)) for f in features]

    def step(features: Sequence[np.ndarray], labels: np.ndarray,
             active: Sequence[int] = every) -> list[float]:
        chosen = [heads[k] for k in active]
        for h in chosen:
            h.train()
        losses = train_step(chosen, [opts[k] for k in active], nhwc(features),
                            jnp.asarray(labels.astype(np.int32)))
        return [float(v) for v in np.asarray(losses)]

    def predict(features: Sequence[np.ndarray], size: tuple[int, int],
                active: Sequence[int] = every) -> list[np.ndarray]:
        chosen = [heads[k] for k in active]
        for h in chosen:
            h.eval()
        shape = jnp.zeros((len(features[0]), *size), jnp.int32)
        return [np.asarray(p) for p in eval_step(chosen, nhwc(features), shape)]

    step.heads = heads  # type: ignore[attr-defined]
    return step, predict
