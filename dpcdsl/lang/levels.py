"""Backbone levels: which feature map a cell's input reads.

A level is a stride and, where a backbone has several maps at that stride (a ViT's
blocks, all at stride 16; a ResNet's dilated stages at output stride 8), which of them:
``16`` is the deepest map at stride 16, ``16[0]`` the first, ``16[-2]`` the one before
the deepest, indexed as Python indexes a list of the backbone's maps at that stride, in
their order. Stride 1 is the image itself. The text form is the same in a cell
(``low @ 16[0]``) and in a task file (``inputs = [16, "16[0]"]``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: the strides a cell's input may read (``low @ 4``); 1 is the image itself
INPUT_STRIDES = (1, 2, 4, 8, 16, 32)

_TEXT = re.compile(r"\s*(\d+)\s*(?:\[\s*(-?\d+)\s*\])?\s*")


class Level(NamedTuple):
    """A stride and which of the backbone's maps at it, ``nth`` (-1: the deepest)."""

    stride: int
    nth: int = -1

    def __str__(self) -> str:
        return str(self.stride) if self.deepest else f"{self.stride}[{self.nth}]"

    @property
    def deepest(self) -> bool:
        """Is this the deepest map at its stride (what a stride alone names)?"""
        return self.nth == -1

    @property
    def written(self) -> int | str:
        """As a task file writes it: ``16``, or ``"16[0]"``."""
        return self.stride if self.deepest else str(self)

    @property
    def file_key(self) -> str:
        """A name part for files that hold this level's features: ``s16``, ``s16i0``."""
        return f"s{self.stride}" if self.deepest else f"s{self.stride}i{self.nth}"

    def pick(self, strides: list[int] | tuple[int, ...]) -> int | None:
        """The position in a backbone's list of map strides of this level's map; None
        when the backbone has no such map."""
        at = [i for i, s in enumerate(strides) if s == self.stride]
        if not -len(at) <= self.nth < len(at):
            return None
        return at[self.nth]


def parse_level(value: object) -> Level:
    """``16``, ``"16"``, ``"16[0]"``, ``"16[-2]"`` or a :class:`Level` as a Level;
    ValueError naming the accepted forms for anything else."""
    if isinstance(value, Level):
        level = value
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a backbone level")
    elif isinstance(value, int):
        level = Level(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        level = Level(int(value[0]), int(value[1]))
    else:
        m = _TEXT.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"{value!r} is not a backbone level: write a stride (16), or a "
                             "stride and which of its maps (\"16[0]\", \"16[-2]\")")
        level = Level(int(m[1]), -1 if m[2] is None else int(m[2]))
    if level.stride not in INPUT_STRIDES:
        raise ValueError("a backbone stride is one of " + ", ".join(map(str, INPUT_STRIDES)))
    if level.stride == 1 and not level.deepest:
        raise ValueError("stride 1 is the image, which has one map: write it without an "
                         "index")
    return level


__all__ = ["INPUT_STRIDES", "Level", "parse_level"]
