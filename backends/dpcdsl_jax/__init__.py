"""The JAX backend of dpcdsl (Flax NNX + Optax), registered as ``jax`` under the
entry-point group ``dpcdsl.backends``. Modules take and return NHWC arrays; weights use
the canonical names and PyTorch's layout, so they move freely between backends.

It has no backbone of its own (feature caches are built by a backend that has one) and
no end-to-end training, so it lacks those capabilities. JAX is imported when a hook is
first used, not with the package."""

from __future__ import annotations

from dpcdsl._plugins import lazy_exports

name = "jax"
#: the formats the ``export`` hook writes, with the axes each leaves dynamic (read
#: without importing the framework)
export_formats = {"stablehlo": ("batch",)}
#: the runtimes the ``time_forward`` hook times a forward pass on
latency_runtimes = ("jax",)
priority = 0

#: each public name, and the submodule that defines it
_WHERE: dict[str, tuple[str, str]] = {
    **{n: ("_emit", n) for n in ("BN_EPS", "BN_MOMENTUM", "LAYERS", "LOWERINGS", "build",
                                 "class_name", "emit", "source_of")},
    "lowerings": ("_emit", "LOWERINGS"),
    **{n: ("_runtime", n) for n in ("forward", "set_threads")},
    **{n: ("_export", n) for n in ("export", "load_exported", "time_forward")},
    **{n: ("_weights", n) for n in ("export_weights", "import_weights", "load_weights",
                                    "save_weights")},
    "proxy_steps": ("proxy", "proxy_steps"),
    "compile_space": ("supernet", "compile_space"),
    **{n: ("train", n) for n in ("Head", "cross_entropy", "make_steps", "optimizer",
                                 "poly_sgd")},
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = ["export_formats", "latency_runtimes", "name", "priority", *_WHERE]
