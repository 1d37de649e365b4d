"""Spans and diagnostics: ``file:line:col: error: message`` plus the source line and a
caret. Every other module may import this one; it imports none of the project's."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, field_validator


class Span(BaseModel):
    """Where a node came from: 1-based line and column, end exclusive."""

    model_config = ConfigDict(frozen=True)

    file: str = "<string>"
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


#: every diagnostic code, with what it means; editors and tests match these, not the
#: message text. A code keeps its meaning once published; new problems get new codes.
#: The hundreds say the phase that finds the problem (:data:`PHASES`).
CODES: dict[str, str] = {
    "DPC100": "syntax error",
    "DPC110": "an import cannot be read, or imports itself",
    "DPC120": "a file that is not UTF-8 text, or cannot be read",
    "DPC150": "over a limit on the size of the work (dpcdsl.limits)",
    "DPC201": "undefined name",
    "DPC202": "a name used before it is defined",
    "DPC203": "a name defined twice",
    "DPC204": "a built-in name (an op or a word) redefined",
    "DPC205": "a cell named where a tensor is needed",
    "DPC206": "no cell, head or file of that name",
    "DPC211": "a value where a tensor is needed",
    "DPC212": "a repeat of several branches where one tensor is needed",
    "DPC213": "a tensor where a value is needed",
    "DPC214": "`earlier` outside one_of(...) in a repeat",
    "DPC301": "unknown op or cell",
    "DPC302": "unknown argument",
    "DPC303": "an argument given twice",
    "DPC304": "a required argument missing",
    "DPC305": "the wrong number of tensor inputs",
    "DPC306": "a malformed one_of(...)",
    "DPC307": "a choice among names whose result an architecture may not read",
    "DPC401": "a value of the wrong kind or range for its argument",
    "DPC402": "a malformed set of choices",
    "DPC403": "arguments an op refuses together (its own checks)",
    "DPC501": "a cell's inputs and parameters",
    "DPC502": "a misplaced or missing `return`",
    "DPC503": "a malformed repeat",
    "DPC504": "recursion without a bound or a base case",
    "DPC505": "a malformed loop",
    "DPC601": "inputs an op cannot take: channels or sizes that do not fit",
    "DPC602": "a space where an architecture is needed, or a decision out of range",
    "DPC603": "an output stride a cell's rates cannot take",
    "DPC604": "the channels of a cell's inputs missing",
    "DPC605": "one size given for inputs that declare several strides",
    "DPC606": "a space whose supernet would hold more shared weights than the limit",
    "DPC701": "a task file",
    "DPC702": "a DeepLab JSON cell",
    "DPC703": "a weight file or checkpoint",
    "DPC704": "a dataset: missing, empty, or not what the task says",
    "DPC705": "a feature cache that is damaged or was built for another task",
    "DPC706": "a backbone: unknown, at a stride it lacks, or weights it cannot fetch",
    "DPC707": "a device the task names that this machine lacks",
    "DPC801": "a search option or setting: an unknown name or a value out of range",
    "DPC802": "a run folder or storage: in use, holding a search already, holding none, "
              "or damaged",
    "DPC803": "a search that cannot go on: changed on resume, nothing within its budget, "
              "nothing to re-rank",
    "DPC804": "cells trained together that read different inputs",
    "DPC805": "a training whose loss became NaN or infinite",
    "DPC901": "a backend: unknown, not loadable, or lacking a capability or a lowering",
    "DPC902": "a program or package that is not installed (graphviz, Ray, PostgreSQL)",
    "DPC903": "an output file of a kind that cannot be written",
    "DPC905": "the formatter would change a file's meaning (a bug to report)",
    "DPC906": "an op plugin: not loadable, or defining an op that exists or no op",
    "DPC907": "an export: a format or runtime no installed backend has, a cell an exporter "
              "cannot take, or an exported file that differs from its module",
}

#: the phase each hundred of :data:`CODES` belongs to
PHASES: dict[int, str] = {
    1: "syntax: reading and parsing source files",
    2: "names: scopes and what a name refers to",
    3: "calls: ops, cells and their arguments",
    4: "values: the values of arguments and choices",
    5: "structure: cells, returns, repeats and recursion",
    6: "shapes: channels, sizes, strides and decisions",
    7: "data and interop: tasks, datasets, caches, backbones, weights, DeepLab JSON",
    8: "search and training: options, run folders, storage, budgets, divergence",
    9: "environment: backends, programs and output files",
}


def source_lines(text: str) -> list[str]:
    """The lines of a source text as the parser numbers them: split at ``\\n`` alone
    (a ``\\r`` before it dropped), so line N of a diagnostic is element N - 1 here,
    whatever other line separators (form feed, ``\\u2028``...) the text holds."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def display_line(line: str) -> str:
    """A source line as it is echoed under a diagnostic: one character per column, so
    the caret lines up: a tab is one space, any other unprintable character is shown
    as U+FFFD."""
    return "".join(" " if c == "\t" else c if c.isprintable() else "\ufffd" for c in line)


