"""The backend registry: packages registered under the entry-point group
``dpcdsl.backends``, as sqlglot registers dialects.

A backend is a module (or object) with:

- ``emit(cell, in_channels, **options) -> str``: standalone source for the cell;
- ``build(cell, in_channels, seed=0, **options)``: the live module, from that source;
- ``export_weights(module) -> dict[str, numpy.ndarray]`` and
  ``import_weights(module, weights)``: weights under canonical names, in PyTorch's layout.

Loading a backend imports its framework, so this core module never does until asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from dpcdsl.errors import DpcError, did_you_mean

GROUP = "dpcdsl.backends"

#: what to install for a backend whose framework is missing
INSTALL_HINT = {"torch": "pip install 'dpcdsl[torch]'", "jax": "pip install 'dpcdsl[jax]'"}

_loaded: dict[str, Any] = {}


def available() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def get(name: str) -> Any:
    """The backend registered as ``name``; unknown names fail with "did you mean"."""
    if name in _loaded:
        return _loaded[name]
    eps = available()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is dpcdsl installed?)"
        raise DpcError.at(None, f"unknown backend '{name}'.{did_you_mean(name, eps)}"
                          .rstrip("."), hint=f"installed backends: {known}")
    try:
        backend = eps[name].load()
    except ImportError as e:
        hint = INSTALL_HINT.get(name, f"install the package that provides '{name}'")
        raise DpcError.at(None, f"backend '{name}' cannot be loaded: {e}",
                          hint=hint) from None
    _loaded[name] = backend
    return backend


def compile(source: Any, cell: str | None = None, backend: str = "torch",
            in_channels: int | Mapping[str, int] = 256, seed: int = 0,
            **options: Any) -> Any:
    """A live module for a concrete cell: from a ``.dpc`` path, ``.dpc`` text, a
    :class:`~dpcdsl.program.Program` or an :class:`~dpcdsl.ir.Cell`.

    >>> head = dpcdsl.compile("examples/aspp.dpc", cell="aspp", in_channels=2048)
    """
    return get(backend).build(concrete_cell(source, cell), in_channels, seed=seed, **options)


def emit(source: Any, cell: str | None = None, backend: str = "torch",
         in_channels: int | Mapping[str, int] = 256, **options: Any) -> str:
    """Standalone source for a concrete cell; the same inputs as :func:`compile`."""
    return str(get(backend).emit(concrete_cell(source, cell), in_channels, **options))


def concrete_cell(source: Any, cell: str | None = None) -> Any:
    """An :class:`~dpcdsl.ir.Cell` from a path, text, program or cell."""
    from dpcdsl import ir
    from dpcdsl.space import as_space

    if isinstance(source, ir.Cell):
        return source
    return as_space(source, cell).concrete()


