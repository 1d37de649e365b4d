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

#: bytes of one source file (the grammar is linear to parse, the checks near linear;
#: parsing takes about 8 us a byte on one core, so the largest file parses in about 2 s,
#: and a file of 10,000 nodes, the most one architecture may have, is about 400 KB)
MAX_SOURCE_BYTES = 256_000
#: brackets (``(``, ``{``) open at once in a source text; every pass walks nesting
#: recursively, so this bounds the stack
MAX_NESTING = 64
#: the largest integer literal (rates, channels, repeat counts, depths, strides)
MAX_INT = 2**31 - 1
#: branches of one ``repeat`` (its ``earlier`` options grow with the square of it)
MAX_REPEAT = 256
#: values of one set literal
MAX_SET = 4096
#: the depth bound of a recursive cell
MAX_DEPTH = 32
#: cells inlined inside cells, a recursive cell counting as many levels as its depth
MAX_CELL_NESTING = 48
#: primitive nodes of one architecture (a sample, a decoded or concrete cell); its
#: canonical text, at most about 100 bytes a node, stays within MAX_SOURCE_BYTES, so
#: every architecture a space holds can be written out and read back
MAX_NODES = 2048
#: the size of a space, in bits of its count (2**18 bits: about 79,000 decimal digits)
MAX_COUNT_BITS = 2**18
#: branches of a DeepLab JSON cell, and how deep its JSON may nest
MAX_JSON_BRANCHES = 1000
MAX_JSON_NESTING = 32
#: the longest import path, in characters
MAX_IMPORT_PATH = 255
#: channels of one tensor: an input, a conv's output or a concat of branches (a
#: thousand branches of 1,024 channels)
MAX_CHANNELS = 1_048_576
#: weights of one architecture at its input channels (4 GB as float32; training with
#: Adam holds three times that), checked before any backend allocates them
MAX_WEIGHTS = 1_000_000_000
#: the height or width of a feature map
MAX_FEATURE_SIZE = 16_384
#: values of every tensor of one architecture for one image, at the feature size
#: (8 GB as float32, before the batch and the gradients multiply it)
MAX_ACTIVATIONS = 2**31

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


def _gigabytes(values: int) -> str:
    return f"{values * 4 / 1e9:,.1f} GB as float32"


def check_tensor(channels: int, size: tuple[int, int] | None, span: Span | None,
                 what: str) -> None:
    """Refuse a tensor wider than :data:`MAX_CHANNELS`, or larger than
    :data:`MAX_FEATURE_SIZE` on a side."""
    if channels > MAX_CHANNELS:
        raise DpcError.at(span, f"{what} has {channels:,} channels, more than "
                          f"{MAX_CHANNELS:,}",
                          hint="dpcdsl.limits.MAX_CHANNELS sets this limit", code=CODE)
    if size is not None and max(size) > MAX_FEATURE_SIZE:
        raise DpcError.at(span, f"{what} is {size[0]}x{size[1]}, larger than "
                          f"{MAX_FEATURE_SIZE:,} on a side",
                          hint="dpcdsl.limits.MAX_FEATURE_SIZE sets this limit", code=CODE)


def check_weights(n: int, span: Span | None) -> None:
    """Refuse an architecture of more than :data:`MAX_WEIGHTS` weights."""
    if n > MAX_WEIGHTS:
        raise DpcError.at(span, f"this architecture needs {n:,} weights ({_gigabytes(n)}), "
                          f"more than {MAX_WEIGHTS:,}",
                          hint="fewer channels or branches; dpcdsl.limits.MAX_WEIGHTS "
                               "sets this limit", code=CODE)


def check_activations(n: int, span: Span | None) -> None:
    """Refuse an architecture whose tensors hold more than :data:`MAX_ACTIVATIONS`
    values for one image."""
    if n > MAX_ACTIVATIONS:
        raise DpcError.at(span, f"this architecture's tensors hold {n:,} values for one "
                          f"image ({_gigabytes(n)}), more than {MAX_ACTIVATIONS:,}",
                          hint="fewer channels or branches, or a smaller feature map; "
                               "dpcdsl.limits.MAX_ACTIVATIONS sets this limit", code=CODE)


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


__all__ = ["CODE", "MAX_ACTIVATIONS", "MAX_CELL_NESTING", "MAX_CHANNELS", "MAX_COUNT_BITS",
           "MAX_DEPTH", "MAX_FEATURE_SIZE", "MAX_IMPORT_PATH", "MAX_INT", "MAX_JSON_BRANCHES",
           "MAX_JSON_NESTING", "MAX_NESTING", "MAX_NODES", "MAX_REPEAT", "MAX_SET",
           "MAX_SOURCE_BYTES", "MAX_WEIGHTS", "check_activations", "check_count",
           "check_nodes", "check_tensor", "check_weights", "count_text", "stack_guard"]
