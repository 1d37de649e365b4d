"""Semantic checks. :func:`check` runs the passes of :data:`PASSES` over a whole
program and returns *every* problem as a :class:`~dpcdsl.errors.Diagnostic`; it never
stops at the first.

Each pass is a small strict visitor over the surface IR (:class:`._base.Pass` walks the
program and keeps the scope; a pass overrides the nodes it checks):

=============  ================================================================
``names``      what each name is and where it is defined; cell signatures, returns
               and repeats
``values``     values: sets, argument kinds, op rules, values passed to cells
``calls``      tensors: ops and cells called, their inputs and arguments, choices
``recursion``  depth bounds, base cases, cycles of calls, nesting
``shapes``     on a text with no other problem: the tensors of its architectures
=============  ================================================================
"""

from __future__ import annotations

from pathlib import Path

from dpcdsl import limits
from dpcdsl.errors import Diagnostic, DpcError
from dpcdsl.lang.checker._base import Pass
from dpcdsl.lang.checker._sizes import ImageSize, PerInput, SizeSpec
from dpcdsl.lang.checker.calls import Calls
from dpcdsl.lang.checker.names import Names
from dpcdsl.lang.checker.recursion import Recursion
from dpcdsl.lang.checker.shapes import Shapes
from dpcdsl.lang.checker.values import Values
from dpcdsl.lang.program import Program, load, load_text

#: the passes, in the order they run
PASSES: tuple[type[Pass], ...] = (Names, Values, Calls, Recursion, Shapes)


def run(program: Program, size: SizeSpec = None) -> list[Diagnostic]:
    """Every pass over ``program``: its diagnostics, sorted by file and position."""
    found: list[Diagnostic] = list(program.diagnostics)
    with limits.stack_guard(program.module.span, f"{program.file}", program.sources):
        for cls in PASSES:
            if cls.needs_clean and found:
                continue
            found += cls(program, size).run()
    return sorted(set(found), key=lambda d: (d.span.file != program.file, d.span.file,
                                             d.span.line, d.span.column, d.message,
                                             d.code, d.hint or ""))


def check(program: Program, size: SizeSpec = None) -> list[Diagnostic]:
    """Every problem in ``program``, sorted by file and position (worked out once per
    program and size). ``size`` is one feature size (H, W) for every input, a
    :class:`PerInput` size per input, or the :class:`ImageSize`, from which each input's
    follows from its declared stride."""
    found = program.checks.get(size)
    if found is None:
        found = program.checks[size] = run(program, size)
    return list(found)


class Diagnostics(list[Diagnostic]):
    """The diagnostics of a file, with the source texts their carets need and the
    program they came from (None when the file did not parse)."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str],
                 program: Program | None) -> None:
        super().__init__(diagnostics)
        self.sources = sources
        self.program = program


def check_file(path: str | Path, size: SizeSpec = None) -> Diagnostics:
    """Parse and check a file; syntax errors come back as diagnostics too. The result
    carries the sources (for carets) and the parsed program."""
    try:
        program = load(path)
    except DpcError as e:
        return Diagnostics(e.diagnostics, e.sources, None)
    return Diagnostics(check(program, size), program.sources, program)


def errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The errors among ``diagnostics`` (not the warnings)."""
    return [d for d in diagnostics if d.severity == "error"]


def checked(program: Program) -> Program:
    """``program``, or a :class:`DpcError` carrying every error in it (warnings do not
    stop it)."""
    diags = errors(check(program))
    if diags:
        raise DpcError(diags, program.sources)
    return program


__all__ = ["PASSES", "Diagnostics", "ImageSize", "PerInput", "SizeSpec", "check", "check_file",
           "checked", "errors", "load", "load_text", "run"]
