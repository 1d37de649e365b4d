"""The shapes pass: on a text with no other problem, the architectures of each cell of
the file are built and their tensors inferred (the op registry's ``out`` rules), so a
sum of unequal widths, or with a size a pool grid larger than the map, is found here
and not at compile time. A space is sampled; a cell of one architecture is built."""

from __future__ import annotations

import random
from typing import Any

from dpcdsl import limits
from dpcdsl.errors import Diagnostic, DpcError
from dpcdsl.lang import ir
from dpcdsl.lang._expand import Decider, Expander, Uniform, depth_first
from dpcdsl.lang.analysis import infer
from dpcdsl.lang.checker._base import Pass, Scope, calls_closure
from dpcdsl.lang.checker._sizes import Size, for_cell, mixed_strides

#: how many architectures of a space check infers the shapes of (all, in a smaller one),
#: and the work (options weighed and nodes built) after which it stops at 8 or more, so
#: that a space of large architectures costs check no more than a small one
SHAPE_SAMPLES = 64
SHAPE_WORK = 10_000


class Shapes(Pass):
    needs_clean = True

    def visit_Module(self, module: ir.Module, top: Scope) -> None:
        """Works on the architectures of the cells, not on their text."""
        for cell, expander, n, inlined in self.roots():
            if inlined and any(d.severity == "error" for d in self.diags):
                continue  # what fails in its caller is said there
            before = len(self.diags)
            try:  # a limit may stop the build of an architecture
                (self.shapes if n == 1 else self.sampled_shapes)(expander, n)
            except DpcError as e:
                self.diags.extend(e.diagnostics)
            if inlined:  # its callers check it where they use it: alone, a warning
                self.diags[before:] = [_alone(cell, d) for d in self.diags[before:]]

    def roots(self) -> list[tuple[ir.CellDef, Expander, int, bool]]:
        """The cells of the main file whose shapes are inferred, with their expander,
        count, and whether another cell of the file inlines them (its problems are
        errors where it is used; alone, as ``dpcc sample --cell`` draws it, they are
        warnings)."""
        cells = self.p.own_cells()
        inlined = {c.func for cell in cells for c in calls_closure(cell, self.p)
                   if c.func != cell.name}  # a recursive cell still stands for itself
        out = []
        for cell in cells:
            expander = Expander(self.p, cell)
            try:
                n = expander.count()
            except DpcError as e:
                if cell.name not in inlined:
                    self.diags.extend(e.diagnostics)
                continue
            if n:
                out.append((cell, expander, n, cell.name in inlined))
        return sorted(out, key=lambda r: r[3])  # the cells that stand alone first

    def shapes(self, expander: Expander, n: int = 1) -> None:
        """A cell that is one architecture is built and its tensors inferred. Input
        channels are unknown, so inference runs with two different guesses; only what
        fails the same way with both fails whatever the inputs are."""
        flat = expander.run(_OnlyOption())[0]
        problem = _fails_whatever_the_inputs(flat, self.sizes(flat))
        if problem is not None:
            self.diags.append(problem)

    def sampled_shapes(self, expander: Expander, n: int) -> None:
        """A space may hold architectures whose channels or sizes do not fit (a sum of
        branches of different widths): each one found in :data:`SHAPE_SAMPLES` uniform
        samples (or among all of a smaller space) is a warning at the node, with how many
        of them fail there. A search would record each such trial as failed."""
        flats = self.architectures(expander, n)
        over = [f for f in flats if isinstance(f, Diagnostic)]
        if len(over) == len(flats):  # every one is over a limit: an error
            self.diags.append(over[0])
            return
        found: dict[tuple[Any, str], list[Any]] = {}
        failed = 0
        for flat in flats:
            problem = flat if isinstance(flat, Diagnostic) else \
                _fails_whatever_the_inputs(flat, self.sizes(flat))
            if problem is not None:
                failed += 1
                found.setdefault((problem.span, problem.code), [problem, 0])[1] += 1
        if flats and failed == len(flats):  # nothing of it can be built: an error
            problem = max(found.values(), key=lambda f: f[1])[0]
            every = f"all {n} architectures" if n <= SHAPE_SAMPLES else \
                f"all {len(flats)} sampled architectures"
            self.diags.append(Diagnostic(
                span=problem.span, code=problem.code,
                message=f"{every} of this space fail, e.g. here: {problem.message}",
                hint=problem.hint or "give the options the same widths, or project them "
                "first"))
            return
        for problem, hits in sorted(found.values(), key=lambda f: -f[1])[:3]:
            share = f"{hits} of its {n} architectures" if n <= SHAPE_SAMPLES else \
                f"{hits} of {len(flats)} sampled architectures (about {100 * hits // len(flats)}%)"
            self.diags.append(Diagnostic(
                span=problem.span, severity="warning", code=problem.code,
                message=f"{share} fail here, e.g. {problem.message}",
                hint=problem.hint or "a search records such trials as failed; give the "
                "options the same widths, or project them first"))

    def sizes(self, flat: ir.Cell) -> Size | dict[str, Size] | None:
        """The input sizes an architecture is inferred at. One size given for inputs
        that declare several strides fits none of them: an error, once per cell, and
        the shapes are inferred without sizes."""
        mixed = mixed_strides(self.size, flat)
        if not mixed:
            return for_cell(self.size, flat)
        span = flat.span or ir.Span(file=self.p.file)
        if not any(d.code == "DPC605" and d.span == span for d in self.diags):
            self.diags.append(Diagnostic(
                span=span, code="DPC605",
                message=f"the inputs of '{flat.name}' read strides "
                        f"{', '.join(map(str, mixed))}; one size cannot be each input's",
                hint="give the image's size (dpcc check --image 512x512), from which each "
                     "input's follows, or each input's (--size NAME=HxW)"))
        return None

    @staticmethod
    def architectures(expander: Expander, n: int) -> list[ir.Cell | Diagnostic]:
        """Every architecture of a small space; :data:`SHAPE_SAMPLES` uniform samples of
        a larger one, fewer when each is a lot of work (:data:`SHAPE_WORK`). A sample
        over a limit (too many nodes) is its diagnostic."""
        if n <= SHAPE_SAMPLES:
            return [c for c, _ in depth_first(expander, None)]
        metered = _Metered(Uniform(random.Random(0)))
        flats: list[ir.Cell | Diagnostic] = []
        drawn, over_limit = 0, 0
        # a sample over the node limit costs the most of all: after two of them, the
        # work is spent
        while drawn < SHAPE_SAMPLES and (metered.work < SHAPE_WORK
                                         or (drawn < 8 and over_limit < 2)):
            drawn += 1
            try:
                flats.append(expander.run(metered)[0])
            except DpcError as e:  # over a limit (too many nodes): this sample only
                flats.append(e.diagnostics[0])
                metered.work += limits.MAX_NODES
                over_limit += 1
                continue
            metered.work += len(expander.nodes)
        return flats


