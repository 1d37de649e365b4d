"""A program: a parsed file plus everything it imports, as one namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dpcdsl import ir
from dpcdsl.errors import Diagnostic, DpcError
from dpcdsl.syntax import parse


@dataclass
class Program:
    """Cells and top-level lets visible from the main file, and every source text
    (for carets). ``diagnostics`` holds import problems found while loading."""

    module: ir.Module
    file: str
    cells: dict[str, ir.CellDef] = field(default_factory=dict)
    lets: dict[str, ir.Let] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def cell(self, name: str | None = None) -> ir.CellDef:
        """The named cell, or the last cell defined in the main file."""
        from dpcdsl.errors import did_you_mean

        if name is None:
            own = list(self.module.cells.values())
            if not own:
                raise DpcError.at(ir.Span(file=self.file, line=1, column=1),
                                  "this file defines no cell", sources=self.sources)
            return own[-1]
        if name not in self.cells:
            raise DpcError.at(
                ir.Span(file=self.file, line=1, column=1),
                f"no cell named '{name}' in {self.file}.{did_you_mean(name, self.cells)}",
                hint="cells here: " + ", ".join(self.cells) if self.cells else None,
                sources=self.sources)
        return self.cells[name]


def load_text(text: str, file: str = "<string>", base: Path | None = None) -> Program:
    """Parse ``text`` and resolve its imports relative to ``base`` (default: cwd)."""
    module = parse(text, file)
    prog = Program(module=module, file=file, sources={file: text})
    _resolve(prog, module, base or Path.cwd(), stack=[_key(file, base)], seen=set())
    _define(prog, module)
    return prog


def load(path: str | Path) -> Program:
    """Parse the file at ``path`` with its imports."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise DpcError.at(ir.Span(file=str(path), line=0, column=0),
                          f"cannot read {path}: {e.strerror or e}") from None
    return load_text(text, str(path), p.resolve().parent)


def _key(file: str, base: Path | None) -> str:
    p = Path(file)
    return str(p.resolve()) if p.exists() else file


def _resolve(prog: Program, module: ir.Module, base: Path, stack: list[str],
             seen: set[str]) -> None:
    for item in module.items:
        if not isinstance(item, ir.Import):
            continue
        target = (base / item.path).resolve()
        key = str(target)
        if key in stack:
            chain = " -> ".join(Path(s).name for s in stack[stack.index(key):])
            prog.diagnostics.append(Diagnostic(code="DPC110", 
                span=item.span or ir.Span(), message=f"cyclic import: {chain} -> {target.name}",
                hint="move the shared cells into a third file that both import"))
            continue
        if key in seen:
            continue
        if not target.is_file():
            prog.diagnostics.append(Diagnostic(code="DPC110", 
                span=item.span or ir.Span(),
                message=f"cannot import \"{item.path}\": no such file {target}",
                hint="import paths are relative to the importing file"))
            continue
        seen.add(key)
        text = target.read_text()
        name = str(target)
        prog.sources[name] = text
        try:
            sub = parse(text, name)
        except DpcError as e:
            prog.diagnostics.extend(e.diagnostics)
            continue
        _resolve(prog, sub, target.parent, [*stack, key], seen)
        _define(prog, sub)


def _define(prog: Program, module: ir.Module) -> None:
    for item in module.items:
        if isinstance(item, ir.CellDef | ir.Let):
            table: dict = prog.cells if isinstance(item, ir.CellDef) else prog.lets
            if item.name in prog.cells or item.name in prog.lets:
                other = prog.cells.get(item.name) or prog.lets.get(item.name)
                where = other.span if other is not None and other.span else None
                prog.diagnostics.append(Diagnostic(code="DPC110", 
                    span=item.span or ir.Span(),
                    message=f"'{item.name}' is defined twice"
                            + (f" (first at {where})" if where else "")))
                continue
            table[item.name] = item
