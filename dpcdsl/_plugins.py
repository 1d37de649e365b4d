"""What other packages plug in, found through their entry points without importing
them: the lowest layer's view of the backend registry (:mod:`dpcdsl.backends` loads
and checks backends; a task file only needs to know which names are installed)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

#: the entry-point group backends register under
BACKENDS = "dpcdsl.backends"


def installed_backends() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=BACKENDS)}


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
