"""What the commands of ``dpcc`` share: the consoles, the error handling, and the
options and argument parsers that several commands take (the commands themselves are in
:mod:`dpcdsl.cli` and :mod:`dpcdsl.cli_oneshot`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang.space import Space

out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False,
              width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> typer.Exit:
    err.print(message, markup=False)
    return typer.Exit(1)


def handled(fn: F) -> F:
    """Turn the project's errors and OS errors into a message and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DpcError as e:
            raise _fail(e.render()) from None
        except OSError as e:
            raise _fail(f"error: {e.filename or ''}: {e.strerror or e}") from None

    return wrapper  # type: ignore[return-value]


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, _, w = text.lower().partition("x")
        size = (int(h), int(w or h))
    except ValueError:
        raise typer.BadParameter(f"expected HxW such as 65x129, got {text!r}") from None
    if min(size) < 1:
        raise typer.BadParameter(f"sizes must be positive, got {text!r}")
    return size


def _per_input(values: list[str], parse_one: Callable[[str], Any], inputs: tuple[str, ...],
               what: str) -> Any:
    """``--opt V`` for every input, or ``--opt name=V`` once per input."""
    if len(values) == 1 and "=" not in values[0]:
        return parse_one(values[0])
    table = {}
    for v in values:
        name, eq, val = v.partition("=")
        if not eq:
            raise typer.BadParameter(f"with several inputs write {what} as NAME=VALUE, got "
                                     f"{v!r}")
        table[name] = parse_one(val)
    unknown = set(table) - set(inputs)
    if unknown:
        raise typer.BadParameter(f"no input named {sorted(unknown)[0]!r}; inputs: "
                                 + ", ".join(inputs))
    return table


def parse_count(text: str) -> int:
    """A positive count with an optional suffix: ``0.5B``, ``500M``, ``20K``, ``5e8``."""
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise typer.BadParameter(f"expected a count such as 0.5B, 500M or 5e8, got "
                                 f"{text!r}") from None
    if not (value >= 1 and value < float("inf")):
        raise typer.BadParameter(f"expected a positive count, got {text!r}")
    return int(value)


def parse_duration(text: str) -> float:
    """A time in milliseconds: ``20ms``, ``0.5s``, ``250us``, or a number of ms."""
    value = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 1.0), ("us", 1e-3), ("s", 1e3)):
        if value.endswith(suffix):
            value, scale = value[: -len(suffix)].strip(), factor
            break
    try:
        ms = float(value) * scale
    except ValueError:
        raise typer.BadParameter(f"expected a time like 20ms or 0.5s, got {text!r}") from None
    if not ms > 0:
        raise typer.BadParameter(f"expected a positive time, got {text!r}")
    return ms


def _int(text: str) -> int:
    """A positive integer (channels)."""
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise typer.BadParameter(f"expected a positive integer, got {text!r}")
    return value


def _head_or_file(value: Path | list[Path]) -> Path | list[Path]:
    """A name of the head library (``lraspp``) stands for its file."""
    from dpcdsl.lang import heads

    def one(v: Path) -> Path:
        found = heads.resolve(v)
        if not found.exists() and not v.suffix and len(v.parts) == 1:
            known = heads.names() + [p.stem for p in heads.examples_dir().rglob("*.dpc")]
            hint = did_you_mean(v.name, known)
            raise typer.BadParameter(f"no file, library head or example named '{v}'.{hint}"
                                     .rstrip(".") + (" (see dpcc heads)" if not hint else ""))
        return found

    return [one(v) for v in value] if isinstance(value, list) else one(value)


FileArg = Annotated[Path, typer.Argument(
    help="a .dpc file, or the name of a head of the library (dpcc heads)",
    show_default=False, metavar="FILE", callback=_head_or_file)]
CellOpt = Annotated[str | None, typer.Option("--cell", "-c",
                                             help="cell name (default: the file's last)")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", metavar="NAME=VALUE", show_default=False,
    help="set a parameter of the cell, once per parameter: channels=64, act=gelu, "
         "rate=(6, 12), kernel={1, 3} (a set makes a space)")]


class Format(str, Enum):
    text = "text"
    json = "json"


class Pooling(str, Enum):
    reference = "reference"
    paper = "paper"


