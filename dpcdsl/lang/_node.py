"""The base of every IR node: frozen, compared and hashed without spans or layout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dpcdsl.errors import Span


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

    def children(self) -> Iterator[IRNode]:
        """The node's IR children, in field order: derived from its fields, so a new
        node class needs no walker of its own."""
        for name in type(self).model_fields:
            if name in self._layout_fields:
                continue
            value = getattr(self, name)
            if isinstance(value, IRNode):
                yield value
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, IRNode):
                        yield item

    def walk(self) -> Iterator[IRNode]:
        """This node and every node below it, depth first, parents before children."""
        stack: list[IRNode] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IRNode):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


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


R = TypeVar("R")


class Visitor(Generic[R]):
    """Dispatch on a node's class to ``visit_<ClassName>``; a class without such a
    method goes to :meth:`generic_visit`, which visits the children. A visitor that
    must handle every class itself sets ``strict`` (its generic_visit then raises),
    and the tests check that it has a method for every IR class (:meth:`handles`)."""

    strict: ClassVar[bool] = False

    def visit(self, node: IRNode, *args: Any) -> R:
        method: Callable[..., R] | None = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            return self.generic_visit(node, *args)
        return method(node, *args)

    def generic_visit(self, node: IRNode, *args: Any) -> R:
        if self.strict:
            raise TypeError(f"{type(self).__name__} does not handle {type(node).__name__}")
        for child in node.children():
            self.visit(child, *args)
        return None  # type: ignore[return-value]

    @classmethod
    def handles(cls) -> set[str]:
        """The names of the IR classes this visitor has its own method for."""
        return {name.removeprefix("visit_") for name in dir(cls) if name.startswith("visit_")
                and name != "visit"}
