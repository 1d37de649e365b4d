"""The primitive operations: one schema per op, in one place.

Every consumer (checker, flattener, printer, cost model, backends) reads the argument
names, kinds and defaults from here, so adding an op means adding one entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()  # an argument with no default
CELL_CHANNELS = object()  # default: the cell's `channels` parameter


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # "int" | "pair" | "float" | "bool" | "word" | "tensor"
    default: Any = REQUIRED
    words: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    name: str
    min_inputs: int
    max_inputs: int | None  # None: any number
    args: tuple[Arg, ...] = ()
    doc: str = ""
    weights: bool = field(default=False)

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    @property
    def tensor_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind == "tensor")

    @property
    def value_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind != "tensor")


_CONV_COMMON = (
    Arg("channels", "int", CELL_CHANNELS, doc="output channels"),
    Arg("bn", "bool", True, doc="BatchNorm after each conv"),
    Arg("relu", "bool", True, doc="ReLU after each BatchNorm"),
)

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            "conv", 1, 1,
            (Arg("kernel", "int", 1), Arg("rate", "pair", (1, 1)), *_CONV_COMMON),
            "dense k x k atrous conv, then BN and ReLU", weights=True,
        ),
        OpSpec(
            "sepconv", 1, 1,
            (Arg("kernel", "int", 3), Arg("rate", "pair", (1, 1)), *_CONV_COMMON),
            "depthwise k x k atrous conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU",
            weights=True,
        ),
        OpSpec(
            "pool", 1, 1,
            (
                Arg("grid", "pair", (1, 1)),
                Arg("mode", "word", "paper", words=("paper", "reference")),
                Arg("crop", "pair", (0, 0), doc="crop size, needed by mode = reference"),
                Arg("output_stride", "int", 16),
                *_CONV_COMMON,
            ),
            "average pooling to a grid, 1x1 conv + BN + ReLU, bilinear upsampling back",
            weights=True,
        ),
        OpSpec("upsample", 1, 1, (Arg("like", "tensor"),),
               "bilinear resize to the size of `like`"),
        OpSpec("concat", 1, None, (), "concatenation along channels"),
        OpSpec("sum", 1, None, (), "element-wise sum; all inputs have equal channels"),
        OpSpec("dropout", 1, 1, (Arg("p", "float", 0.1),), "dropout with drop rate p"),
        OpSpec("identity", 1, 1, (), "the input, unchanged"),
    )
}

#: words that stand for themselves in value positions (enum values)
WORDS: frozenset[str] = frozenset(w for s in OPS.values() for a in s.args for w in a.words)
