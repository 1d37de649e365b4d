"""Where the library of heads lives and how a name finds its file: the part of
:mod:`dpcdsl.lang.heads` that needs no parsing, so that the space module can take a head's
name without importing the heads module (which builds spaces)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dpcdsl._files import SOURCE_ROOT
from dpcdsl.errors import DpcError, did_you_mean


def examples_dir() -> Path:
    """The examples: package data in a wheel, ``examples/`` in a source tree."""
    packaged = Path(str(resources.files("dpcdsl").joinpath("examples")))
    if packaged.is_dir():
        return packaged
    return SOURCE_ROOT / "examples"


def directory() -> Path:
    return examples_dir() / "heads"


def example(name: str, suffix: str = ".dpc") -> Path | None:
    """The packaged example file of that name (``dpc_paper``, ``demo_task``), from
    ``examples/`` or its subfolders (``spaces``, ``tasks``), or None."""
    root = examples_dir()
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        file = folder / f"{name}{suffix}"
        if file.is_file():
            return file
    return None


def names() -> list[str]:
    """Every head of the library, sorted."""
    return sorted(p.stem for p in directory().glob("*.dpc"))


def path(name: str) -> Path:
    """The file of the head ``name``; an unknown name is an error with the known ones."""
    file = directory() / f"{name}.dpc"
    if not file.is_file():
        known = names()
        raise DpcError.at(None, f"no head named '{name}' in the library."
                          f"{did_you_mean(name, known)}".rstrip("."),
                          hint="heads: " + ", ".join(known), code="DPC206")
    return file
