"""The library of heads: the segmentation heads of torchvision and
segmentation_models_pytorch written as ``.dpc`` files (``examples/heads/``), loaded by
name as timm loads a model::

    >>> from dpcdsl import heads
    >>> heads.names()[:3]
    ['deeplabv3', 'fcn', 'lraspp']
    >>> heads.load("lraspp").concrete().inputs
    ('low', 'high')

Each file names, in its first comment, the module it reproduces; the test suite builds
that module and the compiled head with the same weights and compares them. The files
ship inside the wheel (``dpcdsl/examples/heads``); in a source tree they are read from
``examples/heads``. On the command line a head's name stands for its file:
``dpcc compile lraspp --in-channels low=40 --in-channels high=960``.
"""

from __future__ import annotations

from pathlib import Path

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang._library import directory, example, examples_dir, names, path
from dpcdsl.lang.printer import format_module
from dpcdsl.lang.program import load as load_program
from dpcdsl.lang.program import load_text
from dpcdsl.lang.space import Space


def load(name: str, **options: int | float | bool) -> Space:
    """The head ``name`` as a space (a concrete one: ``load(name).concrete()``), with
    its parameters set by ``options`` (``load("lraspp", classes=19, inter=128)``)."""
    return with_options(path(name), None, f"the head '{name}'", **options)


def with_options(file: str | Path, cell_name: str | None = None, what: str | None = None,
                 **options: int | float | bool) -> Space:
    """The space of a cell of ``file`` (default: its last) with its parameters'
    defaults set by ``options``."""
    if not options:
        return Space.from_file(file, cell_name)
    module = load_program(file).module
    cell = module.cells[cell_name] if cell_name in module.cells else \
        list(module.cells.values())[-1]
    name = Path(file).stem
    known = [p.name for p in cell.options]
    for key in options:
        if key not in known:
            raise DpcError.at(None, f"{what or f'cell {cell.name!r}'} has no parameter "
                              f"'{key}'.{did_you_mean(key, known)}".rstrip("."),
                              hint="parameters: " + ", ".join(known), code="DPC302")
    params = tuple(p.model_copy(update={"default": _literal(options[p.name])})
                   if p.name in options else p for p in cell.params)
    items = tuple(item.model_copy(update={"params": params}) if item is cell else item
                  for item in module.items)
    set_to = ", ".join(f"{k}={v}" for k, v in options.items())
    text = format_module(module.model_copy(update={"items": items}))
    # imports still resolve from the file's own folder
    return Space(load_text(text, f"<{name} with {set_to}>", Path(file).resolve().parent),
                 cell.name)


def _literal(value: int | float | bool) -> ir.Int | ir.Float | ir.Bool:
    if isinstance(value, bool):
        return ir.Bool(value=value)
    if isinstance(value, int):
        return ir.Int(value=value)
    return ir.Float(value=float(value))


def resolve(file: str | Path, suffix: str = ".dpc") -> Path:
    """``file`` when it exists or looks like a path; else the library head or packaged
    example of that name (so that a command line may say ``lraspp`` or ``dpc_paper``
    for its file, installed from a wheel or in a source tree). With ``suffix=".toml"``,
    a packaged task (``demo_task``)."""
    p = Path(file)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    if suffix == ".dpc" and (directory() / f"{p.name}.dpc").is_file():
        return directory() / f"{p.name}.dpc"
    return example(p.name, suffix) or p


__all__ = ["directory", "example", "examples_dir", "load", "names", "path", "resolve",
           "with_options"]
