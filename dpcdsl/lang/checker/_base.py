"""What every check pass shares: the scope, the place an expression stands in, and
:class:`Pass`, the one walk of a program that every pass refines.

A pass is a strict :class:`~dpcdsl.lang._node.Visitor`. :class:`Pass` has a method for each
IR class that walks it and keeps the scope (what each name is bound to at each point);
a pass overrides the methods of the nodes it checks and calls ``super()`` to go on
walking. An IR class that :class:`Pass` has no method for is an error in every pass
(``tests/test_checker_passes.py`` checks each pass against every IR class)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from dpcdsl import limits
from dpcdsl.errors import Diagnostic
from dpcdsl.lang import ir
from dpcdsl.lang._node import Visitor
from dpcdsl.lang.checker._sizes import SizeSpec
from dpcdsl.lang.program import Program
from dpcdsl.ops import OPS, WORDS, Arg

#: the classes of statement a cell's body holds
STATEMENTS = frozenset(typing.get_args(ir.Statement))


@dataclass(frozen=True)
class Binding:
    kind: str  # "tensor" | "value" | "group" | "input"
    span: ir.Span | None = None
    value: Any = None  # the expr of a value binding
    default: bool = False  # a cell parameter's default value


@dataclass
class Scope:
    names: dict[str, Binding] = field(default_factory=dict)
    later: dict[str, ir.Span | None] = field(default_factory=dict)  # defined further down
    in_repeat: bool = False
    local: set[str] = field(default_factory=set)  # names this cell defines

    def child(self, in_repeat: bool | None = None) -> Scope:
        return Scope(dict(self.names), dict(self.later),
                     self.in_repeat if in_repeat is None else in_repeat, set(self.local))


@dataclass(frozen=True)
class Place:
    """What the place an expression stands in needs: a tensor, or a value (for the
    argument ``arg`` of ``func``, when it is an argument)."""

    tensor: bool
    variadic: bool = False  # a repeat's branches may stand here (concat(b), sum(b))
    option: bool = False  # an option of a plain one_of (`earlier` may stand here)
    applied: tuple[Any, ...] | None = None  # an option of one_of(...)(applied)
    in_set: bool = False  # an item of a set
    arg: Arg | None = None
    func: str = ""


TENSOR = Place(tensor=True)
VALUE = Place(tensor=False)


@dataclass(frozen=True)
class Block:
    """The statements being walked: of ``cell``, inside ``repeat`` or ``loop`` or not;
    ``carried``, the names a loop's body rebinds that stood before the loop."""

    cell: ir.CellDef
    repeat: ir.Repeat | None = None
    loop: ir.For | None = None
    carried: frozenset[str] = frozenset()


