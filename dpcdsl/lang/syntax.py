"""Text -> surface IR. The grammar (``grammar/dpc.lark``) is the reference; this module
only transforms lark's tree into IR nodes that keep their spans, and turns lark's
errors into :class:`~dpcdsl.errors.DpcError` with a caret and a plain message."""

from __future__ import annotations

import functools
import math
import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.tree import Meta

from dpcdsl import limits
from dpcdsl._files import SOURCE_ROOT
from dpcdsl.errors import Diagnostic, DpcError, source_lines
from dpcdsl.lang import ir

# Common mistakes, named. Each entry is (message, [snippets that make it]). The table is
# also the test data for the syntax-error golden file (tests/golden/errors/syntax.txt).
SYNTAX_ERRORS: list[tuple[str, list[str]]] = [
    ("a cell needs a body in braces: `cell name(x) { ... }`",
     ["cell a(x)", "cell a(x) return x", "cell a(x) depth 2"]),
    ("missing `=` in an assignment: write `name = op(...)`",
     ["cell a(x) { y conv(x) }", "cell a(x) { y }"]),
    ("keyword arguments use `=`, not `:`",
     ["cell a(x) { y = conv(x, kernel: 1) }"]),
    ("an unclosed `(`: add the matching `)`",
     ["cell a(x) { y = conv(x, kernel = 1 }", "cell a(x) { y = conv(x }"]),
    ("an unclosed `{`: add the matching `}`",
     ["cell a(x) { y = conv(x)", "cell a(x) { y = conv(x) return y"]),
    ("a `repeat` block reads `repeat N as name { ... }`",
     ["cell a(x) { repeat b { b = conv(x) } }", "cell a(x) { repeat 3 b { b = conv(x) } }",
      "cell a(x) { repeat 3 as { b = conv(x) } }"]),
    ("`import` takes a quoted path: `import \"other.dpc\"`",
     ["import other", "import other.dpc"]),
    ("`let` must name a value: `let rates = {1, 3, 6}`",
     ["let = 3", "let rates {1, 3}", "let rates"]),
    ("statements go inside a cell; at the top level use `let`, `import` or `cell`",
     ["y = conv(x)", "return y"]),
    ("a trailing comma needs something after it, or remove it",
     ["cell a(x) { y = concat(x,, x) }"]),
]


_comments = threading.local()


def _collect_comment(token: Token) -> Token:
    getattr(_comments, "tokens", []).append(token)
    return token


def grammar_text() -> str:
    """The grammar: package data in a wheel, ``grammar/dpc.lark`` in a source tree."""
    packaged = resources.files("dpcdsl").joinpath("grammar/dpc.lark")
    if packaged.is_file():
        return packaged.read_text()
    return (SOURCE_ROOT / "grammar" / "dpc.lark").read_text()


@functools.cache
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True, lexer_callbacks={"COMMENT": _collect_comment})


def _raw_parse(text: str) -> Tree:
    return _parser().parse(text)


def parse(text: str, file: str = "<string>") -> ir.Module:
    """Parse ``.dpc`` text into a surface :class:`~dpcdsl.lang.ir.Module`.

    Raises :class:`~dpcdsl.errors.DpcError` (and nothing else) on a syntax error. A
    leading byte-order mark is read as a space (files lose it when read).
    """
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    _check_size(text, file)
    comments: list[Token] = []
    _comments.tokens = comments
    try:
        tree = _raw_parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, file) from None
    except (LarkError, RecursionError) as e:  # pragma: no cover - lark internal
        raise DpcError.at(ir.Span(file=file, line=1, column=1), f"cannot parse: {e}",
                          sources={file: text}, code="DPC100") from None
    finally:
        _comments.tokens = []
    with limits.stack_guard(ir.Span(file=file, line=1, column=1), "the text", {file: text}):
        try:
            module = _ToIR(file, text).transform(tree)
        except VisitError as e:  # lark wraps what a rule's method raised
            raise e.orig_exc from None
        return _attach_comments(module, comments)


