"""The IR: every node model in one place.

Two levels:

* the *surface* IR mirrors the text (cells, statements, expressions, choice points);
  every node carries the :class:`Span` it came from;
* the *flat* IR (:class:`Cell`) is a concrete architecture: a list of primitive
  :class:`Node` s in topological order, with every attribute resolved. It has a
  canonical text and a stable hash, which the search uses to deduplicate trials.

All models are frozen. Spans, comments and layout hints never take part in equality
or hashing, so ``parse(print(ir)) == ir`` compares structure only.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field


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


class IRNode(BaseModel):
    """Base of all IR nodes: frozen, compared and hashed without spans or layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    _layout_fields: ClassVar[frozenset[str]] = frozenset({"span", "comments", "blank_before"})

    span: Span | None = Field(default=None, repr=False)

    def _key(self) -> tuple[Any, ...]:
        return (type(self).__name__,) + tuple(
            getattr(self, name)
            for name in type(self).model_fields
            if name not in self._layout_fields
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IRNode):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


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


class OneOf(IRNode):
    """A choice point. ``apply`` is set for ``one_of(ops...)(args...)``."""

    options: tuple[Expr, ...]
    apply: tuple[Expr, ...] | None = None


Expr = Union[Int, Float, Bool, Name, Earlier, Tuple, SetLit, Call, OneOf, Kwarg]  # noqa: UP007  (pydantic resolves the forward refs)


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


class Return(Stmt):
    value: Expr


Statement = Union[Let, Assign, Repeat, Return]  # noqa: UP007


class Param(IRNode):
    """A formal input (no default) or a parameter (with a default)."""

    name: str
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


# --------------------------------------------------------------------------- flat IR
AttrValue = Union[int, float, bool, str, tuple[int, ...]]  # noqa: UP007


class Node(IRNode):
    """One primitive operation of a concrete cell. ``attrs`` holds every attribute of
    the op, defaults included, sorted by name."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: tuple[tuple[str, AttrValue], ...] = ()

    def attr(self, key: str) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        raise KeyError(f"node {self.name!r} ({self.op}) has no attribute {key!r}")


class Cell(IRNode):
    """A concrete architecture: nodes in topological order, reading ``inputs`` or
    earlier nodes; ``output`` names the result."""

    name: str
    inputs: tuple[str, ...]
    channels: int = 256
    nodes: tuple[Node, ...]
    output: str

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def canonical_text(self) -> str:
        """The cell as canonical ``.dpc`` text, one node per line."""
        from dpcdsl.printer import print_cell

        return print_cell(self)

    @property
    def hash(self) -> str:
        """A stable content hash: equal for equal architectures, whatever the cell's
        name or the spans it was parsed from."""
        body = print_cell(self.model_copy(update={"name": "_"}))
        return hashlib.sha256(body.encode()).hexdigest()[:16]


IRNodeT = TypeVar("IRNodeT", bound=IRNode)


class _AllFields(dict[type, set[str]]):
    def __missing__(self, cls: type) -> set[str]:
        fields = self[cls] = set(cls.model_fields)  # type: ignore[attr-defined]
        return fields


_ALL_FIELDS = _AllFields()


def construct(cls: type[IRNodeT], **fields: Any) -> IRNodeT:
    """A node from already valid values, every field given in declaration order: what
    ``model_construct`` does, without its per-call bookkeeping. The expander builds
    thousands of nodes a second with it."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    # every field is set; one shared set per class, since each set is one more object
    # for the garbage collector to scan (pydantic copies it before it changes it)
    object.__setattr__(obj, "__pydantic_fields_set__", _ALL_FIELDS[cls])
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


for _model in (Tuple, SetLit, Kwarg, Call, OneOf, Let, Assign, Repeat, Return, Param,
               CellDef, Module):
    _model.model_rebuild()

from dpcdsl.printer import print_cell  # noqa: E402  (printer imports this module)
