"""The backend registry: packages registered under the entry-point group
``dpcdsl.backends``, as sqlglot registers dialects, each checked against the declared
:class:`Backend` contract when it loads.

Loading a backend imports its framework, so this core module never does until asked.
The core names no backend: where it needs one it asks for the installed backend of
highest ``priority`` that provides the hook (:func:`default`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from dpcdsl.errors import DpcError, did_you_mean

GROUP = "dpcdsl.backends"


@runtime_checkable
class Backend(Protocol):
    """What a backend provides: every hook the core calls.

    Required: its ``name``; ``priority`` (the default backend is the installed one with
    the highest); ``lowerings``, its table of one lowering per op of the op registry;
    ``emit(cell, in_channels, **options) -> str``, standalone source that imports only
    its framework; ``build(cell, in_channels, seed=0, **options)``, the live module made
    from that source; ``export_weights(module)`` / ``import_weights(module, weights)``,
    numpy arrays under canonical names in PyTorch's layout; ``forward(module, inputs)``,
    the module in eval mode on NCHW numpy arrays, giving NCHW numpy; ``proxy_steps(cells,
    cache, task, weights)``, the train and predict steps of the proxy task for a head
    per cell, trained fused on the same batches: ``step(features, labels, active) ->
    losses`` and ``predict(features, size, active) -> labels``, one per head in
    ``active`` (``features`` hold one array per input of the cells; each head must
    train as it would alone); and
    ``set_threads(n)``, the framework's CPU threads for one worker.

    Optional (None where the backend lacks them): ``feature_extractor(task)``, the
    task's backbone for the feature cache, a :class:`dpcdsl.data.cache.Extractor`;
    ``train_model(cell, task, run_dir, ...)`` and ``evaluate_run(run_dir)``, end-to-end
    training of the full model.
    """

    name: str
    priority: int
    lowerings: Mapping[str, Any]
    emit: Callable[..., str]
    build: Callable[..., Any]
    export_weights: Callable[[Any], Mapping[str, Any]]
    import_weights: Callable[[Any, Mapping[str, Any]], None]
    forward: Callable[[Any, list[Any]], Any]
    proxy_steps: Callable[..., tuple[Callable[..., list[float]], Callable[..., list[Any]]]]
    set_threads: Callable[[int], None]
    feature_extractor: Callable[..., Any] | None
    train_model: Callable[..., Any] | None
    evaluate_run: Callable[..., float] | None


#: the hooks a backend must define (the optional ones may be None)
HOOKS: tuple[str, ...] = tuple(Backend.__annotations__)
OPTIONAL: frozenset[str] = frozenset({"feature_extractor", "train_model", "evaluate_run"})

_loaded: dict[str, Any] = {}


def available() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def check_contract(backend: Any, name: str) -> Any:
    """``backend``, or an error that names every hook it lacks."""
    missing = [h for h in HOOKS if not hasattr(backend, h)]
    broken = [h for h in HOOKS if h not in missing and h not in OPTIONAL
              and h not in ("name", "priority", "lowerings")
              and not callable(getattr(backend, h))]
    if missing or broken:
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"not callable: {', '.join(broken)}"] if broken else []
        raise DpcError.at(None, f"backend '{name}' does not meet the backend contract "
                          f"({'; '.join(what)})",
                          hint="see dpcdsl.backends.Backend for every hook it must define")
    return backend


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
        hint = f"install the framework of '{name}': pip install 'dpcdsl[{name}]'"
        raise DpcError.at(None, f"backend '{name}' cannot be loaded: {e}",
                          hint=hint) from None
    _loaded[name] = check_contract(backend, name)
    return backend


def default(hook: str = "build") -> Any:
    """The installed backend of highest priority that provides ``hook``."""
    found = []
    for name in available():
        try:
            backend = get(name)
        except DpcError:
            continue
        if getattr(backend, hook, None) is not None:
            found.append(backend)
    if not found:
        raise DpcError.at(None, f"no installed backend provides {hook}",
                          hint="install one: pip install 'dpcdsl[torch]'")
    return max(found, key=lambda b: (b.priority, b.name))


def resolve(name: str | None, hook: str = "build") -> Any:
    """The backend called ``name``, or the default one for ``hook``; a named backend
    without the hook is an error that says which backends have it."""
    if name is None:
        return default(hook)
    backend = get(name)
    if getattr(backend, hook, None) is None:
        have = [n for n in sorted(available()) if getattr(_try(n), hook, None) is not None]
        raise DpcError.at(None, f"backend '{name}' does not provide {hook}",
                          hint="backends that do: " + (", ".join(have) or "none installed"))
    return backend


def _try(name: str) -> Any:
    try:
        return get(name)
    except DpcError:
        return None


def compile(source: Any, cell: str | None = None, backend: str | None = None,
            in_channels: int | Mapping[str, int] | None = None, seed: int = 0,
            output_stride: int = 16, **options: Any) -> Any:
    """A live module for a concrete cell: from a ``.dpc`` path, ``.dpc`` text, a
    :class:`~dpcdsl.program.Program` or an :class:`~dpcdsl.ir.Cell`. Rates are written
    for output stride 16 and scale to ``output_stride``; ``backend`` defaults to the
    installed backend of highest priority. ``in_channels`` is required: the channels of
    every input (a number, or a mapping from input name).

    >>> head = dpcdsl.compile("examples/aspp.dpc", cell="aspp", in_channels=2048)
    """
    concrete = concrete_cell(source, cell, output_stride)
    return resolve(backend).build(concrete, _channels(concrete, in_channels), seed=seed,
                                  **options)


def emit(source: Any, cell: str | None = None, backend: str | None = None,
         in_channels: int | Mapping[str, int] | None = None, output_stride: int = 16,
         **options: Any) -> str:
    """Standalone source for a concrete cell; the same inputs as :func:`compile`."""
    concrete = concrete_cell(source, cell, output_stride)
    return str(resolve(backend).emit(concrete, _channels(concrete, in_channels), **options))


def _channels(cell: Any, in_channels: int | Mapping[str, int] | None) -> Any:
    """``in_channels``, or an error that names the inputs that need it."""
    if in_channels is None:
        inputs = ", ".join(f"'{i}'" for i in cell.inputs)
        example = "2048" if len(cell.inputs) == 1 else \
            "{" + ", ".join(f"{i!r}: 256" for i in cell.inputs) + "}"
        raise DpcError.at(cell.span, f"in_channels is needed: the channels of the input "
                          f"{inputs} of cell '{cell.name}'",
                          hint=f"pass e.g. in_channels={example}")
    return in_channels


def concrete_cell(source: Any, cell: str | None = None, output_stride: int = 16) -> Any:
    """An :class:`~dpcdsl.ir.Cell` from a path, text, program or cell, at
    ``output_stride``."""
    from dpcdsl import ir
    from dpcdsl.rewrite import at_output_stride
    from dpcdsl.space import as_space

    concrete = source if isinstance(source, ir.Cell) else as_space(source, cell).concrete()
    return at_output_stride(concrete, output_stride)


