import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcdsl.errors import DpcError
from dpcdsl.lang.syntax import SYNTAX_ERRORS, parse
from tests.conftest import EXAMPLES


def test_every_catalogue_entry_is_named(golden):
    """The error catalogue is its own test data: each snippet gets its message."""
    lines = []
    for message, snippets in SYNTAX_ERRORS:
        for snippet in snippets:
            with pytest.raises(DpcError) as info:
                parse(snippet, "snippet.dpc")
            text = info.value.render()
            assert message in text, (snippet, text)
            lines.append(f"$ {snippet}\n{text}\n")
    golden("errors/syntax.txt", "\n".join(lines))


def test_positions_are_kept():
    m = parse("cell a(x) {\n  y = conv(x, kernel = 1)\n  return y\n}\n", "f.dpc")
    assign = m.items[0].body[0]
    assert (assign.span.file, assign.span.line, assign.span.column) == ("f.dpc", 2, 3)
    call = assign.value
    assert (call.span.line, call.span.column, call.span.end_column) == (2, 7, 26)


def test_syntax_error_points_at_the_token():
    with pytest.raises(DpcError) as info:
        parse("cell a(x) {\n  y = conv(x, , 1)\n}", "f.dpc")
    d = info.value.diagnostics[0]
    assert (d.span.line, d.span.column) == (2, 15)
    assert info.value.render().splitlines()[2] == "  " + " " * 14 + "^"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_raises_only_dpc_errors_on_any_text(text):
    try:
        parse(text)
    except DpcError:
        pass


ALPHABET = list("cell xy(){}=,#\n\"0123456789_one_ofrepeatasearlier.{}") + [
    "cell", "let", "one_of", "repeat", "earlier", "return", "(", ")", "{", "}", "=", ","]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=40))
def test_parser_raises_only_dpc_errors_on_token_soup(tokens):
    try:
        parse(" ".join(tokens))
    except DpcError:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("part", range(4))
def test_fuzz_50k_mutated_examples(part):
    """50,000 mutations of the real examples (the fuzz harness's mutations), in four
    parts of 12,500 that run in parallel: the parser raises only DpcError, never a
    crash. (benchmarks/fuzz_dsl.py runs 100,000 through every stage, not only the
    parser.)"""
    from tests.test_fuzz import fuzz_dsl

    rng = random.Random(1234 + part)
    seeds = [p.read_text() for p in sorted(EXAMPLES.glob("*.dpc"))]
    ok = errors = 0
    for _ in range(12_500):
        try:
            parse(fuzz_dsl.mutate(rng, rng.choice(seeds)))
            ok += 1
        except DpcError:
            errors += 1
    assert ok + errors == 12_500 and errors > 125 and ok > 12


@pytest.mark.slow
def test_a_number_too_large_for_a_float_is_refused_with_its_place():
    from dpcdsl.errors import DpcError

    with pytest.raises(DpcError) as e:
        parse("let big = 1e999\n", "f.dpc")
    assert e.value.diagnostics[0].message == "the number 1e999 is too large"
    assert (e.value.diagnostics[0].span.line, e.value.diagnostics[0].span.column) == (1, 11)


def test_an_input_may_say_its_stride_and_it_prints_back():
    from dpcdsl.lang.printer import format_module
    from dpcdsl.lang.space import Space

    text = "cell d(context @ 16, low @ 4, channels = 8) {\n  return concat(context, low)\n}\n"
    module = parse(text)
    cell = module.cells["d"]
    assert [(p.name, p.level) for p in cell.params] == [("context", (16, -1)),
                                                        ("low", (4, -1)), ("channels", None)]
    assert format_module(module) == text
    concrete = Space.from_text(text).concrete()
    assert concrete.strides == (16, 4)
    assert Space.from_text(concrete.canonical_text()).concrete() == concrete
    plain = Space.from_text(text.replace(" @ 16", "").replace(" @ 4", "")).concrete()
    assert plain.strides == () and "@" not in plain.canonical_text()


def test_an_input_may_say_which_map_of_a_stride_it_reads():
    """`@ 16[0]` is the first of the backbone's maps at stride 16, `@ 16[-2]` the one
    before the deepest; the index survives formatting, expansion and canonical text."""
    from dpcdsl.lang.printer import format_module
    from dpcdsl.lang.space import Space

    text = ("cell v(a @ 16[0], b @ 16[-2], c @ 16, channels = 8) {\n"
            "  return concat(a, b, c)\n}\n")
    module = parse(text)
    assert [p.level for p in module.cells["v"].params[:3]] == [(16, 0), (16, -2), (16, -1)]
    assert format_module(module) == text
    concrete = Space.from_text(text).concrete()
    assert concrete.levels == ((16, 0), (16, -2), (16, -1)) and concrete.strides == (16,) * 3
    assert "a @ 16[0], b @ 16[-2], c @ 16," in concrete.canonical_text()
    assert Space.from_text(concrete.canonical_text()).concrete() == concrete


def test_every_grammar_rule_makes_ir_and_an_unknown_one_is_an_error():
    """The transformer has one method per rule that reaches it (the `?` rules inline
    into their child); a rule it does not know is an error, not a tree passed on."""
    from lark import Tree

    from dpcdsl.lang.syntax import _parser, _ToIR

    origins = {r.alias or r.origin.name for r in _parser().rules}
    kept = {str(o) for o in origins if not str(o).startswith(("_", "__"))}
    inlined = {str(r.origin.name) for r in _parser().rules if r.options.expand1}
    assert kept - inlined <= {n for n in dir(_ToIR) if not n.startswith("_")}
    with pytest.raises(AssertionError, match="the grammar rule 'mystery' makes no IR"):
        _ToIR("f.dpc").transform(Tree("mystery", []))
