"""The backend registry: packages registered under the entry-point group
``dpcdsl.backends``, as sqlglot registers dialects, each checked against the declared
:class:`Backend` contract when it loads.

Loading a backend imports its framework, so this core module never does until asked.
The core names no backend: where it needs one it asks for the installed backend of
highest ``priority`` that provides the hook (:func:`default`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from dpcdsl._plugins import BACKENDS, installed_backends
from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.ops import plugin_lowerings

GROUP = BACKENDS

#: the channels of a cell's inputs: one number for all, or one per input name
InChannels = int | Mapping[str, int]


@runtime_checkable
class Backend(Protocol):
    """What every backend provides. A backend is any object with these attributes,
    usually its package, registered under the entry-point group ``dpcdsl.backends``.

    ``name``; ``priority`` (where a hook is not asked of a named backend, the installed
    one of highest priority that has it is used); ``lowerings``, its table of one
    lowering per op of the op registry (:class:`dpcdsl.compiler.codegen.Dialect`);
    ``emit(cell, in_channels, **options)``, standalone source that imports only its
    framework; ``build(cell, in_channels, seed=0, **options)``, the live module made
    from that source; ``export_weights(module)`` / ``import_weights(module, weights)``,
    numpy arrays under canonical names in PyTorch's layout.

    Everything else is an optional capability (:data:`CAPABILITIES`): a backend has it
    when it defines the capability's hooks. A backend's package may load its framework
    lazily: reading ``name`` and ``priority`` should not import it, so choosing the
    default backend imports only the framework of the one chosen.
    """

    name: str
    priority: int
    lowerings: Mapping[str, Any]

    def emit(self, cell: Any, in_channels: InChannels, **options: Any) -> str: ...

    def build(self, cell: Any, in_channels: InChannels, seed: int = 0,
              **options: Any) -> Any: ...

    def export_weights(self, module: Any) -> Mapping[str, Any]: ...

    def import_weights(self, module: Any, weights: Mapping[str, Any]) -> None: ...


class Runtime(Protocol):
    """Running a module: ``forward(module, inputs)``, the module in eval mode on NCHW
    numpy arrays, giving NCHW numpy; ``set_threads(n)``, the framework's CPU threads
    for one worker (by default nothing is changed)."""

    def forward(self, module: Any, inputs: list[Any]) -> Any: ...

    def set_threads(self, threads: int) -> None: ...


class ProxyTraining(Protocol):
    """The proxy task: ``proxy_steps(cells, cache, task, weights)``, the train and
    predict steps for a head per cell, trained fused on the same batches:
    ``step(features, labels, active) -> losses`` and ``predict(features, size,
    active) -> labels``, one per head in ``active`` (``features`` hold one array per
    input of the cells; each head must train as it would alone)."""

    def proxy_steps(self, cells: Any, cache: Any, task: Any, weights: Any = None) -> tuple[
            Callable[..., list[float]], Callable[..., list[Any]]]: ...


class FeatureExtraction(Protocol):
    """A backbone for the feature cache: ``feature_extractor(task)``, a
    :class:`dpcdsl.train.data.cache.Extractor`."""

    def feature_extractor(self, task: Any) -> Any: ...


class EndToEndTraining(Protocol):
    """Training the full model: ``train_model(cell, task, run_dir, ...)``,
    ``evaluate_run(run_dir)``, its mIOU, and ``load_run(run_dir)``, the trained model
    with its task and training record."""

    def train_model(self, cell: Any, task: Any, run_dir: Any, **options: Any) -> Any: ...

    def evaluate_run(self, run_dir: Any) -> float: ...

    def load_run(self, run_dir: Any) -> tuple[Any, Any, Any]: ...


class Export(Protocol):
    """Writing a module for deployment: ``export_formats``, each format it writes
    with the input axes a written file leaves dynamic (``{"onnx": ("batch", "height",
    "width")}``; readable without importing the framework);
    ``export(module, inputs, path, format, names)``, the module traced on example NCHW
    numpy ``inputs`` and written to ``path``, raising
    :class:`dpcdsl.errors.ExportFailure` where its exporter cannot take it; and
    ``load_exported(path, format)``, a written file loaded back as a function of NCHW
    numpy inputs, giving NCHW numpy (which checks an export against its module)."""

    export_formats: Mapping[str, tuple[str, ...]]

    def export(self, module: Any, inputs: Any, path: Any, format: str,
               names: Any = None) -> None: ...

    def load_exported(self, path: Any, format: str) -> Callable[[list[Any]], Any]: ...


class Timing(Protocol):
    """Timing a forward pass: ``latency_runtimes``, the runtimes it times (``("jax",)``;
    readable without importing the framework), and ``time_forward(module, inputs,
    runtime, warmup, runs)``, the seconds of each of ``runs`` forward passes on NCHW
    numpy ``inputs`` after ``warmup`` untimed ones, with the threads ``set_threads``
    gave."""

    latency_runtimes: tuple[str, ...]

    def time_forward(self, module: Any, inputs: Any, runtime: str, warmup: int,
                     runs: int) -> list[float]: ...


class Supernets(Protocol):
    """Supernets (:mod:`dpcdsl.compiler.supernet` fixes the weight sharing):
    ``compile_space(space, in_channels, output_stride, seed, **options)``, a module that
    runs any candidate of the space over one bank of shared weights
    (``forward(*inputs, decisions=...)``, ``extract(decisions)``: the candidate's
    weights under canonical names)."""

    def compile_space(self, space: Any, in_channels: InChannels, output_stride: int = 16,
                      seed: int = 0, **options: Any) -> Any: ...


class SupernetTraining(Protocol):
    """Training a supernet on the proxy task: ``supernet_steps(space, cache, task,
    in_channels, bank)``, its steps (``step(features, labels, decisions, k) -> loss``,
    ``state()``, ``load(bank, momentum)``, ``extract``) and ``predictor(decisions,
    calibrate)``, a candidate's stand-alone ``predict`` after its BatchNorm statistics
    are recalibrated on the ``calibrate`` batches."""

    def supernet_steps(self, space: Any, cache: Any, task: Any, in_channels: Any,
                       bank: Any = None) -> Any: ...


@dataclass(frozen=True)
class Capability:
    """An optional part of the contract: what it is called in messages, its
    :class:`~typing.Protocol`, and the defaults of the hooks that have one."""

    title: str
    protocol: type
    defaults: Mapping[str, Callable[..., Any]]

    @property
    def hooks(self) -> tuple[str, ...]:
        return tuple(n for n in vars(self.protocol) if not n.startswith("_"))


def _threads_unchanged(threads: int) -> None:
    del threads


#: the optional capabilities of a backend
CAPABILITIES: dict[str, Capability] = {
    "runtime": Capability("running a module", Runtime, {"set_threads": _threads_unchanged}),
    "proxy": Capability("proxy training", ProxyTraining, {}),
    "features": Capability("feature extraction", FeatureExtraction, {}),
    "end_to_end": Capability("end-to-end training", EndToEndTraining, {}),
    "export": Capability("export", Export, {}),
    "timing": Capability("latency measurement", Timing, {}),
    "supernets": Capability("supernets", Supernets, {}),
    "supernet_training": Capability("supernet training", SupernetTraining, {}),
}
#: the hooks every backend must define
REQUIRED: tuple[str, ...] = ("name", "priority", "lowerings", "emit", "build",
                             "export_weights", "import_weights")
#: each optional hook's capability
CAPABILITY_OF: dict[str, Capability] = {
    hook: cap for cap in CAPABILITIES.values() for hook in cap.hooks}

_loaded: dict[str, Any] = {}


def available() -> dict[str, metadata.EntryPoint]:
    """Installed backends by name (their frameworks are not imported)."""
    return installed_backends()


def check_contract(backend: Any, name: str) -> Any:
    """``backend``, or an error that names every required hook it lacks."""
    missing = [h for h in REQUIRED if not hasattr(backend, h)]
    broken = [h for h in REQUIRED[3:] if h not in missing and not callable(getattr(backend, h))]
    if missing or broken:
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"not callable: {', '.join(broken)}"] if broken else []
        raise DpcError.at(None, f"backend '{name}' does not meet the backend contract "
                          f"({'; '.join(what)})",
                          hint="see dpcdsl.backends.Backend for what every backend defines",
                          code="DPC901")
    return backend


def hook(backend: Any, name: str) -> Any:
    """The optional hook ``name`` of ``backend``, its default where the capability has
    one, or None."""
    found = getattr(backend, name, None)
    if found is None:
        found = CAPABILITY_OF[name].defaults.get(name)
    return found


def get(name: str) -> Any:
    """The backend registered as ``name``; unknown names fail with "did you mean"."""
    if name in _loaded:
        return _loaded[name]
    eps = available()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is dpcdsl installed?)"
        raise DpcError.at(None, f"unknown backend '{name}'.{did_you_mean(name, eps)}"
                          .rstrip("."), hint=f"installed backends: {known}", code="DPC901")
    try:
        # the check reads every required hook, which loads a lazy backend's framework
        backend = check_contract(eps[name].load(), name)
    except ImportError as e:
        hint = f"install the framework of '{name}': pip install 'dpcdsl[{name}]'"
        raise DpcError.at(None, f"backend '{name}' cannot be loaded: {e}",
                          hint=hint, code="DPC901") from None
    extra = plugin_lowerings(name)  # the installed op plugins' join the backend's table
    if extra and not isinstance(backend.lowerings, MutableMapping):
        raise DpcError.at(None, f"backend '{name}' cannot take the lowerings of the "
                          f"installed op plugins ({', '.join(sorted(extra))}): its "
                          "`lowerings` cannot be added to", code="DPC901",
                          hint="make the backend's `lowerings` a dict")
    if extra:
        backend.lowerings.update(extra)
    _loaded[name] = backend
    return backend


def declared(attribute: str) -> dict[str, str]:
    """Each name an installed backend lists in its ``attribute`` (``export_formats``,
    ``latency_runtimes``), with the backend's name (the first by name where several
    list it); read from the backend's package, without importing its framework."""
    found: dict[str, str] = {}
    for name, ep in sorted(available().items()):
        try:
            listed = getattr(_loaded[name] if name in _loaded else ep.load(), attribute, None)
        except ImportError:
            continue
        for item in listed or ():
            found.setdefault(item, name)
    return found