class Pass(Visitor[None]):
    """The walk of a program, in the order of the text, keeping the scope; it checks
    nothing. ``run`` gives the pass's diagnostics."""

    strict = True
    #: whether the pass runs only on a text with no diagnostic so far (its work is
    #: for sound texts only)
    needs_clean: ClassVar[bool] = False

    def __init__(self, program: Program, size: SizeSpec = None) -> None:
        self.p = program
        self.size = size
        self.diags: list[Diagnostic] = []

    def run(self) -> list[Diagnostic]:
        self.visit(self.p.module, Scope())
        return self.diags

    def error(self, code: str, node: Any, message: str, hint: str | None = None,
              severity: str = "error") -> None:
        span = getattr(node, "span", None) or ir.Span(file=self.p.file)
        self.diags.append(Diagnostic(span=span, message=message, hint=hint, code=code,
                                     severity=severity))

    # ------------------------------------------------------------------ items
    def visit_Module(self, module: ir.Module, top: Scope) -> None:
        for item in module.items:
            if isinstance(item, ir.Let):
                self.visit(item.value, top, VALUE)
                top.names[item.name] = Binding("value", item.span, item.value)
        for name, let in self.p.lets.items():  # those of imported files too
            top.names.setdefault(name, Binding("value", let.span, let.value))
        for cell in self.p.cells.values():
            self.visit(cell, top)

    def visit_Import(self, item: ir.Import, *_: Any) -> None:
        """Imports are resolved (and their problems said) when the program loads."""

    def visit_CellDef(self, cell: ir.CellDef, top: Scope) -> None:
        scope = top.child()
        for prm in cell.params:
            self.visit(prm, scope, top)
        for name in _defined(cell.body):
            scope.later.setdefault(name, None)
        self.statements(cell.body, scope, Block(cell))

    def visit_Param(self, prm: ir.Param, scope: Scope, top: Scope) -> None:
        scope.local.add(prm.name)
        if prm.default is None:
            scope.names[prm.name] = Binding("input", prm.span)
        else:
            self.visit(prm.default, top, VALUE)
            scope.names[prm.name] = Binding("value", prm.span, prm.default, default=True)

    # ------------------------------------------------------------------ statements
    def statements(self, body: tuple[Any, ...], scope: Scope, block: Block) -> None:
        for s in body:
            if type(s) not in STATEMENTS:  # an item (an import) in a body is a bug
                raise TypeError(f"the checker has no rule for a {type(s).__name__} "
                                "statement")
            self.visit(s, scope, block)

    def visit_Let(self, s: ir.Let, scope: Scope, block: Block) -> None:
        self.visit(s.value, scope, VALUE)
        scope.local.add(s.name)
        scope.names[s.name] = Binding("value", s.span, s.value)

    def visit_Assign(self, s: ir.Assign, scope: Scope, block: Block) -> None:
        self.visit(s.value, scope, TENSOR)
        scope.local.add(s.target)
        scope.names[s.target] = Binding("tensor", s.span, s.value)
        scope.later.pop(s.target, None)

    def visit_Repeat(self, s: ir.Repeat, scope: Scope, block: Block) -> None:
        scope.local.add(s.name)
        inner = scope.child(in_repeat=True)
        inner.names.pop(s.name, None)
        inner.local.discard(s.name)
        self.statements(s.body, inner, Block(block.cell, s))
        scope.names[s.name] = Binding("group", s.span)
        for i in range(min(s.count, limits.MAX_REPEAT)):
            scope.names[f"{s.name}{i}"] = Binding("tensor", s.span)
        scope.later.pop(s.name, None)

    def visit_For(self, s: ir.For, scope: Scope, block: Block) -> None:
        """The body once per item, in a scope of the item's own: the loop's names bound
        to the item's parts (a name of a tensor binds that tensor; anything else is a
        value). A name the body assigns that stood before the loop is carried: each
        item assigns it once more. After the loop the names the body assigns stand for
        the last item's, ``x<i>`` for item i's, and the loop's own names are gone."""
        assigned = _defined(s.body)
        carried = frozenset(n for n in assigned if n in scope.local)
        inner_block = Block(block.cell, block.repeat, s, carried)
        before = scope.local - carried  # each item assigns the body's names anew
        for i, item in enumerate(s.items):
            inner = scope.child()
            inner.local = set(before)
            for name, part in zip(s.names, s.parts(item)):
                bound = scope.names.get(part.id) if isinstance(part, ir.Name) else None
                if bound is not None and bound.kind != "value":
                    self.visit(part, scope, TENSOR)  # an alias of the name (`y = x`)
                    inner.names[name] = Binding("group" if bound.kind == "group" else
                                                "tensor", part.span, part)
                else:
                    self.visit(part, scope, VALUE)
                    inner.names[name] = Binding("value", part.span, part)
                inner.local.add(name)
            self.statements(s.body, inner, inner_block)
            for n in assigned:
                if n in inner.names:
                    scope.names[n] = inner.names[n]
                    scope.local.add(n)
                scope.later.pop(n, None)
            for t in s.body:  # item i's tensor for `x = ...` is x<i> after the loop too
                if isinstance(t, ir.Assign) and t.target in inner.names:
                    scope.names[f"{t.target}{i}"] = inner.names[t.target]

    def visit_Return(self, s: ir.Return, scope: Scope, block: Block) -> None:
        self.visit(s.value, scope, TENSOR)

    # ------------------------------------------------------------------ expressions
    def visit_Call(self, e: ir.Call, scope: Scope, at: Place) -> None:
        if not at.tensor:  # a call is no value: nothing below it is read as one
            return
        known = self.known_args(e.func)
        if known is None:  # an unknown op: its tensors are still read
            for a in e.args:
                self.visit(a, scope, TENSOR)
            return
        variadic = Place(tensor=True, variadic=e.func in OPS and OPS[e.func].max_inputs is None)
        for a in e.args:
            self.visit(a, scope, variadic)
        for kw in e.kwargs:
            arg = known.get(kw.name)
            if arg is not None:
                self.visit(kw, scope, TENSOR if arg.kind == "tensor"
                           else Place(tensor=False, arg=arg, func=e.func))

    def visit_Kwarg(self, kw: ir.Kwarg, scope: Scope, at: Place) -> None:
        self.visit(kw.value, scope, at)

    def visit_OneOf(self, e: ir.OneOf, scope: Scope, at: Place) -> None:
        if not at.tensor:
            return
        for o in e.options:
            if e.apply is None:
                self.visit(o, scope, Place(tensor=True, option=True))
            elif isinstance(o, ir.Call):
                self.visit(o, scope, Place(tensor=True, applied=e.apply))
        for a in e.apply or ():
            if not isinstance(a, ir.Kwarg):
                self.visit(a, scope, TENSOR)

    def visit_Tuple(self, e: ir.Tuple, scope: Scope, at: Place) -> None:
        if not at.tensor:
            for item in e.items:
                self.visit(item, scope, at)

    def visit_SetLit(self, e: ir.SetLit, scope: Scope, at: Place) -> None:
        if not at.tensor and len(e.items) <= limits.MAX_SET:
            for item in e.items:
                self.visit(item, scope, replace(at, in_set=True))

    def visit_Arith(self, e: ir.Arith, scope: Scope, at: Place) -> None:
        if not at.tensor:  # its operands are values of no argument's kind
            operand = Place(tensor=False, in_set=at.in_set)
            self.visit(e.left, scope, operand)
            self.visit(e.right, scope, operand)

    def visit_ChannelsOf(self, e: ir.ChannelsOf, scope: Scope, at: Place) -> None:
        """A value read off a tensor: the name is read as a tensor's."""
        if not at.tensor:
            self.visit(e.tensor, scope, TENSOR)

    def visit_Name(self, e: ir.Name, scope: Scope, at: Place) -> None:
        """A leaf: what it names is each pass's concern."""

    def visit_Earlier(self, e: ir.Earlier, scope: Scope, at: Place) -> None:
        """A leaf."""

    def visit_Int(self, e: ir.Int, scope: Scope, at: Place) -> None:
        """A leaf."""

    def visit_Float(self, e: ir.Float, scope: Scope, at: Place) -> None:
        """A leaf."""

    def visit_Bool(self, e: ir.Bool, scope: Scope, at: Place) -> None:
        """A leaf."""

    # ------------------------------------------------------------------ helpers
    def known_args(self, func: str) -> dict[str, Arg] | None:
        """The arguments of the op or cell ``func`` (None: it is neither)."""
        if func in OPS:
            return {a.name: a for a in OPS[func].args}
        if func in self.p.cells:
            return {p.name: Arg(p.name, "any") for p in self.p.cells[func].options}
        return None


