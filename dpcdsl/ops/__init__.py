"""The op registry: the one place an op is described.

``OPS`` maps an op's name to its :class:`OpSpec`. Checks, costs, canonical weights,
pictures, output-stride rewrites and the DeepLab interop read it; each backend lowers
every op through its own per-op table. :func:`register` adds an op from outside the
core (see ``docs/architecture.md``, "Adding an op"); an installed package adds ops
through the entry-point group ``dpcdsl.ops`` (:func:`load_plugins`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dpcdsl.ops import _plugins
from dpcdsl.ops._builtin import (
    ACTIVATIONS,
    BUILTIN,
    NORMS,
    RENAMED,
    feature_size,
    pool_window,
    pooled_size,
    reference_window,
)
from dpcdsl.ops._spec import (
    CELL_CHANNELS,
    KINDS,
    REQUIRED,
    Arg,
    Attrs,
    DeeplabForm,
    OpError,
    OpSpec,
    Problem,
    Registry,
    Tensor,
    Weight,
)

OPS: Registry = Registry((spec.name, spec) for spec in BUILTIN)


class _Words:
    """The words op arguments accept (``paper``, ``reference``), following ``OPS``."""

    def __contains__(self, word: object) -> bool:
        return word in OPS.words

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(OPS.words))


#: words that stand for themselves in value positions (enum values)
WORDS = _Words()

#: names the language keeps for itself; an op may not take one
RESERVED = frozenset({"cell", "let", "import", "repeat", "as", "return", "one_of",
                      "earlier", "true", "false", "depth"})


def register(spec: OpSpec, *, replace: bool = False) -> OpSpec:
    """Add ``spec`` to the registry; every pass of the core then knows the op. A backend
    lowers it once its own table has an entry (``dpcdsl_torch.LOWERINGS`` and so on)."""
    if spec.name in RESERVED:
        raise ValueError(f"'{spec.name}' is a keyword of the language; name the op otherwise")
    if spec.name in OPS and not replace:
        raise ValueError(f"op '{spec.name}' is already registered; pass replace=True")
    OPS[spec.name] = spec
    return spec


def load_plugins() -> dict[str, Any]:
    """Every installed op plugin (entry-point group ``dpcdsl.ops``), by name, its ops
    registered; loaded once per process."""
    return _plugins.load_plugins(OPS, register)


def plugin_lowerings(backend: str) -> dict[str, Any]:
    """What the installed op plugins give the backend ``backend``: op -> lowering."""
    return _plugins.plugin_lowerings(backend, load_plugins())


def unregister(name: str) -> None:
    """Remove an op registered with :func:`register` (tests use it to clean up)."""
    if any(spec.name == name for spec in BUILTIN):
        raise ValueError(f"'{name}' is a built-in op")
    OPS.pop(name, None)


__all__ = [
    "ACTIVATIONS",
    "Arg",
    "Attrs",
    "CELL_CHANNELS",
    "DeeplabForm",
    "KINDS",
    "NORMS",
    "OPS",
    "OpError",
    "OpSpec",
    "Problem",
    "RENAMED",
    "REQUIRED",
    "RESERVED",
    "Tensor",
    "WORDS",
    "Weight",
    "feature_size",
    "load_plugins",
    "plugin_lowerings",
    "pool_window",
    "pooled_size",
    "reference_window",
    "register",
    "unregister",
]