#: the most characters of a source line a diagnostic echoes
SHOWN_LINE = 120


def shown_window(line: str, column: int, width: int) -> tuple[str, int, int]:
    """The part of a long line a diagnostic echoes, around its column (``...`` where
    it is cut), with the column and caret width in that part: a diagnostic on a line
    of a megabyte stays a few lines long."""
    if len(line) <= SHOWN_LINE:
        return line, column, width
    start = max(0, min(column - 1 - SHOWN_LINE // 3, len(line) - SHOWN_LINE))
    end = start + SHOWN_LINE
    head, tail = ("..." if start else ""), ("..." if end < len(line) else "")
    column = column - start + len(head)
    width = max(1, min(width, len(head) + SHOWN_LINE - column + 1))
    return head + line[start:end] + tail, column, width


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True)

    span: Span
    message: str
    hint: str | None = None
    code: str  # one of CODES
    severity: str = "error"

    @field_validator("code")
    @classmethod
    def _known(cls, code: str) -> str:
        if code not in CODES:
            raise ValueError(f"unknown diagnostic code {code!r}; add it to dpcdsl.errors.CODES")
        return code

    def render(self, sources: Mapping[str, str] | None = None) -> str:
        s = self.span
        where = f"{s.file}:{s.line}:{s.column}: " if s.line > 0 else \
            f"{s.file}: " if s.file else ""
        out = [f"{where}{self.severity}: {self.message} [{self.code}]"]
        text = (sources or {}).get(s.file)
        if text is not None and s.line >= 1:
            lines = source_lines(text)
            if s.line <= len(lines):
                line = display_line(lines[s.line - 1])
                column = min(max(s.column, 1), len(line) + 1)
                width = 1
                if s.end_line == s.line and s.end_column > column:
                    width = min(s.end_column, len(line) + 1) - column or 1
                line, column, width = shown_window(line, column, width)
                out.append(f"  {line}")
                out.append("  " + " " * (column - 1) + "^" * width)
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def as_json(self) -> dict[str, object]:
        s = self.span
        return {
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


class DpcError(Exception):
    """The one error type the project raises for bad input. It carries every
    diagnostic found, and the source texts needed to draw their carets."""

    def __init__(
        self,
        diagnostics: Iterable[Diagnostic],
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    @classmethod
    def at(cls, span: Span | None, message: str, hint: str | None = None,
           sources: Mapping[str, str] | None = None, *, code: str) -> DpcError:
        return cls([Diagnostic(span=span or Span(file=""), message=message, hint=hint,
                               code=code)], sources)


class ExportFailure(Exception):
    """A backend's exporter could not take a module. ``node`` is the node of the cell
    whose line of the emitted forward it was tracing (None where that is not known);
    ``reason`` is the exporter's own, in a line. The core names the node's op."""

    def __init__(self, reason: str, node: str | None = None) -> None:
        self.reason, self.node = reason, node
        super().__init__(reason if node is None else f"node '{node}': {reason}")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` or the empty string."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
