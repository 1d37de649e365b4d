"""The JAX backend of dpcdsl (Flax NNX + Optax), registered as ``jax`` under the
entry-point group ``dpcdsl.backends``. Modules take and return NHWC arrays; weights use
the canonical names and PyTorch's layout, so they move freely between backends."""

from dpcdsl_jax._emit import (
    BN_EPS,
    BN_MOMENTUM,
    LAYERS,
    LOWERINGS,
    build,
    class_name,
    emit,
    source_of,
)
from dpcdsl_jax._runtime import forward, set_threads
from dpcdsl_jax._weights import export_weights, import_weights, load_weights, save_weights
from dpcdsl_jax.proxy import proxy_steps
from dpcdsl_jax.train import Head, cross_entropy, make_steps, optimizer, poly_sgd

name = "jax"
priority = 0
lowerings = LOWERINGS
# no backbone of its own: feature caches are built by a backend that has one
feature_extractor = None
# end-to-end training of the full model is the PyTorch backend's
train_model = None
evaluate_run = None

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "LAYERS",
    "LOWERINGS",
    "Head",
    "build",
    "class_name",
    "cross_entropy",
    "emit",
    "evaluate_run",
    "export_weights",
    "feature_extractor",
    "forward",
    "import_weights",
    "load_weights",
    "lowerings",
    "make_steps",
    "name",
    "priority",
    "optimizer",
    "poly_sgd",
    "proxy_steps",
    "save_weights",
    "set_threads",
    "source_of",
    "train_model",
]
