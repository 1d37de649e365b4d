"""A program: a parsed file plus everything it imports, as one namespace."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpcdsl import limits
from dpcdsl._files import SOURCE_SUFFIX, read_source, read_text
from dpcdsl.errors import Diagnostic, DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.syntax import parse
from dpcdsl.ops import load_plugins

#: the environment variable that lists more folders to import from (``os.pathsep``
#: between them), searched after the importing file's own folder
SEARCH_PATH_VARIABLE = "DPCDSL_PATH"

IMPORT_HINT = ('import paths are relative to the importing file, then to each folder of '
               f'the search path (${SEARCH_PATH_VARIABLE}, or search_path= in the API)')


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
    # what check() found, by feature size: a program is checked once however many
    # steps (check, then a Space of it) ask
    checks: dict[Any, list[Diagnostic]] = field(default_factory=dict, repr=False,
                                                compare=False)

    def own_cells(self) -> list[ir.CellDef]:
        """The cells the main file defines, in order; a cell whose name an earlier
        ``let`` or cell already took (an error) is not one of them."""
        return [c for c in self.module.cells.values() if self.cells.get(c.name) is c]

    def cell(self, name: str | None = None) -> ir.CellDef:
        """The named cell, or the last cell defined in the main file."""
        from dpcdsl.errors import did_you_mean

        if name is None:
            own = self.own_cells()
            if not own:
                raise DpcError.at(ir.Span(file=self.file, line=1, column=1),
                                  "this file defines no cell", sources=self.sources, code="DPC206")
            return own[-1]
        if name not in self.cells:
            raise DpcError.at(
                ir.Span(file=self.file, line=1, column=1),
                f"no cell named '{name}' in {self.file}.{did_you_mean(name, self.cells)}",
                hint="cells here: " + ", ".join(self.cells) if self.cells else None,
                sources=self.sources, code="DPC206")
        return self.cells[name]


def load_text(text: str, file: str = "<string>", base: Path | None = None,
              search_path: Sequence[str | Path] | None = None) -> Program:
    """Parse ``text`` and resolve its imports relative to ``base`` (default: cwd), then
    to the folders of ``search_path`` (default: ``$DPCDSL_PATH``). The installed op
    plugins are loaded first: a program may use their ops."""
    load_plugins()
    module = parse(text, file)
    prog = Program(module=module, file=file, sources={file: text})
    folders = _search_path(search_path)
    _resolve(prog, module, base or Path.cwd(), folders, stack=[_key(file)], seen=set())
    _define(prog, module)
    return prog


def load(path: str | Path, search_path: Sequence[str | Path] | None = None) -> Program:
    """Parse the file at ``path`` with its imports."""
    text = read_source(path, "source file")
    return load_text(text, str(path), Path(path).resolve().parent, search_path)


def _search_path(search_path: Sequence[str | Path] | None) -> list[Path]:
    if search_path is None:
        search_path = [p for p in os.environ.get(SEARCH_PATH_VARIABLE, "").split(os.pathsep)
                       if p]
    return [Path(p) for p in search_path]


def _key(file: str) -> str:
    try:
        p = Path(file)
        return str(p.resolve()) if p.exists() else file
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return file


def _find(path: str, base: Path, folders: list[Path]) -> tuple[Path | None, str | None]:
    """The file an import names, or why there is none. Only ``.dpc`` files are read: the
    path is resolved through its links first, and the file it reaches must be a regular
    ``.dpc`` file too."""
    if "\0" in path or len(path) > limits.MAX_IMPORT_PATH:
        return None, ("the path holds a NUL character" if "\0" in path else
                      f"the path is longer than {limits.MAX_IMPORT_PATH} characters")
    if Path(path).suffix != SOURCE_SUFFIX:
        return None, f"only {SOURCE_SUFFIX} files can be imported"
    for folder in [base, *folders]:
        try:
            target = (folder / path).resolve()
            if not target.exists():
                continue
        except RuntimeError:  # Python 3.11's resolve() on a symlink loop
            return None, "the path is a loop of symbolic links"
        except (OSError, ValueError) as e:
            if getattr(e, "errno", None) == 40:  # ELOOP, from resolve() on Python 3.13+
                return None, "the path is a loop of symbolic links"
            return None, getattr(e, "strerror", None) or str(e)
        if target.suffix != SOURCE_SUFFIX:
            return None, (f"it links to a file named '{target.name}', and only "
                          f"{SOURCE_SUFFIX} files can be imported")
        return target, None
    return None, "no such file"


def _resolve(prog: Program, module: ir.Module, base: Path, folders: list[Path],
             stack: list[str], seen: set[str]) -> None:
    for item in module.items:
        if not isinstance(item, ir.Import):
            continue
        span = item.span or ir.Span()
        target, problem = _find(item.path, base, folders)
        if target is None:
            shown = item.path if len(item.path) <= 60 else item.path[:57] + "..."
            prog.diagnostics.append(Diagnostic(
                code="DPC110", span=span, message=f"cannot import \"{shown}\": {problem}",
                hint=IMPORT_HINT if problem == "no such file" else None))
            continue
        key = str(target)
        if key in stack:
            chain = " -> ".join(Path(s).name for s in stack[stack.index(key):])
            prog.diagnostics.append(Diagnostic(
                code="DPC110", span=span, message=f"cyclic import: {chain} -> {target.name}",
                hint="move the shared cells into a third file that both import"))
            continue
        if key in seen:
            continue
        seen.add(key)
        try:
            text = read_text(target, "imported file")
        except DpcError as e:  # unreadable or not text: said at the import, never echoed
            reason = e.diagnostics[0]
            where = f" (line {reason.span.line}, column {reason.span.column})" \
                if reason.span.line else ""
            prog.diagnostics.append(Diagnostic(
                code="DPC110", span=span, hint=reason.hint,
                message=f"cannot import \"{item.path}\": {reason.message}{where}"))
            continue
        name = str(target)
        prog.sources[name] = text
        try:
            sub = parse(text, name)
        except DpcError as e:
            prog.diagnostics.extend(e.diagnostics)
            continue
        _resolve(prog, sub, target.parent, folders, [*stack, key], seen)
        _define(prog, sub)


def _define(prog: Program, module: ir.Module) -> None:
    for item in module.items:
        if isinstance(item, ir.CellDef | ir.Let):
            table: dict = prog.cells if isinstance(item, ir.CellDef) else prog.lets
            if item.name in prog.cells or item.name in prog.lets:
                other = prog.cells.get(item.name) or prog.lets.get(item.name)
                where = other.span if other is not None and other.span else None
                prog.diagnostics.append(Diagnostic(
                    code="DPC110", span=item.span or ir.Span(),
                    message=f"'{item.name}' is defined twice"
                            + (f" (first at {where})" if where else "")))
                continue
            table[item.name] = item


def standalone_text(program: Program) -> str:
    """One ``.dpc`` text that defines what ``program`` sees: the files it imports, then
    its own, without the ``import`` lines, so that a copy needs no other file (a run
    folder keeps its search space this way)."""
    from dpcdsl.lang.printer import format_module

    parts = []
    for file, text in program.sources.items():
        module = program.module if file == program.file else parse(text, file)
        items = tuple(i for i in module.items if not isinstance(i, ir.Import))
        body = format_module(module.model_copy(update={"items": items}))
        if body.strip():
            parts.append(f"# from {Path(file).name}\n{body}")
    return "\n".join(reversed(parts))  # what a file imports comes before it

