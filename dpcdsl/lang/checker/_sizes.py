"""The feature sizes ``check`` infers shapes at: one size for every input, a size per
input, or the image's size, from which each input's follows from the stride it
declares (``low @ 4``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dpcdsl.lang import ir

Size = tuple[int, int]


@dataclass(frozen=True)
class ImageSize:
    """The image's size. An input declared at stride s is ceil(h / s) x ceil(w / s), as
    a backbone's SAME-padded stride-2 stages make it (513 gives 33 at stride 16); a
    cell's one undeclared input reads ``output_stride``."""

    size: Size
    output_stride: int = 16

    def at(self, stride: int) -> Size:
        return (-(-self.size[0] // stride), -(-self.size[1] // stride))


@dataclass(frozen=True)
class PerInput:
    """A size for each input, by name (hashable: ``check`` keeps its results per size)."""

    sizes: tuple[tuple[str, Size], ...]

    @classmethod
    def of(cls, sizes: Mapping[str, Size]) -> PerInput:
        return cls(tuple(sorted(sizes.items())))


#: what ``check`` is told about sizes
SizeSpec = Size | ImageSize | PerInput | None


def uniform(spec: SizeSpec) -> Size | None:
    """The one size of every input, for the rules that read an op's input size from the
    text alone (a pool grid larger than the map); None when inputs differ."""
    return spec if isinstance(spec, tuple) else None


def for_cell(spec: SizeSpec, cell: ir.Cell) -> Size | dict[str, Size] | None:
    """The sizes of ``cell``'s inputs under ``spec``; None where some input's size is
    not known (a cell of the file whose inputs ``spec`` does not name, or an input that
    declares no stride)."""
    if spec is None or isinstance(spec, tuple):
        return spec
    if isinstance(spec, PerInput):
        given = dict(spec.sizes)
        return {i: given[i] for i in cell.inputs} if set(cell.inputs) <= set(given) else None
    strides = cell.strides or (None,) * len(cell.inputs)
    if len(cell.inputs) == 1 and strides[0] is None:
        return {cell.inputs[0]: spec.at(spec.output_stride)}
    if any(s is None for s in strides):
        return None
    return {i: spec.at(int(s)) for i, s in zip(cell.inputs, strides)}  # type: ignore[arg-type]


def mixed_strides(spec: SizeSpec, cell: ir.Cell) -> list[int]:
    """The distinct strides ``cell`` declares where one size was given for every input:
    one size cannot be that of inputs at several strides. Empty when it fits."""
    if not isinstance(spec, tuple):
        return []
    declared = sorted({s for s in cell.strides if s is not None})
    return declared if len(declared) > 1 else []


__all__ = ["ImageSize", "PerInput", "SizeSpec", "for_cell", "mixed_strides", "uniform"]