def provider(attribute: str, item: str, what: str, plural: str) -> str:
    """The installed backend that lists ``item`` in its ``attribute``, or an error for
    an unknown ``what`` that names the ``plural`` installed."""
    known = declared(attribute)
    if item not in known:
        raise DpcError.at(None, f"unknown {what} '{item}'.{did_you_mean(item, known)}"
                          .rstrip("."), hint=f"{plural} installed: "
                          f"{', '.join(sorted(known)) or 'none'}", code="DPC907")
    return known[item]


def _priority(ep: metadata.EntryPoint) -> tuple[int, str] | None:
    """A backend's (priority, name), read without loading its framework where the
    backend's package loads it lazily; None for one that cannot be imported."""
    try:
        return int(_loaded[ep.name].priority if ep.name in _loaded else ep.load().priority), \
            ep.name
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def default(hook_name: str = "build") -> Any:
    """The installed backend of highest priority that provides ``hook_name``. Backends
    are tried from the highest priority down, so only the chosen one's framework (and
    those of any above it that cannot be loaded) is imported."""
    ranked = sorted((r for r in map(_priority, available().values()) if r is not None),
                    reverse=True)
    for _, name in ranked:
        try:
            backend = get(name)
        except DpcError:
            continue
        if _provides(backend, hook_name):
            return backend
    cap = CAPABILITY_OF.get(hook_name)
    what = f"{cap.title} ({hook_name})" if cap else hook_name
    raise DpcError.at(None, f"no installed backend provides {what}",
                      hint="install one: pip install 'dpcdsl[torch]'", code="DPC901")


