"""JAX steps of the proxy task: a cell plus a 1x1 classifier on cached features,
trained with the jitted steps of :mod:`dpcdsl_jax.train` (the loop itself is
:func:`dpcdsl.proxy.train`). Cached features are NCHW; they become NHWC here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dpcdsl import ir
from dpcdsl.analysis import infer_channels
from dpcdsl.data.cache import FeatureCache
from dpcdsl.data.task import Task
from dpcdsl_jax._emit import build
from dpcdsl_jax._weights import import_weights
from dpcdsl_jax.train import Head, make_steps, optimizer, poly_sgd


def proxy_steps(cell: ir.Cell, cache: FeatureCache, task: Task,
                weights: Mapping[str, Any]) -> tuple[Callable[..., float],
                                                     Callable[..., np.ndarray]]:
    """``step(features, labels) -> loss`` and ``predict(features, size) -> labels``,
    starting from ``weights``; the same optimiser and schedule as the PyTorch backend.
    ``features`` holds one array per input of the cell."""
    spec = task.train
    in_channels = cache.in_channels(cell, task)
    out_channels = infer_channels(cell, in_channels)[cell.output]
    module = build(cell, in_channels, seed=task.seed, bn_momentum=spec.momentum_of_bn)
    head = Head(module, out_channels, cache.num_classes, rngs=nnx.Rngs(task.seed))
    import_weights(head, weights)
    opt = optimizer(head, poly_sgd(spec.lr, spec.steps, spec.momentum, spec.weight_decay,
                                   spec.power))
    train_step, eval_step = make_steps(cache.ignore_index, spec.align_corners)

    def nhwc(features: Sequence[np.ndarray]) -> list[jnp.ndarray]:
        return [jnp.asarray(f.transpose(0, 2, 3, 1)) for f in features]

    def step(features: Sequence[np.ndarray], labels: np.ndarray) -> float:
        head.train()
        return float(train_step(head, opt, nhwc(features), jnp.asarray(labels.astype(np.int32))))

    def predict(features: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        head.eval()
        shape = jnp.zeros((len(features[0]), *size), jnp.int32)
        return np.asarray(eval_step(head, nhwc(features), shape))

    step.head = head  # type: ignore[attr-defined]
    return step, predict
