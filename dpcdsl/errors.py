"""Diagnostics: ``file:line:col: error: message`` plus the source line and a caret."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from dpcdsl.ir import Span


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True)

    span: Span
    message: str
    hint: str | None = None
    severity: str = "error"

    def render(self, sources: Mapping[str, str] | None = None) -> str:
        s = self.span
        where = f"{s.file}:{s.line}:{s.column}: " if s.line > 0 else \
            f"{s.file}: " if s.file else ""
        out = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(s.file)
        if text is not None and s.line >= 1:
            lines = text.splitlines()
            if s.line <= len(lines):
                line = lines[s.line - 1].expandtabs(1)
                width = 1
                if s.end_line == s.line and s.end_column > s.column:
                    width = s.end_column - s.column
                out.append(f"  {line}")
                out.append("  " + " " * max(s.column - 1, 0) + "^" * width)
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
           sources: Mapping[str, str] | None = None) -> DpcError:
        return cls([Diagnostic(span=span or Span(file=""), message=message, hint=hint)],
                   sources)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` or the empty string."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
