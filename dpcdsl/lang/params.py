"""A cell's parameters set from outside its file: the API's ``params={...}`` and the
command line's ``--param NAME=VALUE``.

The given values replace the parameters' defaults in the cell's text and the program is
read and checked again, so a value from outside meets every rule one written in the
file meets, and an error shows the value in the cell's text. A value is a number,
``true``/``false``, a word (``paper``), a tuple, or a set of values to choose from
(which makes a space of a concrete cell)::

    >>> from dpcdsl.lang.params import with_params
    >>> from dpcdsl.lang.program import load_text
    >>> program = load_text("cell a(x, k = 3) { return conv(x, kernel = k) }")
    >>> from dpcdsl.lang.space import Space
    >>> Space(with_params(program, None, {"k": {1, 3, 5}})).count()
    3
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang.flat import float_text
from dpcdsl.lang.printer import format_module
from dpcdsl.lang.program import Program, load_text
from dpcdsl.lang.syntax import parse

#: what a parameter's value may be, as the API takes it
VALUES = "a number, true or false, a word, a tuple, or a set of these"


def with_params(program: Program, cell: str | None, params: Mapping[str, Any],
                what: str | None = None) -> Program:
    """``program`` with the parameters of its cell ``cell`` (default: its last) set to
    ``params`` (values as :func:`literal` takes them, or IR expressions), read and
    checked again. ``what`` names the cell in errors (default: ``cell 'name'``)."""
    target = program.cell(cell)
    what = what or f"cell '{target.name}'"
    if target not in program.module.items:
        where = target.span.file if target.span else "another file"
        raise DpcError.at(None, f"{what} is imported from {where}: its parameters are "
                          "set where it is written",
                          hint="set them in a cell of this file that calls it", code="DPC302")
    known = [p.name for p in target.options]
    for key in params:
        if key not in known:
            raise DpcError.at(None, f"{what} has no parameter '{key}'."
                              f"{did_you_mean(key, known)}".rstrip("."),
                              hint="parameters: " + (", ".join(known) or "none"),
                              code="DPC302")
    values = {k: v if isinstance(v, ir.IRNode) else literal(v, k) for k, v in params.items()}
    new = target.model_copy(update={"params": tuple(
        p.model_copy(update={"default": values[p.name]}) if p.name in values else p
        for p in target.params)})
    module = program.module.model_copy(update={"items": tuple(
        new if item is target else item for item in program.module.items)})
    file = Path(program.file)
    name = file.stem if file.suffix else target.name
    shown = ", ".join(f"{k}={_show(v)}" for k, v in values.items())
    # the imports still resolve from the file's own folder
    return load_text(format_module(module), f"<{name} with {shown}>",
                     file.resolve().parent if file.is_file() else None)


def literal(value: Any, name: str = "value") -> Any:
    """The IR expression of a Python value: ``3``, ``0.5``, ``True``, ``"paper"``,
    ``(3, 5)``, ``{1, 2}`` (a set, or a list, of values to choose from)."""
    if isinstance(value, bool):
        return ir.Bool(value=value)
    if isinstance(value, int):
        return ir.Int(value=value)
    if isinstance(value, float):
        return ir.Float(value=value)
    if isinstance(value, str) and value.isidentifier():
        return ir.Name(id=value)
    if isinstance(value, tuple):
        return ir.Tuple(items=tuple(literal(v, name) for v in value))
    if isinstance(value, set | frozenset | list):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return ir.SetLit(items=tuple(literal(v, name) for v in items))
    raise DpcError.at(None, f"parameter '{name}': {value!r} is not a value of the language",
                      hint=f"give {VALUES}", code="DPC401")


def parse_value(name: str, text: str) -> Any:
    """The value of ``--param name=text``, read as ``.dpc`` text (``3``, ``(3, 5)``,
    ``{1, 2}``, ``paper``); a syntax error has its caret in that text."""
    module = parse(f"let {name} = {text}\n", file=f"--param {name}")
    items = module.items
    if len(items) != 1 or not isinstance(items[0], ir.Let) or items[0].name != name:
        raise DpcError.at(None, f"--param {name}={text}: not one value",
                          hint=f"give {VALUES}", code="DPC401")
    return items[0].value


def _show(e: Any) -> str:
    """A value as the name of the rewritten text shows it."""
    if isinstance(e, ir.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ir.Float):
        return float_text(e.value)
    if isinstance(e, ir.Int):
        return str(e.value)
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, ir.Tuple | ir.SetLit):
        inner = ", ".join(_show(i) for i in e.items)
        return f"({inner})" if isinstance(e, ir.Tuple) else f"{{{inner}}}"
    return "..."


__all__ = ["VALUES", "literal", "parse_value", "with_params"]
