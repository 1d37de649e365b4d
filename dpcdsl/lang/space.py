"""Search spaces: exact counting, uniform sampling, encode/decode, mutation and
enumeration.

A *space* is a cell with choice points; a cell without any is a space of size one.
A *sample* is the mapping from choice path (``b2.op``, ``b2.rate.h``, ``b2.input``)
to the index chosen there. Only the choice points that the chosen options reach
appear in it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang._expand import Decider, Expander, Probe, Uniform, depth_first
from dpcdsl.lang._library import path as head_path
from dpcdsl.lang.checker import checked
from dpcdsl.lang.flat import float_text
from dpcdsl.lang.params import with_params
from dpcdsl.lang.printer import print_expr
from dpcdsl.lang.program import Program, load, load_text
from dpcdsl.limits import count_text

Decisions = dict[str, int]


class _Fixed(Decider):
    """Follows given decisions; a path it lacks goes to ``fallback`` or is an error."""

    def __init__(self, decisions: Mapping[str, int], fallback: Decider | None = None) -> None:
        self.decisions = decisions
        self.fallback = fallback
        self.used: set[str] = set()

    def choose(self, path: str, counts: list[int], probe: Probe) -> int:
        if path not in self.decisions:
            if self.fallback is not None:
                return self.fallback.choose(path, counts, probe)
            open_ = [i for i, c in enumerate(counts) if c]
            if len(open_) == 1:  # one option holds architectures here: no decision
                return open_[0]
            raise DpcError.at(None, f"no decision for the choice point '{path}'",
                              hint=f"give an index in 0..{len(counts) - 1}", code="DPC602")
        idx = self.decisions[path]
        self.used.add(path)
        if not isinstance(idx, int) or not 0 <= idx < len(counts) or counts[idx] == 0:
            raise DpcError.at(None, f"decision {path} = {idx!r} is out of range: this "
                              f"choice point has options 0..{len(counts) - 1}"
                              + (" (some are empty at this depth)" if 0 in counts else ""),
                              code="DPC602")
        return idx


class Space:
    """The choice points of one cell of a program."""

    def __init__(self, program: Program, cell: str | None = None) -> None:
        self.program = checked(program)
        self.cell_def = program.cell(cell)
        self._expander = Expander(self.program, self.cell_def)
        self._count: int | None = None

    @classmethod
    def from_file(cls, path: str | Path, cell: str | None = None) -> Space:
        return cls(load(path), cell)

    @classmethod
    def from_text(cls, text: str, cell: str | None = None, file: str = "<string>") -> Space:
        return cls(load_text(text, file), cell)

    @property
    def name(self) -> str:
        return self.cell_def.name

    def count(self) -> int:
        """The exact number of architectures (decision vectors) in the space."""
        if self._count is None:
            self._count = self._expander.count()
        return self._count

    def __len__(self) -> int:  # pragma: no cover - may overflow; use count()
        return self.count()

    @property
    def is_concrete(self) -> bool:
        return self.count() == 1

    def concrete(self) -> ir.Cell:
        """The one cell of a space without choices."""
        n = self.count()
        if n != 1:
            raise DpcError.at(self.cell_def.span,
                              f"cell '{self.name}' is a search space of "
                              f"{count_text(n, exact=False)} architectures, "
                              "not one architecture",
                              hint="sample it first: `dpcc sample FILE`",
                              sources=self.program.sources, code="DPC602")
        return self._expander.run(_Fixed({}))[0]

    def sample(self, seed: int | random.Random | None = None) -> tuple[ir.Cell, Decisions]:
        """One architecture, every architecture equally likely, and its decisions."""
        if self.count() == 0:
            raise DpcError.at(self.cell_def.span, f"the space of '{self.name}' is empty",
                              sources=self.program.sources, code="DPC602")
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self._expander.run(Uniform(rng))  # a fresh decisions dict per run

    def decide(self, choose: Callable[..., int], labelled: bool = False
               ) -> tuple[ir.Cell, Decisions]:
        """The cell that ``choose(path, option_sizes) -> index`` picks at each choice
        point, in walk order; a search strategy answers through it. With ``labelled``,
        ``choose`` also gets the options' :func:`option_labels`
        (``choose(path, option_sizes, labels)``)."""

        class _Callback(Decider):
            wants_options = labelled
            labels: list[str] = []

            def options(self, path: str, options: Sequence[Any]) -> None:
                self.labels = option_labels(options)

            def choose(self, path: str, counts: list[int], probe: Probe) -> int:
                return choose(path, counts, self.labels) if labelled else choose(path, counts)

        return self._expander.run(_Callback())

    def decode(self, decisions: Mapping[str, int]) -> ir.Cell:
        """The cell that ``decisions`` pick; unknown paths are an error."""
        d = _Fixed(decisions)
        cell, made = self._expander.run(d)
        extra = set(decisions) - set(made)
        if extra:
            bad = sorted(extra)[0]
            raise DpcError.at(None, f"unknown choice point '{bad}' for this cell."
                              f"{did_you_mean(bad, made)}".rstrip("."),
                              hint="paths here: " + ", ".join(made) if made else None,
                              code="DPC602")
        return cell

    def encode(self, cell: ir.Cell) -> Decisions:
        """The decisions that give ``cell``; ``decode(encode(c)) == c``."""
        for _, decisions in depth_first(self._expander, cell):
            return decisions
        raise DpcError.at(cell.span, f"cell '{cell.name}' is not in the space of "
                          f"'{self.name}'", code="DPC602")

    def contains(self, cell: ir.Cell) -> bool:
        try:
            self.encode(cell)
        except DpcError:
            return False
        return True

    def mutate(self, decisions: Mapping[str, int],
               seed: int | random.Random | None = None) -> tuple[ir.Cell, Decisions]:
        """Change one decision to another of its options. Choice points that the new
        option opens are drawn uniformly; the rest stay as they were."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        sizes = self.option_counts(decisions)
        movable = [p for p, counts in sizes.items() if sum(1 for c in counts if c) > 1]
        if not movable:
            raise DpcError.at(self.cell_def.span,
                              f"'{self.name}' has no choice point to mutate", code="DPC602")
        path = rng.choice(sorted(movable))
        counts = sizes[path]
        new = rng.choice([i for i, c in enumerate(counts) if c and i != decisions[path]])
        changed = {**decisions, path: new}
        cell, made = self._expander.run(_Fixed(changed, fallback=Uniform(rng)))
        return cell, dict(made)

    def option_counts(self, decisions: Mapping[str, int]) -> dict[str, list[int]]:
        """For each choice point the decisions reach: the size of each option."""

        class _Spy(_Fixed):
            seen: dict[str, list[int]] = {}

            def choose(self, path: str, counts: list[int], probe: Probe) -> int:
                self.seen[path] = list(counts)
                return super().choose(path, counts, probe)

        spy = _Spy(decisions)
        spy.seen = {}
        self._expander.run(spy)
        return spy.seen

    def enumerate(self, limit: int = 100_000) -> Iterator[ir.Cell]:
        """Every architecture, in a fixed order. Refuses spaces above ``limit``."""
        n = self.count()
        if n > limit:
            raise DpcError.at(self.cell_def.span, f"the space has {count_text(n, exact=False)} "
                              "architectures, more "
                              f"than the enumeration limit {limit}",
                              hint="sample it instead, or raise the limit", code="DPC602")
        for cell, _ in depth_first(self._expander, None):
            yield cell


