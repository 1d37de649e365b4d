"""The op schema: everything the core knows about one op, declared in one entry.

An :class:`OpSpec` holds an op's arguments (kinds, defaults, constraints and their error
text) and its rules: the tensor it makes from its inputs, its canonical weights, its
multiply-adds, its label, how output stride rewrites it and its DeepLab JSON form.
Checks, costs, weights, pictures, rewrites and interop read these rules; none of them
branches on an op's name. A backend adds one lowering per op (its own table).

Rules see a node's attributes as a plain mapping and its inputs as :class:`Tensor` s,
and raise :class:`OpError` (a message, no location) for inputs they cannot take; the
caller adds the node and its span.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
"""The default of an argument that has none."""
CELL_CHANNELS: Any = type("CellChannels", (), {"__repr__": lambda self: "CELL_CHANNELS"})()
"""A default: the cell's ``channels`` parameter."""

Size = tuple[int, int]
Attrs = Mapping[str, Any]
#: the kinds of argument ("any": a cell parameter, whose kind its uses decide)
KINDS = ("int", "natural", "pair", "float", "bool", "word", "tensor", "any")


class OpError(Exception):
    """An op rule refuses its inputs or attributes: a message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Tensor:
    """What the core knows of a tensor: channels, and its size (H, W) when known."""

    channels: int
    size: Size | None = None


@dataclass(frozen=True)
class Weight:
    """One canonical weight: its shape (PyTorch's layout, OIHW for convs) and kind:
    ``weight`` (conv or linear weights and biases), ``norm`` (a norm's scale and shift)
    or ``stat`` (running statistics: state, not parameters)."""

    shape: tuple[int, ...]
    kind: str = "weight"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Arg:
    """One argument. ``check(value)`` returns what is wrong with a value of the right
    kind (e.g. an even kernel), or None."""

    name: str
    kind: str  # one of KINDS
    default: Any = REQUIRED
    words: tuple[str, ...] = ()
    doc: str = ""
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"argument '{self.name}': kind must be one of {KINDS}, "
                             f"got {self.kind!r}")

    @property
    def expects(self) -> str:
        """What a value of this argument is, in words."""
        if self.kind in VALUE_KINDS:
            return VALUE_KINDS[self.kind][1]
        return "one of " + ", ".join(self.words) if self.kind == "word" else self.kind

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this argument: its kind, then its check
        (None: nothing)."""
        if self.kind in VALUE_KINDS:
            if not VALUE_KINDS[self.kind][0](value):
                return f"expected {self.expects}, got {show_value(value)}"
        elif self.kind == "word" and value not in self.words:
            return f"expected {self.expects}, got {show_value(value)}"
        return self.check(value) if self.check is not None else None


def _positive(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _natural(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _pair(v: Any) -> bool:
    parts = v if isinstance(v, tuple) else (v,)
    return len(parts) in (1, 2) and all(_positive(x) for x in parts)


def _finite(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


#: for each kind of value argument: whether a value fits it, and what it expects
VALUE_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (_positive, "a positive integer"),
    "natural": (_natural, "an integer of 0 or more"),
    "pair": (_pair, "a positive integer n or a pair (h, w)"),
    "float": (_finite, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}


def show_value(v: Any) -> str:
    """A value as the text writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "(" + ", ".join(show_value(x) for x in v) + ")"
    return str(v)


@dataclass(frozen=True)
class Problem:
    """What an op's ``validate`` rule finds: the argument it is about (None: the whole
    call), a message and a hint."""

    arg: str | None
    message: str
    hint: str | None = None
    severity: str = "error"  # or "warning": legal, but likely not what was meant


@dataclass(frozen=True)
class DeeplabForm:
    """An op's place in the DeepLab reference's JSON cell format.

    ``to_json(attrs)`` gives the JSON item (without ``input``), or None where these
    attributes have no JSON form; ``from_json(item, options)`` gives the op's keyword
    arguments as ``.dpc`` text for a JSON item it stands for, or None for an item of
    another op, and raises :class:`OpError` for an item of its own that is malformed.
    ``options`` are the importer's: ``pooling`` ("reference" or "paper") and ``crop``
    ((h, w) or None).
    """

    op: str  # the reference's name for it: "conv", "pyramid_pooling"
    to_json: Callable[[Attrs], dict[str, Any] | None]
    from_json: Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]


def _same_as_first(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    return ins[0]


@dataclass(frozen=True)
class OpSpec:
    """One op, described once.

    - ``out(attrs, ins) -> Tensor``: the tensor the op makes (default: like its first
      input); sizes are None when unknown, and rules must accept that;
    - ``weights(attrs, ins, out) -> {name: Weight}``: canonical weights, names relative
      to the node (``conv.weight``);
    - ``madds(attrs, ins, out, weights) -> int``: multiply-adds, given known sizes;
    - ``computed_madds(attrs, ins, out, weights) -> int``: the multiply-adds the backends
      compute, where they skip work that cannot change the result (an atrous conv's
      taps that read only padding); by default ``madds``;
    - ``label(attrs) -> str``: a short label for pictures and tables;
    - ``at_output_stride(attrs, scale, output_stride) -> attrs``: the attributes at
      another output stride; ``scale(rate)`` is the rate scaled by 16 / output stride;
    - ``validate(values, size) -> [Problem]``: checks across arguments; ``values`` maps
      each given argument to every value it can take in a space;
    - ``at_size(attrs, ins) -> attrs``: the attributes of the same computation on inputs
      of these (known) sizes, in one canonical form (an atrous conv's rate at least the
      map's size reads only padding with its outer taps, so every such rate is one
      computation); architectures equal after it are one architecture at that size;
    - ``passthrough``: the input unchanged in shape (dropout, identity);
    - ``gathers``: joins its inputs along channels (concat);
    - ``projects(attrs)``: can be a cell's final projection (a 1x1 conv);
    - ``deeplab``: its DeepLab JSON form; ``color``: its fill in pictures;
    - ``example``: a call over the input ``x`` (and ``small``, a map half its size),
      used by the tests that run every op through every backend.
    """

    name: str
    min_inputs: int
    max_inputs: int | None  # None: any number
    args: tuple[Arg, ...] = ()
    doc: str = ""
    out: Callable[[Attrs, list[Tensor]], Tensor] = _same_as_first
    weights: Callable[[Attrs, list[Tensor], Tensor], dict[str, Weight]] | None = None
    madds: Callable[[Attrs, list[Tensor], Tensor, Mapping[str, Weight]], int] | None = None
    computed_madds: Callable[[Attrs, list[Tensor], Tensor, Mapping[str, Weight]], int] | None \
        = None
    label: Callable[[Attrs], str] | None = None
    at_output_stride: Callable[[Attrs, Callable[[int], int], int], dict[str, Any]] | None = None
    validate: Callable[[Mapping[str, list[Any]], Size | None], list[Problem]] | None = None
    at_size: Callable[[Attrs, list[Tensor]], dict[str, Any]] | None = None
    passthrough: bool = False
    gathers: bool = False
    projects: Callable[[Attrs], bool] | None = None
    deeplab: DeeplabForm | None = None
    color: str = "#ffffff"
    example: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"op name {self.name!r} is not an identifier")
        names = [a.name for a in self.args]
        if len(set(names)) != len(names):
            raise ValueError(f"op '{self.name}' declares an argument twice: {names}")

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    @property
    def tensor_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind == "tensor")

    @property
    def value_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind != "tensor")

    def describe(self, attrs: Attrs) -> str:
        return self.label(attrs) if self.label is not None else self.name


class Registry(dict[str, OpSpec]):
    """Op name -> :class:`OpSpec`. The words that op arguments accept (``paper``,
    ``reference``) follow the registered ops."""

    @property
    def words(self) -> frozenset[str]:
        return frozenset(w for s in self.values() for a in s.args for w in a.words)
