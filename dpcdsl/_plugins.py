"""What other packages plug in, found through their entry points: backends, found
without importing them (:mod:`dpcdsl.backends` loads and checks them; a task file only
needs to know which names are installed), and op plugins (:func:`dpcdsl.ops.load_plugins`
loads them)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

#: the entry-point group backends register under
BACKENDS = "dpcdsl.backends"
#: the entry-point group op plugins register under
OPS = "dpcdsl.ops"


def installed_backends() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=BACKENDS)}


def installed_op_plugins() -> dict[str, metadata.EntryPoint]:
    """Installed op plugins by name (not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=OPS)}


def lazy_exports(package: str, where: Mapping[str, tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for names that its
    submodules define: ``where`` maps each public name to (submodule, name there). The
    submodule is imported when the name is first read, and the name kept, so a backend
    can be chosen by its ``name`` and ``priority`` without importing its framework."""

    def getattr_(attr: str) -> Any:
        found = where.get(attr)
        if found is None:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        value = getattr(importlib.import_module(f"{package}.{found[0]}"), found[1])
        setattr(sys.modules[package], attr, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return getattr_, dir_
