"""Op plugins: packages that add ops, found through the entry-point group
``dpcdsl.ops``.

A plugin's entry point names a module (or any object) that has

* ``OPS``: the :class:`~dpcdsl.ops.OpSpec` s it adds, and
* ``lowerings(backend)``, optionally: for a backend's name, the lowering of each of its
  ops there (an op a backend has no lowering for is an error that names the op when a
  cell that uses it is compiled there).

:func:`load_plugins` registers them once per process. The language loads them before
it reads a program, and the backend registry before it hands out a backend, so the
command line and every process of a search (a pool's and a Ray cluster's workers among
them) know the same ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from dpcdsl._plugins import OPS as GROUP
from dpcdsl._plugins import installed_op_plugins
from dpcdsl.errors import DpcError
from dpcdsl.ops._spec import OpSpec, Registry

#: the plugins this process has loaded, by entry-point name (None: not looked for yet)
_loaded: dict[str, Any] | None = None


def load_plugins(registry: Registry, register: Any) -> dict[str, Any]:
    """Every installed op plugin, loaded and its ops registered (once per process)."""
    global _loaded
    if _loaded is None:
        loaded: dict[str, Any] = {}
        for name, ep in sorted(installed_op_plugins().items()):
            loaded[name] = _load(name, ep, registry, register)
        _loaded = loaded
    return _loaded


def _load(name: str, ep: metadata.EntryPoint, registry: Registry, register: Any) -> Any:
    where = f"op plugin '{name}' ({ep.value})"
    try:
        plugin = ep.load()
    except Exception as e:  # whatever its import raises: named, with the plugin
        raise DpcError.at(None, f"{where} cannot be loaded: {type(e).__name__}: {e}",
                          hint=f"fix or uninstall the package that registers '{name}' "
                               f"under the entry-point group {GROUP}",
                          code="DPC906") from None
    specs = getattr(plugin, "OPS", None)
    if not isinstance(specs, list | tuple) or not specs \
            or not all(isinstance(s, OpSpec) for s in specs):
        raise DpcError.at(None, f"{where} defines no ops",
                          hint="give the plugin OPS = [OpSpec(...), ...]", code="DPC906")
    for spec in specs:
        if spec.name in registry:
            raise DpcError.at(None, f"{where} defines the op '{spec.name}', which exists "
                              "already (built in, or from another plugin)",
                              hint="name the plugin's op otherwise", code="DPC906")
        try:
            register(spec)
        except ValueError as e:
            raise DpcError.at(None, f"{where}: {e}", code="DPC906") from None
    return plugin


def plugin_lowerings(backend: str, plugins: Mapping[str, Any]) -> dict[str, Any]:
    """The lowerings the loaded ``plugins`` give the backend named ``backend``, each
    for an op of its own plugin."""
    found: dict[str, Any] = {}
    for name, plugin in plugins.items():
        lowerings = getattr(plugin, "lowerings", None)
        if lowerings is None:
            continue
        table = dict(lowerings(backend))
        own = {spec.name for spec in plugin.OPS}
        if not set(table) <= own:
            raise DpcError.at(None, f"op plugin '{name}' gives the {backend} backend "
                              f"lowerings of ops it does not define: "
                              f"{', '.join(sorted(set(table) - own))}",
                              hint=f"its ops: {', '.join(sorted(own))}", code="DPC906")
        found.update(table)
    return found
