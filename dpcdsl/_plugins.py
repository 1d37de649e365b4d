"""What other packages plug in, found through their entry points without importing
them: the lowest layer's view of the backend registry (:mod:`dpcdsl.backends` loads
and checks backends; a task file only needs to know which names are installed)."""

from __future__ import annotations

from importlib import metadata

#: the entry-point group backends register under
BACKENDS = "dpcdsl.backends"


def installed_backends() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=BACKENDS)}
