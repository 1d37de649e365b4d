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
from typing import Any

from dpcdsl.lang._library import directory, example, examples_dir, names, path
from dpcdsl.lang.space import Space, as_space


def load(name: str, **options: Any) -> Space:
    """The head ``name`` as a space (a concrete one: ``load(name).concrete()``), with
    its parameters set by ``options`` (``load("lraspp", classes=19, inter=128)``)."""
    return with_options(path(name), None, f"the head '{name}'", **options)


def with_options(file: str | Path, cell_name: str | None = None, what: str | None = None,
                 **options: Any) -> Space:
    """The space of a cell of ``file`` (default: its last) with its parameters'
    defaults set by ``options`` (:func:`dpcdsl.lang.params.with_params`)."""
    return as_space(Path(file), cell_name, options, what)


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
