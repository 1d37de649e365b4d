"""The limits on what one input may ask for. Each is checked before the work it bounds
starts, and going over one is a located error (code DPC150) that names the limit, so a
short text can never make ``check``, ``count`` or ``sample`` run for minutes or fill
the memory. They are far above what real heads and spaces need: the paper's space
uses 5 branches, 8 values per set and no recursion; the largest example nests 6 deep.

Raise one for a run by assigning to it (``dpcdsl.limits.MAX_NODES = 50_000``); every
check reads the module attribute when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dpcdsl.errors import DpcError, Span

#: bytes of one source file (the grammar is linear to parse, the checks near linear)
MAX_SOURCE_BYTES = 1_000_000
#: brackets (``(``, ``{``) open at once in a source text; every pass walks nesting
#: recursively, so this bounds the stack
MAX_NESTING = 64
#: the largest integer literal (rates, channels, repeat counts, depths, strides)
MAX_INT = 2**31 - 1
#: branches of one ``repeat``
MAX_REPEAT = 1000
#: values of one set literal
MAX_SET = 4096
#: the depth bound of a recursive cell
MAX_DEPTH = 32
#: cells inlined inside cells, a recursive cell counting as many levels as its depth
MAX_CELL_NESTING = 48
#: primitive nodes of one architecture (a sample, a decoded or concrete cell)
MAX_NODES = 10_000
#: the size of a space, in bits of its count (2**18 bits: about 79,000 decimal digits)
MAX_COUNT_BITS = 2**18
#: branches of a DeepLab JSON cell, and how deep its JSON may nest
MAX_JSON_BRANCHES = 1000
MAX_JSON_NESTING = 32
#: the longest import path, in characters
MAX_IMPORT_PATH = 255

#: the code of every diagnostic that a limit raises
CODE = "DPC150"

_DIGITS = 1 + MAX_COUNT_BITS * 30103 // 100000  # decimal digits of 2**MAX_COUNT_BITS


@contextmanager
def stack_guard(span: Span | None, what: str,
                sources: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn Python's RecursionError inside the block into a located error: the last
    line of defence for structures built through the API, which no text limit bounds."""
    try:
        yield
    except RecursionError:
        raise DpcError.at(span, f"{what} nests too deeply to walk",
                          hint=f"flatten it: name inner parts; text is limited to "
                               f"{MAX_NESTING} brackets and recursion to depth {MAX_DEPTH}",
                          sources=sources, code=CODE) from None


def check_nodes(n: int, span: Span | None, sources: Mapping[str, str] | None = None) -> None:
    """Refuse an architecture that grows past :data:`MAX_NODES` nodes."""
    if n >= MAX_NODES:
        raise DpcError.at(span, f"an architecture of this cell has more than "
                          f"{MAX_NODES:,} nodes",
                          hint="lower the repeat count or the recursion depth; "
                               "dpcdsl.limits.MAX_NODES sets this limit",
                          sources=sources, code=CODE)


def check_count(n: int, span: Span | None, sources: Mapping[str, str] | None = None) -> int:
    """``n``, or a located error when a space is larger than :data:`MAX_COUNT_BITS`."""
    if n.bit_length() > MAX_COUNT_BITS:
        raise DpcError.at(span, f"the space is too large to count: more than "
                          f"2^{MAX_COUNT_BITS} architectures",
                          hint="lower the repeat count or the recursion depth; "
                               "dpcdsl.limits.MAX_COUNT_BITS sets this limit",
                          sources=sources, code=CODE)
    return n


@contextmanager
def _big_int_text() -> Iterator[None]:
    old = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    if old:
        sys.set_int_max_str_digits(max(old, _DIGITS + 10))
    try:
        yield
    finally:
        if old:
            sys.set_int_max_str_digits(old)


def count_text(n: int, exact: bool = True) -> str:
    """A count as decimal text: every digit (Python's own ``str`` refuses above 4,300
    digits), or with ``exact=False`` a short ``about 1.2e5000`` past 30 digits."""
    with _big_int_text():
        text = str(n)
    if exact or len(text) <= 30:
        return text
    return f"about {text[0]}.{text[1:3]}e{len(text) - 1}"


__all__ = ["CODE", "MAX_CELL_NESTING", "MAX_COUNT_BITS", "MAX_DEPTH", "MAX_IMPORT_PATH",
           "MAX_INT", "MAX_JSON_BRANCHES", "MAX_JSON_NESTING", "MAX_NESTING", "MAX_NODES",
           "MAX_REPEAT", "MAX_SET", "MAX_SOURCE_BYTES", "check_count", "check_nodes",
           "count_text", "stack_guard"]