# what the nesting scan skips: comments and quoted paths, whose brackets open nothing
_NOT_CODE = re.compile(r'#[^\n]*|"[^"\n]*"')


def _check_size(text: str, file: str) -> None:
    """Refuse, before lark runs, a text longer or more deeply nested than the limits:
    every later pass walks nesting recursively."""
    if len(text) > limits.MAX_SOURCE_BYTES:
        raise DpcError.at(ir.Span(file=file), f"the text is longer than "
                          f"{limits.MAX_SOURCE_BYTES:,} characters",
                          hint="dpcdsl.limits.MAX_SOURCE_BYTES sets this limit",
                          code=limits.CODE)
    if text.count("(") + text.count("{") <= limits.MAX_NESTING:
        return
    code = _NOT_CODE.sub(lambda m: " " * len(m.group()), text)
    depth = 0
    for i, c in enumerate(code):
        if c in "({":
            depth += 1
            if depth > limits.MAX_NESTING:
                line = code.count("\n", 0, i) + 1
                column = i - code.rfind("\n", 0, i)
                raise DpcError.at(
                    ir.Span(file=file, line=line, column=column, end_line=line,
                            end_column=column + 1),
                    f"brackets nest more than {limits.MAX_NESTING} deep here",
                    hint="name the inner part with `let` or an assignment; "
                         "dpcdsl.limits.MAX_NESTING sets this limit",
                    sources={file: text}, code=limits.CODE)
        elif c in ")}":
            depth = max(depth - 1, 0)


def _syntax_error(e: UnexpectedInput, text: str, file: str) -> DpcError:
    line = max(getattr(e, "line", 1) or 1, 1)
    column = max(getattr(e, "column", 1) or 1, 1)
    if isinstance(e, UnexpectedEOF) or getattr(e, "token", None) is not None and \
            getattr(e.token, "type", "") == "$END":
        lines = source_lines(text)
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        line, column = len(lines), len(lines[-1]) + 1
    message = _keyword_as_name(e, text, line, column) or _matching_example(e)
    if message is None:
        message = _generic_message(e)
    end = column + 1
    token = getattr(e, "token", None)
    if token is not None and getattr(token, "end_column", None) and token.line == line:
        end = token.end_column
    span = ir.Span(file=file, line=line, column=column, end_line=line, end_column=end)
    return DpcError([Diagnostic(span=span, message=f"syntax error: {message}", code="DPC100")],
                    sources={file: text})


#: words that start a statement, inside a cell or at the top level, so they cannot
#: name a node
STATEMENT_KEYWORDS = ("let", "repeat", "return", "import", "cell")


@functools.cache
def _example_errors() -> tuple[tuple[str, UnexpectedInput], ...]:
    """The error each snippet of :data:`SYNTAX_ERRORS` makes, parsed once (what the
    parser accepts there computed now, while its parser is at hand)."""
    found = []
    for label, snippets in SYNTAX_ERRORS:
        for snippet in snippets:
            try:
                _raw_parse(snippet)
            except UnexpectedInput as ut:
                if isinstance(ut, UnexpectedToken):
                    ut.accepts  # noqa: B018 - a lazy property: computed and kept
                found.append((label, ut))
    return tuple(found)


def _matching_example(e: UnexpectedInput) -> str | None:
    """The message of the example error that ``e`` matches, as lark's
    ``match_examples(..., use_accepts=True)`` decides it (the same parser state and,
    for a token, the same accepted tokens; an example at the same token wins), over
    example errors parsed once rather than at every error."""
    candidate = None
    for label, ut in _example_errors():
        if ut.state != e.state:
            continue
        if isinstance(e, UnexpectedToken) and isinstance(ut, UnexpectedToken) \
                and ut.accepts != e.accepts:
            continue
        if isinstance(e, UnexpectedToken | UnexpectedEOF) \
                and isinstance(ut, UnexpectedToken | UnexpectedEOF) and ut.token == e.token:
            return label
        if candidate is None:
            candidate = label
    return candidate