def option_labels(options: Sequence[Any]) -> list[str]:
    """Readable, distinct names for the options of one choice point: a value as it is
    written (``6``, ``0.1``, ``paper``), a tensor by its name (``x``, ``b0``), an op
    as its call without the tensors it is applied to (``sepconv(kernel = 3, rate =
    (rates, rates))``). Search parameters carry these, so that Optuna's plots and
    dashboard read as the space does."""
    labels = [_label(o) for o in options]
    if len(set(labels)) < len(labels):  # the same text twice: keep them apart
        labels = [f"{label} #{i}" for i, label in enumerate(labels)]
    return labels


def option_values(labels: list[str]) -> list[int] | list[float] | None:
    """The numbers of a choice among numbers (its options' labels, as
    :func:`option_labels` writes them, read back), or None for any other choice."""
    try:
        return [int(label) for label in labels]
    except ValueError:
        pass
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _label(o: Any) -> str:
    if isinstance(o, bool):
        return "true" if o else "false"
    if isinstance(o, float):
        return float_text(o)
    if isinstance(o, tuple):
        return "(" + ", ".join(_label(i) for i in o) + ")"
    if isinstance(o, ir.Call) and o.args and all(isinstance(a, ir.Name) for a in o.args):
        o = ir.Call(func=o.func, args=(), kwargs=o.kwargs, span=o.span)
    if isinstance(o, ir.Name | ir.Call | ir.OneOf):
        return print_expr(o)
    return str(o)


def count(source: str | Path | Program, cell: str | None = None) -> int:
    """Shorthand: the size of a cell's space, from a path, a program or ``.dpc`` text."""
    return as_space(source, cell).count()


def as_space(source: Any, cell: str | None, params: Mapping[str, Any] | None = None,
             what: str | None = None) -> Space:
    """A space from a program, a ``.dpc`` path, ``.dpc`` text, or the name of a head of
    the library (``"lraspp"``: :mod:`dpcdsl.lang.heads`); ``params`` set the cell's
    parameters (:func:`dpcdsl.lang.params.with_params`; ``what`` names the cell in its
    errors)."""
    if isinstance(source, Program):
        program = source
    elif isinstance(source, str) and source.isidentifier():  # no .dpc text is one word
        program = load(head_path(source))
    elif isinstance(source, Path) or (isinstance(source, str) and source.endswith(".dpc")
                                      and "\n" not in source):
        program = load(source)
    else:
        program = load_text(source)
    if params:
        program = with_params(program, cell, params, what)
    return Space(program, cell)


__all__ = ["Decisions", "Space", "as_space", "count", "option_labels", "option_values"]