def _provides(backend: Any, hook_name: str) -> bool:
    if hook_name in REQUIRED:
        return True
    return getattr(backend, hook_name, None) is not None


def resolve(name: str | None, hook_name: str = "build") -> Any:
    """The backend called ``name``, or the default one for ``hook_name``; a named
    backend without the hook is an error that names the capability it lacks and the
    backends that have it."""
    if name is None:
        return default(hook_name)
    backend = get(name)
    if not _provides(backend, hook_name):
        cap = CAPABILITY_OF[hook_name]
        have = [n for n in sorted(available())
                if (other := _try(n)) is not None and _provides(other, hook_name)]
        raise DpcError.at(None, f"backend '{name}' has no {cap.title}: it does not define "
                          f"{hook_name}", hint="backends that do: "
                          + (", ".join(have) or "none installed"), code="DPC901")
    return backend


def _try(name: str) -> Any:
    try:
        return get(name)
    except DpcError:
        return None


def compile(source: Any, cell: str | None = None, backend: str | None = None,
            in_channels: int | Mapping[str, int] | None = None, seed: int = 0,
            output_stride: int = 16, params: Mapping[str, Any] | None = None,
            **options: Any) -> Any:
    """A live module for a concrete cell: from a ``.dpc`` path, ``.dpc`` text, a
    :class:`~dpcdsl.lang.program.Program` or an :class:`~dpcdsl.lang.ir.Cell`. Rates are written
    for output stride 16 and scale to ``output_stride``; ``backend`` defaults to the
    installed backend of highest priority. ``in_channels`` is required: the channels of
    every input (a number, or a mapping from input name). ``params`` set the cell's
    parameters (``{"channels": 64}``).

    >>> head = dpcdsl.compile("examples/aspp.dpc", cell="aspp", in_channels=2048)
    """
    concrete = concrete_cell(source, cell, output_stride, params)
    return resolve(backend).build(concrete, _channels(concrete, in_channels), seed=seed,
                                  **options)