# ---------------------------------------------------------------------- values
def resolve(e: Any, scope: Scope) -> Any:
    """Follow names to the value expression they stand for (or None)."""
    seen = set()
    while isinstance(e, ir.Name) and e.id not in WORDS:
        b = scope.names.get(e.id)
        if b is None or b.kind != "value" or e.id in seen:
            return None
        seen.add(e.id)
        e = b.value
    return e


def values(e: Any, scope: Scope) -> list[Any]:
    """Every concrete value ``e`` can take (sets expanded); best effort."""
    e = resolve(e, scope) if isinstance(e, ir.Name) and e.id not in WORDS else e
    if isinstance(e, ir.Name):
        return [e.id]
    if isinstance(e, ir.Int | ir.Float | ir.Bool):
        return [e.value]
    if isinstance(e, ir.SetLit):
        return [v for i in e.items for v in values(i, scope)]
    if isinstance(e, ir.Tuple):
        return _tuples([values(item, scope) for item in e.items])
    if isinstance(e, ir.Arith):
        return arith(e.op, values(e.left, scope), values(e.right, scope))
    return []


def arith(op: str, left: list[Any], right: list[Any]) -> list[Any]:
    """The values ``left op right`` can take, where both are integers (and a division's
    right is not 0); the pairs as :func:`_tuples` takes them."""
    out = []
    for a, b in _tuples([left, right]):
        if integer(a) and integer(b) and not (op == "//" and b == 0):
            out.append(ir.ARITH[op](a, b))
    return out


def integer(v: Any) -> bool:
    """Is ``v`` an integer value (not a boolean)?"""
    return isinstance(v, int) and not isinstance(v, bool)


#: above this many combinations a tuple of sets is checked by a cover, not all of them
_PRODUCT = 256


def _tuples(columns: list[list[Any]]) -> list[tuple[Any, ...]]:
    """The values a tuple can take, from the values of each item: every combination
    while there are few; past :data:`_PRODUCT`, a cover that holds each item's every
    value at least once (the others at their first), so a pair of two sets of 1,000
    values costs 2,000 checks, not a million. Every check reads one item at a time."""
    if any(not c for c in columns):
        return []
    n = 1
    for c in columns:
        n *= len(c)
    if n <= _PRODUCT:
        out: list[tuple[Any, ...]] = [()]
        for c in columns:
            out = [(*o, v) for o in out for v in c]
        return out
    first = tuple(c[0] for c in columns)
    cover = [first]
    for i, c in enumerate(columns):
        cover += [(*first[:i], v, *first[i + 1:]) for v in c[1:]]
    return cover


# ---------------------------------------------------------------------- the text
def calls(body: tuple[Any, ...]) -> list[ir.Call]:
    """Every call in a body, nested repeats included (the generic IR walk)."""
    return [c for s in body for c in s.walk() if isinstance(c, ir.Call)]


def calls_closure(cell: ir.CellDef, p: Program) -> list[ir.Call]:
    """Every call in ``cell`` and in the cells it calls, however deep."""
    out, todo, seen = [], [cell], {cell.name}
    while todo:
        c = todo.pop()
        for call in calls(c.body):
            out.append(call)
            if call.func in p.cells and call.func not in seen:
                seen.add(call.func)
                todo.append(p.cells[call.func])
    return out


def _defined(body: tuple[Any, ...]) -> list[str]:
    """The names a cell's statements define, for 'used before it is defined' (a loop's
    body defines its names for the statements after the loop)."""
    names = []
    for s in body:
        if isinstance(s, ir.Assign):
            names.append(s.target)
        elif isinstance(s, ir.Let | ir.Repeat):
            names.append(s.name)
        elif isinstance(s, ir.For):
            names += [n for n in _defined(s.body) if n not in names]
    return names