def _keyword_as_name(e: UnexpectedInput, text: str, line: int, column: int) -> str | None:
    """``let = relu(x)`` or ``import = relu(x)`` in a cell: the parser stops at ``=``
    or at the keyword; say that the word is a keyword."""
    token = getattr(e, "token", None)
    lines = source_lines(text)
    before = lines[line - 1][:column - 1].rstrip()
    if token is not None and str(token) in ("import", "cell"):
        word = [str(token)]
    elif token is not None and getattr(token, "type", "") == "EQUAL":
        word = re.findall(r"[A-Za-z_][A-Za-z0-9_]*$", before)
    else:
        return None
    if not word or word[0] not in STATEMENT_KEYWORDS:
        return None
    code = _NOT_CODE.sub("", "\n".join([*lines[:line - 1], before]))
    if code.count("{") <= code.count("}"):  # at the top level: `let = 3` lacks a name
        return None
    return f"`{word[0]}` is a keyword and cannot name a node; pick another name"


_TOKEN_NAMES = {
    "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`",
    "EQUAL": "`=`", "NAME": "a name", "INT": "an integer", "FLOAT": "a number",
    "STRING": "a quoted path", "$END": "the end of the file",
}


def _describe(tok: str) -> str:
    if tok in _TOKEN_NAMES:
        return _TOKEN_NAMES[tok]
    if tok.isupper() and not tok.startswith("__"):
        return f"`{tok.lower()}`"
    return tok