def compile_space(source: Any, cell: str | None = None, backend: str | None = None,
                  in_channels: int | Mapping[str, int] | None = None, seed: int = 0,
                  output_stride: int = 16, params: Mapping[str, Any] | None = None,
                  **options: Any) -> Any:
    """The supernet of a space: one module over a bank of shared weights that runs any
    candidate of the space, ``forward(*inputs, decisions=...)``, with the candidate's
    inherited weights from ``extract(decisions)``. ``source`` is a
    :class:`~dpcdsl.lang.space.Space` or what :func:`compile` takes; the weight sharing
    is :mod:`dpcdsl.compiler.supernet`'s.

    >>> net = dpcdsl.compile_space("examples/dpc_paper.dpc", in_channels=320)
    >>> cell, decisions = net.space.sample(0)
    >>> y = net(x, decisions=decisions)
    """
    from dpcdsl.lang.space import Space, as_space

    space = source if isinstance(source, Space) else as_space(source, cell, params)
    return resolve(backend, "compile_space").compile_space(
        space, _channels(_Named(space), in_channels), output_stride=output_stride, seed=seed,
        **options)


@dataclass(frozen=True)
class _Named:
    """A space's cell as :func:`_channels` names it in its error."""

    space: Any

    @property
    def name(self) -> str:
        return str(self.space.name)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.space.cell_def.inputs)

    @property
    def span(self) -> Any:
        return self.space.cell_def.span


def emit(source: Any, cell: str | None = None, backend: str | None = None,
         in_channels: int | Mapping[str, int] | None = None, output_stride: int = 16,
         params: Mapping[str, Any] | None = None, **options: Any) -> str:
    """Standalone source for a concrete cell; the same inputs as :func:`compile`."""
    concrete = concrete_cell(source, cell, output_stride, params)
    return str(resolve(backend).emit(concrete, _channels(concrete, in_channels), **options))


def _channels(cell: Any, in_channels: int | Mapping[str, int] | None) -> Any:
    """``in_channels``, or an error that names the inputs that need it."""
    if in_channels is None:
        inputs = ", ".join(f"'{i}'" for i in cell.inputs)
        example = "2048" if len(cell.inputs) == 1 else \
            "{" + ", ".join(f"{i!r}: 256" for i in cell.inputs) + "}"
        raise DpcError.at(cell.span, f"in_channels is needed: the channels of the input "
                          f"{inputs} of cell '{cell.name}'",
                          hint=f"pass e.g. in_channels={example}", code="DPC604")
    return in_channels


def concrete_cell(source: Any, cell: str | None = None, output_stride: int = 16,
                  params: Mapping[str, Any] | None = None) -> Any:
    """An :class:`~dpcdsl.lang.ir.Cell` from a path, text, program or cell, at
    ``output_stride``, its parameters set by ``params``."""
    from dpcdsl.compiler.rewrite import at_output_stride
    from dpcdsl.lang import ir
    from dpcdsl.lang.space import as_space

    if isinstance(source, ir.Cell) and params:
        raise DpcError.at(source.span, f"params cannot be set on the built cell "
                          f"'{source.name}': its parameters are resolved",
                          hint="pass its .dpc source (a path, text or program) with params",
                          code="DPC302")
    concrete = source if isinstance(source, ir.Cell) else \
        as_space(source, cell, params).concrete()
    return at_output_stride(concrete, output_stride)


