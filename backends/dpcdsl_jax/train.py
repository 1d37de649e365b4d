"""Trainer hooks: the proxy-task model (a cell and a 1x1 classifier), Optax SGD with
momentum, weight decay and a poly schedule, and jitted train and eval steps.

The optimiser matches ``torch.optim.SGD(lr, momentum, weight_decay)`` with a poly
``LambdaLR``: weight decay is added to the gradient (coupled, applied to every
parameter), then heavy-ball momentum, then the scheduled step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dpcdsl_jax._layers import resize_bilinear


class Head(nnx.Module):
    """A compiled cell followed by a 1x1 classifier with bias (NHWC in and out)."""

    def __init__(self, cell: nnx.Module, channels: int, num_classes: int, *,
                 rngs: nnx.Rngs) -> None:
        self.cell = cell
        self.classifier = nnx.Conv(channels, num_classes, (1, 1), use_bias=True, rngs=rngs)

    def __call__(self, *features: jax.Array) -> jax.Array:
        return self.classifier(self.cell(*features))


def poly_sgd(lr: float, steps: int, momentum: float = 0.9, weight_decay: float = 4e-5,
             power: float = 0.9) -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay; lr * (1 - step / steps) ** power."""
    schedule = optax.polynomial_schedule(init_value=lr, end_value=0.0, power=power,
                                         transition_steps=steps)
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum))


def cross_entropy(logits: jax.Array, labels: jax.Array, ignore_index: int) -> jax.Array:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``
    (logits NHWC, labels NHW)."""
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), safe[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * valid) / jnp.maximum(valid.sum(), 1)


def make_steps(ignore_index: int = 255, align_corners: bool = True) -> tuple[
        Callable[..., Any], Callable[..., Any]]:
    """``train_step(models, optimizers, features, labels) -> losses`` and
    ``eval_step(models, features, labels) -> predictions``, both jitted over lists of
    models trained fused on the same batch (each with its own optimiser; one model is a
    list of one). Logits are resized bilinearly to the labels' size before the loss and
    the argmax (with ``align_corners`` as the DeepLab reference, True, or as PyTorch's
    default)."""

    @nnx.jit
    def train_step(models: Sequence[nnx.Module], optimizers: Sequence[nnx.Optimizer[Any]],
                   features: Sequence[jax.Array], labels: jax.Array) -> jax.Array:
        def loss_fn(model: nnx.Module) -> jax.Array:
            logits = resize_bilinear(model(*features), labels.shape[1:3],
                                     align_corners=align_corners)
            return cross_entropy(logits, labels, ignore_index)

        losses = []
        for model, optimizer in zip(models, optimizers, strict=True):
            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            losses.append(loss)
        return jnp.stack(losses)

    @nnx.jit
    def eval_step(models: Sequence[nnx.Module], features: Sequence[jax.Array],
                  labels: jax.Array) -> list[jax.Array]:
        return [jnp.argmax(resize_bilinear(model(*features), labels.shape[1:3],
                                           align_corners=align_corners), axis=-1)
                for model in models]

    return train_step, eval_step


def optimizer(model: nnx.Module, tx: optax.GradientTransformation) -> nnx.Optimizer[Any]:
    """An NNX optimiser over the model's parameters (BatchNorm statistics excluded)."""
    return nnx.Optimizer(model, tx, wrt=nnx.Param)
