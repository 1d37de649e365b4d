"""Text -> surface IR. The grammar (``grammar/dpc.lark``) is the reference; this module
only transforms lark's tree into IR nodes that keep their spans, and turns lark's
errors into :class:`~dpcdsl.errors.DpcError` with a caret and a plain message."""

from __future__ import annotations

import functools
import math
import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from dpcdsl import ir, limits
from dpcdsl.errors import Diagnostic, DpcError, source_lines

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
    return (Path(__file__).resolve().parent.parent / "grammar" / "dpc.lark").read_text()


@functools.cache
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True, lexer_callbacks={"COMMENT": _collect_comment})


def _raw_parse(text: str) -> Tree:
    return _parser().parse(text)


def parse(text: str, file: str = "<string>") -> ir.Module:
    """Parse ``.dpc`` text into a surface :class:`~dpcdsl.ir.Module`.

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
    builder = _Builder(file, text)
    with limits.stack_guard(ir.Span(file=file, line=1, column=1), "the text", {file: text}):
        module = builder.module(tree)
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
    message = _keyword_as_name(e, text, line, column) or \
        e.match_examples(_raw_parse, SYNTAX_ERRORS, use_accepts=True)
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


class _Builder:
    def __init__(self, file: str, text: str = "") -> None:
        self.file = file
        self.text = text

    def span(self, tree: Tree | Token) -> ir.Span | None:
        if isinstance(tree, Token):
            return ir.Span(file=self.file, line=tree.line or 0, column=tree.column or 0,
                           end_line=tree.end_line or 0, end_column=tree.end_column or 0)
        m = tree.meta
        if getattr(m, "empty", True):
            return None
        return ir.Span(file=self.file, line=m.line, column=m.column,
                       end_line=m.end_line, end_column=m.end_column)

    def integer(self, token: Token) -> int:
        """An integer literal, at most :data:`dpcdsl.limits.MAX_INT`."""
        digits = str(token).lstrip("0") or "0"
        if len(digits) > len(str(limits.MAX_INT)) or int(digits) > limits.MAX_INT:
            shown = digits if len(digits) <= 20 else f"{digits[:8]}... ({len(digits)} digits)"
            raise DpcError.at(self.span(token), f"the integer {shown} is too large",
                              hint=f"integers are at most {limits.MAX_INT:,}",
                              sources={self.file: self.text}, code=limits.CODE)
        return int(digits)

    def module(self, tree: Tree) -> ir.Module:
        return ir.Module(items=tuple(self.item(c) for c in tree.children),
                         span=self.span(tree))

    def item(self, t: Tree) -> Any:
        if t.data == "import_stmt":
            return ir.Import(path=str(t.children[0])[1:-1], span=self.span(t))
        if t.data == "let_stmt":
            return self.stmt(t)
        return self.cell(t)

    def cell(self, t: Tree) -> ir.CellDef:
        children = list(t.children)
        name = children[0]
        params = [c for c in children[1:] if isinstance(c, Tree) and c.data == "param"]
        depth_tree = next((c for c in children if isinstance(c, Tree) and c.data == "depth"),
                          None)
        stmts = [c for c in children[1:] if isinstance(c, Tree)
                 and c.data not in ("param", "depth")]
        return ir.CellDef(
            name=str(name),
            params=tuple(
                ir.Param(name=str(p.children[0]),
                         stride=None if p.children[1] is None else self.integer(p.children[1]),
                         default=None if p.children[2] is None else self.expr(p.children[2]),
                         span=self.span(p))
                for p in params
            ),
            depth=self.integer(depth_tree.children[0]) if depth_tree is not None else None,
            body=tuple(self.stmt(s) for s in stmts),
            span=self.span(t),
        )

    def stmt(self, t: Tree) -> Any:
        span = self.span(t)
        if t.data == "let_stmt":
            return ir.Let(name=str(t.children[0]), value=self.expr(t.children[1]), span=span)
        if t.data == "assign":
            return ir.Assign(target=str(t.children[0]), value=self.expr(t.children[1]),
                             span=span)
        if t.data == "repeat":
            count, name, *body = t.children
            return ir.Repeat(count=self.integer(count), name=str(name),
                             body=tuple(self.stmt(s) for s in body), span=span)
        if t.data == "return_stmt":
            return ir.Return(value=self.expr(t.children[0]), span=span)
        raise AssertionError(t.data)  # pragma: no cover - the grammar has no other

    def args(self, children: list[Any]) -> tuple[tuple[Any, ...], tuple[ir.Kwarg, ...]]:
        args, kwargs = [], []
        for c in children:
            if c is None:
                continue
            e = self.expr(c)
            (kwargs if isinstance(e, ir.Kwarg) else args).append(e)
        return tuple(args), tuple(kwargs)

    def expr(self, t: Tree | Token) -> Any:
        span = self.span(t)
        if isinstance(t, Token):  # pragma: no cover - every atom is aliased
            return ir.Name(id=str(t), span=span)
        d = t.data
        if d == "int":
            return ir.Int(value=self.integer(t.children[0]), span=span)
        if d == "float":
            value = float(t.children[0])
            if not math.isfinite(value):  # 1e999: no finite float, and no text for inf
                raise DpcError.at(span, f"the number {t.children[0]} is too large",
                                  hint="numbers must be finite (at most about 1.8e308)",
                                  sources={self.file: self.text}, code="DPC100")
            return ir.Float(value=value, span=span)
        if d in ("true", "false"):
            return ir.Bool(value=d == "true", span=span)
        if d == "earlier":
            return ir.Earlier(span=span)
        if d == "name":
            return ir.Name(id=str(t.children[0]), span=span)
        if d == "kwarg":
            return ir.Kwarg(name=str(t.children[0]), value=self.expr(t.children[1]),
                            span=span)
        if d == "call":
            args, kwargs = self.args(t.children[1:])
            return ir.Call(func=str(t.children[0]), args=args, kwargs=kwargs, span=span)
        if d == "one_of":
            *options, apply = t.children
            applied = None
            if apply is not None:
                a_args, a_kwargs = self.args(apply.children)
                applied = a_args + a_kwargs
            return ir.OneOf(options=tuple(self.expr(o) for o in options if o is not None),
                            apply=applied, span=span)
        if d == "tuple":
            return ir.Tuple(items=tuple(self.expr(c) for c in t.children if c is not None),
                            span=span)
        if d == "set":
            return ir.SetLit(items=tuple(self.expr(c) for c in t.children if c is not None),
                             span=span)
        if d == "expr":  # pragma: no cover
            return self.expr(t.children[0])
        raise AssertionError(d)  # pragma: no cover


def _statements(block: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for s in block:
        out.append(s)
        if isinstance(s, ir.CellDef | ir.Repeat):
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
                      if not isinstance(s, ir.CellDef | ir.Repeat)
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
            if isinstance(s, ir.CellDef | ir.Repeat):
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
