"""The IR: every node model in one place.

Two levels:

* the *surface* IR, here, mirrors the text (cells, statements, expressions, choice
  points); every node carries the :class:`Span` it came from;
* the *flat* IR (:class:`Cell`, in :mod:`dpcdsl.lang.flat`, re-exported here) is a
  concrete architecture: a list of primitive :class:`Node` s in topological order,
  with every attribute resolved. It has a canonical text and a stable hash, which the
  search uses to deduplicate trials.

All models are frozen. Spans, comments and layout hints never take part in equality
or hashing, so ``parse(print(ir)) == ir`` compares structure only.
"""

from __future__ import annotations

import operator
from typing import ClassVar, Union

from pydantic import Field

from dpcdsl.errors import Span as Span
from dpcdsl.lang._node import IRNode as IRNode
from dpcdsl.lang._node import construct as construct
from dpcdsl.lang.flat import AttrValue as AttrValue
from dpcdsl.lang.flat import Cell as Cell
from dpcdsl.lang.flat import Node as Node
from dpcdsl.lang.levels import Level as Level


# ----------------------------------------------------------------------------- values
class Int(IRNode):
    value: int


class Float(IRNode):
    value: float


class Bool(IRNode):
    value: bool


class Name(IRNode):
    """A reference: a tensor, a `let`, a parameter, or a bare word such as `paper`."""

    id: str


class ChannelsOf(IRNode):
    """``x.channels``: the width of the tensor ``x``, an integer known when the cell is
    built for its input channels. In a flat cell's attributes the name is the flat
    cell's own (``bound``, set by the expander); in the text it is the cell's."""

    tensor: Name
    bound: bool = False


class Earlier(IRNode):
    """Inside a `repeat` body: every branch made before the current one."""


class Tuple(IRNode):
    items: tuple[Expr, ...]


class SetLit(IRNode):
    """A choice of one value among several: ``{1, 3, 6}``."""

    items: tuple[Expr, ...]


class Kwarg(IRNode):
    name: str
    value: Expr


class Call(IRNode):
    """``op(tensor args..., key = value...)``. With no tensor args it is a partial op,
    which only makes sense as an option of an applied ``one_of``."""

    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()

    def kwarg(self, name: str) -> Kwarg | None:
        return next((k for k in self.kwargs if k.name == name), None)


class Arith(IRNode):
    """Integer arithmetic on values: ``left op right``, ``op`` one of :data:`ARITH`."""

    op: str
    left: Expr
    right: Expr


#: what each arithmetic operator computes, on integers (``//`` floors, as Python's)
ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv}


class OneOf(IRNode):
    """A choice point. ``apply`` is set for ``one_of(ops...)(args...)``."""

    options: tuple[Expr, ...]
    apply: tuple[Expr, ...] | None = None


Expr = Union[Int, Float, Bool, Name, ChannelsOf, Earlier, Tuple, SetLit, Call, OneOf, Kwarg, Arith]  # noqa: UP007  (pydantic resolves the forward refs)


# ------------------------------------------------------------------------- statements
class Stmt(IRNode):
    comments: tuple[str, ...] = Field(default=(), repr=False)
    blank_before: bool = Field(default=False, repr=False)


class Let(Stmt):
    name: str
    value: Expr


class Assign(Stmt):
    target: str
    value: Expr


class Repeat(Stmt):
    """``repeat N as b { ... }``: branches b0..b{N-1}."""

    count: int
    name: str
    body: tuple[Statement, ...]


class For(Stmt):
    """``for a, b in ((x, 1), (y, 2)) { ... }``: the body once per item of ``items``,
    ``names`` bound to the item (to its parts, with several names). Iteration i's node
    for a name the body assigns is that name with i appended (``x0``, ``x1``...); a name
    defined before the loop is rebound by each iteration and, after the loop, is the
    last one's."""

    names: tuple[str, ...]
    items: tuple[Expr, ...]
    body: tuple[Statement, ...]

    def parts(self, item: Expr) -> tuple[Expr, ...]:
        """What ``item`` binds the loop's names to: the item itself for one name, the
        parts of a tuple for several."""
        if len(self.names) == 1:
            return (item,)
        return item.items if isinstance(item, Tuple) else (item,)


class Return(Stmt):
    value: Expr


Statement = Union[Let, Assign, Repeat, For, Return]  # noqa: UP007


class Param(IRNode):
    """A formal input (no default), which may say the backbone level it reads
    (``low @ 4``, ``block @ 16[0]``), or a parameter (with a default)."""

    name: str
    level: Level | None = None
    default: Expr | None = None


class CellDef(Stmt):
    name: str
    params: tuple[Param, ...]
    depth: int | None = None
    body: tuple[Statement, ...]

    @property
    def inputs(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.default is None)

    @property
    def options(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.default is not None)


class Import(Stmt):
    path: str


Item = Union[Import, Let, CellDef]  # noqa: UP007


class Module(IRNode):
    items: tuple[Item, ...]
    trailing_comments: tuple[str, ...] = Field(default=(), repr=False)
    _layout_fields: ClassVar[frozenset[str]] = frozenset(
        {"span", "comments", "blank_before", "trailing_comments"}
    )

    @property
    def cells(self) -> dict[str, CellDef]:
        return {i.name: i for i in self.items if isinstance(i, CellDef)}


#: the items and statements that hold a body of statements
BLOCKS = (CellDef, Repeat, For)

for _model in (Tuple, SetLit, Kwarg, Call, OneOf, Arith, Let, Assign, Repeat, For, Return,
               Param, CellDef, Module):
    _model.model_rebuild()
del _model