class _OnlyOption(Decider):
    """The decider of a space of one architecture: the one option with a sub-space."""

    def choose(self, path: str, counts: list[int], probe: Any) -> int:
        return next(i for i, c in enumerate(counts) if c)


class _Metered(Decider):
    """A decider that adds up the options it weighs."""

    def __init__(self, inner: Decider) -> None:
        self.inner, self.work = inner, 0

    def choose(self, path: str, counts: list[int], probe: Any) -> int:
        self.work += len(counts)
        return self.inner.choose(path, counts, probe)


def _alone(cell: ir.CellDef, d: Diagnostic) -> Diagnostic:
    """A problem of a cell that another cell inlines, as it shows when the cell is
    drawn or compiled alone: a warning."""
    if d.severity == "warning":
        return d
    return Diagnostic(span=d.span, severity="warning", code=d.code, hint=d.hint,
                      message=f"alone, cell '{cell.name}' fails here: {d.message} "
                              "(its callers are checked where they call it)")


def _fails_whatever_the_inputs(flat: ir.Cell, size: Size | dict[str, Size] | None
                               ) -> Diagnostic | None:
    """The shape problem of an architecture that no input channels avoid: inference
    runs with two different guesses, and only what fails the same way with both is
    reported."""
    failures: list[Diagnostic] = []
    for guess in (1009, 1013):
        channels = {name: guess + k for k, name in enumerate(flat.inputs)}
        try:
            infer(flat, channels, size)
        except DpcError as e:
            failures.append(e.diagnostics[0])
    if len(failures) == 2 and failures[0].message == failures[1].message:
        first = failures[0]
        return Diagnostic(span=first.span, message=first.message, hint=first.hint,
                          code=first.code)
    return None


__all__ = ["SHAPE_SAMPLES", "SHAPE_WORK", "Shapes"]