def _generic_message(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {e.char!r}"
    token = getattr(e, "token", None)
    expected = sorted({_describe(t) for t in (getattr(e, "expected", None) or ())})
    got = "the end of the file" if token is None or token.type == "$END" else f"`{token}`"
    if expected and len(expected) <= 6:
        return f"unexpected {got}; expected {' or '.join(expected)}"
    return f"unexpected {got}"


@dataclass(frozen=True)
class _Depth:
    """A cell's ``depth N``, until the cell takes it."""

    value: int


@v_args(meta=True)
class _ToIR(Transformer[Token, Any]):
    """The parse tree to surface IR: one method per rule of the grammar (lark calls the
    method named after each rule, with its children already made into IR). A rule
    without a method is an error, never a tree passed on unnoticed."""

    def __init__(self, file: str, text: str = "") -> None:
        super().__init__(visit_tokens=False)
        self.file = file
        self.text = text

    def __default__(self, data: str, children: list[Any], meta: Meta) -> Any:
        raise AssertionError(f"the grammar rule '{data}' makes no IR")

    def _span(self, meta: Meta) -> ir.Span | None:
        if getattr(meta, "empty", True):
            return None
        return ir.Span(file=self.file, line=meta.line, column=meta.column,
                       end_line=meta.end_line, end_column=meta.end_column)

    def _token_span(self, token: Token) -> ir.Span:
        return ir.Span(file=self.file, line=token.line or 0, column=token.column or 0,
                       end_line=token.end_line or 0, end_column=token.end_column or 0)

    def _integer(self, token: Token) -> int:
        """An integer literal, at most :data:`dpcdsl.limits.MAX_INT`."""
        digits = str(token).lstrip("0") or "0"
        if len(digits) > len(str(limits.MAX_INT)) or int(digits) > limits.MAX_INT:
            shown = digits if len(digits) <= 20 else f"{digits[:8]}... ({len(digits)} digits)"
            raise DpcError.at(self._token_span(token), f"the integer {shown} is too large",
                              hint=f"integers are at most {limits.MAX_INT:,}",
                              sources={self.file: self.text}, code=limits.CODE)
        return int(digits)

    # the top level and statements

    def start(self, meta: Meta, children: list[Any]) -> ir.Module:
        return ir.Module(items=tuple(children), span=self._span(meta))

    def import_stmt(self, meta: Meta, children: list[Any]) -> ir.Import:
        return ir.Import(path=str(children[0])[1:-1], span=self._span(meta))

    def let_stmt(self, meta: Meta, children: list[Any]) -> ir.Let:
        return ir.Let(name=str(children[0]), value=children[1], span=self._span(meta))

    def cell_def(self, meta: Meta, children: list[Any]) -> ir.CellDef:
        name, *rest = children
        depth = next((c.value for c in rest if isinstance(c, _Depth)), None)
        return ir.CellDef(
            name=str(name), params=tuple(c for c in rest if isinstance(c, ir.Param)),
            depth=depth, span=self._span(meta),
            body=tuple(c for c in rest if c is not None
                       and not isinstance(c, ir.Param | _Depth)))

    def depth(self, meta: Meta, children: list[Any]) -> _Depth:
        return _Depth(self._integer(children[0]))

    def param(self, meta: Meta, children: list[Any]) -> ir.Param:
        name, level, default = children
        return ir.Param(name=str(name), level=level, default=default, span=self._span(meta))

    def level(self, meta: Meta, children: list[Any]) -> ir.Level:
        stride, index = children
        return ir.Level(self._integer(stride), -1 if index is None else index)

    def pos_index(self, meta: Meta, children: list[Any]) -> int:
        return self._integer(children[0])

    def neg_index(self, meta: Meta, children: list[Any]) -> int:
        return -self._integer(children[0])

    def assign(self, meta: Meta, children: list[Any]) -> ir.Assign:
        return ir.Assign(target=str(children[0]), value=children[1], span=self._span(meta))

    def repeat(self, meta: Meta, children: list[Any]) -> ir.Repeat:
        count, name, *body = children
        return ir.Repeat(count=self._integer(count), name=str(name), body=tuple(body),
                         span=self._span(meta))

    def for_stmt(self, meta: Meta, children: list[Any]) -> ir.For:
        names = tuple(str(c) for c in children if isinstance(c, Token))
        items, *body = children[len(names):]
        return ir.For(names=names, items=items.items, body=tuple(body),
                      span=self._span(meta))

    def return_stmt(self, meta: Meta, children: list[Any]) -> ir.Return:
        return ir.Return(value=children[0], span=self._span(meta))

    # expressions

    def call(self, meta: Meta, children: list[Any]) -> ir.Call:
        args, kwargs = _split(children[1:])
        return ir.Call(func=str(children[0]), args=args, kwargs=kwargs,
                       span=self._span(meta))

    def one_of(self, meta: Meta, children: list[Any]) -> ir.OneOf:
        *options, applied = children
        return ir.OneOf(options=tuple(o for o in options if o is not None), apply=applied,
                        span=self._span(meta))

    def apply(self, meta: Meta, children: list[Any]) -> tuple[Any, ...]:
        args, kwargs = _split(children)
        return args + kwargs

    def kwarg(self, meta: Meta, children: list[Any]) -> ir.Kwarg:
        return ir.Kwarg(name=str(children[0]), value=children[1], span=self._span(meta))

    def tuple(self, meta: Meta, children: list[Any]) -> ir.Tuple:
        return ir.Tuple(items=tuple(c for c in children if c is not None),
                        span=self._span(meta))

    def set(self, meta: Meta, children: list[Any]) -> ir.SetLit:
        return ir.SetLit(items=tuple(c for c in children if c is not None),
                         span=self._span(meta))

    def int(self, meta: Meta, children: list[Any]) -> ir.Int:
        return ir.Int(value=self._integer(children[0]), span=self._span(meta))

    def float(self, meta: Meta, children: list[Any]) -> ir.Float:
        value = float(children[0])
        if not math.isfinite(value):  # 1e999: no finite float, and no text for inf
            raise DpcError.at(self._span(meta), f"the number {children[0]} is too large",
                              hint="numbers must be finite (at most about 1.8e308)",
                              sources={self.file: self.text}, code="DPC100")
        return ir.Float(value=value, span=self._span(meta))

    def true(self, meta: Meta, children: list[Any]) -> ir.Bool:
        return ir.Bool(value=True, span=self._span(meta))

    def false(self, meta: Meta, children: list[Any]) -> ir.Bool:
        return ir.Bool(value=False, span=self._span(meta))

    def earlier(self, meta: Meta, children: list[Any]) -> ir.Earlier:
        return ir.Earlier(span=self._span(meta))

    def channels_of(self, meta: Meta, children: list[Any]) -> ir.ChannelsOf:
        tensor, attr = children
        if str(attr) != "channels":
            raise DpcError.at(self._token_span(attr), f"a tensor has no attribute "
                              f"'{attr}'", hint=f"its width is {tensor}.channels",
                              sources={self.file: self.text}, code="DPC100")
        return ir.ChannelsOf(tensor=ir.Name(id=str(tensor), span=self._token_span(tensor)),
                             span=self._span(meta))

    def name(self, meta: Meta, children: list[Any]) -> ir.Name:
        return ir.Name(id=str(children[0]), span=self._span(meta))

    def _arith(self, op: str, meta: Meta, children: list[Any]) -> ir.Arith:
        return ir.Arith(op=op, left=children[0], right=children[1], span=self._span(meta))

    def add(self, meta: Meta, children: list[Any]) -> ir.Arith:
        return self._arith("+", meta, children)

    def sub(self, meta: Meta, children: list[Any]) -> ir.Arith:
        return self._arith("-", meta, children)

    def mul(self, meta: Meta, children: list[Any]) -> ir.Arith:
        return self._arith("*", meta, children)

    def floordiv(self, meta: Meta, children: list[Any]) -> ir.Arith:
        return self._arith("//", meta, children)


def _split(children: list[Any]) -> tuple[tuple[Any, ...], tuple[ir.Kwarg, ...]]:
    """A call's arguments: the positional ones, then the keyword ones."""
    args = tuple(c for c in children if c is not None and not isinstance(c, ir.Kwarg))
    return args, tuple(c for c in children if isinstance(c, ir.Kwarg))


def _statements(block: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for s in block:
        out.append(s)
        if isinstance(s, ir.BLOCKS):
            out.extend(_statements(s.body))
    return out


def _attach_comments(module: ir.Module, comments: list[Token]) -> ir.Module:
    """Give each statement its leading comments and its blank-line flag.

    A comment belongs to the first statement that starts after it; a comment inside a
    multi-line statement belongs to that statement; the rest trail the module.
    """
    lines_text = {c.line: str(c).rstrip() for c in comments}
    owned: dict[int, list[str]] = {}
    leftovers: list[str] = []
    anchors = [s for s in _statements(module.items) if s.span is not None]
    for line in sorted(lines_text):
        owner = next((s for s in anchors
                      if not isinstance(s, ir.BLOCKS)
                      and s.span.line <= line <= s.span.end_line), None)
        if owner is None:
            owner = next((s for s in anchors if s.span.line > line), None)
        if owner is None:
            leftovers.append(lines_text[line])
        else:
            owned.setdefault(id(owner), []).append(lines_text[line])

    def first_line(s: Any) -> int:
        own = [ln for ln, t in lines_text.items() if t in owned.get(id(s), ())]
        return min([s.span.line, *own]) if s.span else 0

    def fix(block: tuple[Any, ...]) -> tuple[Any, ...]:
        out = []
        prev_end: int | None = None
        for s in block:
            update: dict[str, Any] = {}
            if isinstance(s, ir.BLOCKS):
                update["body"] = fix(s.body)
            if id(s) in owned:
                update["comments"] = tuple(owned[id(s)])
            if prev_end is not None and s.span is not None:
                update["blank_before"] = first_line(s) - prev_end > 1
            prev_end = s.span.end_line if s.span else prev_end
            out.append(s.model_copy(update=update) if update else s)
        return tuple(out)

    return module.model_copy(update={"items": fix(module.items),
                                     "trailing_comments": tuple(leftovers)})
