"""Reading the text files a user names (``.dpc`` sources, task files, JSON cells and
records): one function, so every one of them fails the same way, as a
:class:`~dpcdsl.errors.DpcError` that names the file, and never echoes a file that is
not the text it should be; and writing a run's files whole (:func:`write_atomic`)."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpcdsl import limits
from dpcdsl.errors import DpcError, Span

#: the installed package's folder, and the folder above it: the source tree's root, where
#: ``grammar/`` and ``examples/`` are when the package runs from a checkout
PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parent


def read_text(path: str | Path, what: str = "file", max_bytes: int | None = None) -> str:
    """The UTF-8 text of ``path``. A file that cannot be read, is larger than
    ``max_bytes`` (default: :data:`dpcdsl.limits.MAX_SOURCE_BYTES`), or is not UTF-8 is
    a :class:`DpcError` at the file (at the first bad byte's line and column for the
    last), with none of its content in the message. A pipe, device or folder is refused
    without waiting on it, and a leading byte-order mark is dropped."""
    limit = limits.MAX_SOURCE_BYTES if max_bytes is None else max_bytes
    name = str(path)
    try:
        # non-blocking, so that a FIFO is refused below instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise DpcError.at(Span(file=name), f"the {what} is not a regular file "
                                  "(a pipe, device or folder)", code="DPC120")
            data = f.read(limit + 1)
    except (OSError, ValueError, RuntimeError) as e:  # ValueError: a NUL byte in the path
        reason = getattr(e, "strerror", None) or str(e)
        raise DpcError.at(Span(file=name), f"cannot read the {what}: {reason}",
                          code="DPC120") from None
    if len(data) > limit:
        raise DpcError.at(Span(file=name), f"the {what} is larger than {limit:,} bytes",
                          hint="dpcdsl.limits.MAX_SOURCE_BYTES sets this limit",
                          code=limits.CODE)
    try:
        return data.decode("utf-8-sig")  # without a byte-order mark, as editors show it
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise DpcError.at(Span(file=name, line=line, column=column),
                          f"the {what} is not UTF-8 text (byte 0x{data[e.start]:02x})",
                          hint="save it as UTF-8", code="DPC120") from None


#: the suffix of dpcdsl source files: only these are parsed, so that no other file's
#: content is ever shown in a diagnostic's source line
SOURCE_SUFFIX = ".dpc"


def read_source(path: str | Path, what: str = "source file") -> str:
    """The text of a ``.dpc`` file. ``path`` is resolved through its symlinks first, and
    a file whose real name does not end in ``.dpc`` is refused unread: a diagnostic
    quotes source lines, and it must never quote a file that is not dpcdsl source (a
    link to ``/proc/self/environ`` would print the process environment)."""
    name = str(path)
    try:
        real = Path(path).resolve()
    except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: a symlink loop
        reason = getattr(e, "strerror", None) or str(e)
        raise DpcError.at(Span(file=name), f"cannot read the {what}: {reason}",
                          code="DPC120") from None
    if real.suffix != SOURCE_SUFFIX:
        linked = f" (a link to a file named '{real.name}')" if real.name != Path(path).name \
            else ""
        hint = ("a task file goes to --task" if real.suffix == ".toml" else
                "a DeepLab JSON cell goes through dpcc import-deeplab"
                if real.suffix == ".json" else f"dpcdsl source files end in {SOURCE_SUFFIX}")
        raise DpcError.at(Span(file=name), f"not a {SOURCE_SUFFIX} file{linked}", hint=hint,
                          code="DPC120")
    return read_text(real, what)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def load_json(path: str | Path, what: str, code: str = "DPC120") -> Any:
    """A JSON file's value; unreadable, not UTF-8, invalid, or nested deeper than
    :data:`dpcdsl.limits.MAX_JSON_NESTING` is a located error."""
    text = read_text(path, what)
    depth = deepest = 0
    for c in _JSON_STRING.sub('""', text):  # json.loads recurses: refuse deep nesting
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    if deepest > limits.MAX_JSON_NESTING:
        raise DpcError.at(Span(file=str(path)), f"the {what} nests {deepest} deep, more "
                          f"than {limits.MAX_JSON_NESTING}",
                          hint="dpcdsl.limits.MAX_JSON_NESTING sets this limit",
                          code=limits.CODE)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DpcError.at(Span(file=str(path), line=e.lineno, column=e.colno),
                          f"invalid JSON: {e.msg}", code=code) from None


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader, or a run killed half-way, sees the old file or the new one, never part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
