"""The text of integer arithmetic, shared by the printer of the surface IR and the
canonical text of flat cells (whose widths may be arithmetic on ``x.channels``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: how tightly each arithmetic operator binds
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2}


def arith_text(e: Any, text: Callable[[Any], str]) -> str:
    """``left op right`` for an arithmetic node ``e``, its operands written by ``text``:
    parentheses where the tree differs from the operators' order, around a looser
    operand and around a right operand of the same binding."""
    level = PRECEDENCE[e.op]
    left, right = text(e.left), text(e.right)
    if _binding(e.left) is not None and _binding(e.left) < level:  # type: ignore[operator]
        left = f"({left})"
    if _binding(e.right) is not None and _binding(e.right) <= level:  # type: ignore[operator]
        right = f"({right})"
    return f"{left} {e.op} {right}"


def _binding(e: Any) -> int | None:
    op = getattr(e, "op", None)
    return PRECEDENCE.get(op) if isinstance(op, str) else None