Fmt = Annotated[Format, typer.Option("--format", help="the output format")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", help="no progress: neither a bar nor log lines")]


InChannelsOpt = Annotated[list[str] | None, typer.Option(
    "--in-channels", help="input channels: C, or NAME=C per input (a head needs them, as in "
    "the API: 2048 for a ResNet-101's last stage)", show_default=False)]
OutputStrideOpt = Annotated[int, typer.Option(
    help="backbone output stride; rates scale by 16 / output stride")]
ImageOpt = Annotated[str | None, typer.Option(
    help="the image's size HxW; each input's follows from its declared stride  "
         "\\[default: 512x512]", show_default=False)]
SizeOpt = Annotated[list[str] | None, typer.Option(
    help="the feature size HxW of every input, or NAME=HxW per input, instead of --image",
    show_default=False)]


def _in_channels(c: ir.Cell, given: list[str] | None) -> Any:
    """``--in-channels`` for cell ``c``: one number, or one per input by name; an error
    with an example where it is missing."""
    if not given:
        example = " ".join(f"--in-channels {i}=256" for i in c.inputs) if len(c.inputs) > 1 \
            else "--in-channels 2048"
        raise typer.BadParameter(f"--in-channels is needed: the channels of the input"
                                 f"{'s' if len(c.inputs) > 1 else ''} "
                                 f"{', '.join(c.inputs)} of cell '{c.name}', e.g. {example}",
                                 param_hint="--in-channels")
    return _per_input(given, _int, c.inputs, "--in-channels")


def _sizes(c: ir.Cell, image: str | None, size: list[str] | None) -> dict[str, Any]:
    """``--image`` and ``--size`` as the ``image`` and ``sizes`` of a head's inputs."""
    return {"image": parse_size(image) if image else None,
            "sizes": _per_input(size, parse_size, c.inputs, "--size") if size else None}


def _progress(quiet: bool) -> str:
    """A bar on a terminal, timestamped log lines elsewhere, or nothing."""
    return "none" if quiet else "bar" if err.is_terminal else "log"


def _space(file: Path, cell: str | None, params: list[str] | None = None) -> Space:
    """The space of a cell of ``file`` with the parameters ``--param`` sets."""
    from dpcdsl.lang.space import as_space

    return as_space(file, cell, _params(params))


def _concrete(file: Path, cell: str | None, params: list[str] | None = None) -> ir.Cell:
    return _space(file, cell, params).concrete()


def _params(pairs: list[str] | None) -> dict[str, Any]:
    """``--param NAME=VALUE`` options: each value read as .dpc text."""
    from dpcdsl.lang.params import parse_value

    found: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, text = (part.strip() for part in pair.partition("="))
        if not sep or not name.isidentifier() or not text:
            raise typer.BadParameter(f"'{pair}': expected NAME=VALUE, e.g. channels=64",
                                     param_hint="--param")
        if name in found:
            raise typer.BadParameter(f"'{name}' is given twice", param_hint="--param")
        found[name] = parse_value(name, text)
    return found


def _for_task(file: Path, cell: str | None, spec: Any) -> ir.Cell:
    """The concrete cell to train on a task. A head that ends in its own classifier (a
    parameter ``classes``: torchvision's deeplabv3, fcn, lraspp) gets the task's
    classes, and a note says that the trainer's 1x1 classifier follows it."""
    from dpcdsl.lang.heads import with_options

    space = Space.from_file(file, cell)
    param = next((p for p in space.cell_def.options if p.name == "classes"), None)
    if param is None:
        return space.concrete()
    classes = spec.dataset.num_classes
    err.print(f"note: cell '{space.name}' ends in its own classifier: its classes are set to "
              f"the task's {classes}, and the trainer's 1x1 classifier follows it",
              markup=False, highlight=False)
    return with_options(file, space.name, classes=classes).concrete()


def _task_file(value: Path | None) -> Path | None:
    """A packaged task's name (``demo_task``) stands for its file."""
    from dpcdsl.lang import heads

    if value is None:
        return None
    found = heads.resolve(value, ".toml")
    if not found.exists() and not value.suffix and len(value.parts) == 1:
        known = [p.stem for p in heads.examples_dir().rglob("*.toml")]
        hint = did_you_mean(value.name, known)
        raise typer.BadParameter(f"no task file and no packaged task named '{value}'.{hint}"
                                 .rstrip(".") + ("" if hint else " Packaged tasks: "
                                                 + ", ".join(sorted(known))))
    return found


TaskOpt = Annotated[Path, typer.Option("--task", "-t", callback=_task_file,
                                       help="a task file (TOML), or the name of a packaged "
                                            "one (demo_task, synthetic_task, voc...)")]


ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, show_default=False,
    help="CPU threads [default: $OMP_NUM_THREADS, else every usable CPU, as the search's "
         "local executor; on a machine other work shares, fewer run faster]")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", show_default=False, help="cpu, cuda, cuda:N or mps [default: the task's]")]
SeedOpt = Annotated[int | None, typer.Option(
    "--seed", show_default=False,
    help="the seed of initial weights and batches [default: the task's]")]


def _runtime(spec: Any, threads: int | None, device: str | None, seed: int | None,
             quiet: bool = False) -> Any:
    """The task with the command's device and seed, and the framework's CPU threads set:
    one policy for every command that trains or runs a backbone, with the search's
    defaults. The thread count is said once, so a slow run explains itself."""
    import os

    from dpcdsl import backends
    from dpcdsl.backends import resolve
    from dpcdsl.search.executors import usable_cpus
    from dpcdsl.train.data.task import device_name

    updates: dict[str, Any] = {}
    if device is not None:
        try:
            updates["device"] = device_name(device)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--device") from None
    if seed is not None:
        updates["seed"] = seed
    spec = spec.model_copy(update=updates)
    given = os.environ.get("OMP_NUM_THREADS", "")
    n = threads or (int(given) if given.isdigit() and int(given) > 0 else usable_cpus())
    os.environ["OMP_NUM_THREADS"] = str(n)  # JAX sizes its pool from it when it starts
    backend = resolve(spec.backend, "proxy_steps")
    backends.hook(backend, "set_threads")(n)
    if not quiet:
        err.print(f"{backend.name} backend on {spec.device}, {n} CPU thread"
                  f"{'s' if n != 1 else ''}, seed {spec.seed}", markup=False, highlight=False)
    return spec

