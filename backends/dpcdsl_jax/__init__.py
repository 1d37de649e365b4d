"""The JAX backend of dpcdsl (Flax NNX + Optax), registered as ``jax`` under the
entry-point group ``dpcdsl.backends``. Modules take and return NHWC arrays; weights use
the canonical names and PyTorch's layout, so they move freely between backends."""

from dpcdsl_jax._emit import BN_EPS, BN_MOMENTUM, build, class_name, emit, source_of
from dpcdsl_jax._weights import export_weights, import_weights, load_weights, save_weights
from dpcdsl_jax.proxy import proxy_steps
from dpcdsl_jax.train import Head, cross_entropy, make_steps, optimizer, poly_sgd

name = "jax"

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "Head",
    "build",
    "class_name",
    "cross_entropy",
    "emit",
    "export_weights",
    "import_weights",
    "load_weights",
    "make_steps",
    "name",
    "optimizer",
    "poly_sgd",
    "proxy_steps",
    "save_weights",
    "source_of",
]
