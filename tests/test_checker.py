from pathlib import Path

import pytest

from dpcdsl.lang.checker import check, check_file
from dpcdsl.lang.program import load, load_text
from tests.conftest import EXAMPLES, GOLDEN


def render_all(path: Path, size=None) -> str:
    prog = load(path)
    return "\n".join(d.render(prog.sources) for d in check(prog, size)) + "\n"


def test_semantic_errors_golden(golden):
    """Every error the checker knows, in one file, all reported at once."""
    text = render_all(GOLDEN / "errors" / "semantic.dpc", size=(8, 8))
    golden("errors/semantic.txt", text.replace(str(GOLDEN), "GOLDEN"))


@pytest.mark.parametrize("fragment", [
    "empty set: a choice needs at least one value",
    "a set lists the same value twice",
    "unknown op 'sepcov'. Did you mean 'sepconv'?",
    "expected a positive integer n or a pair (h, w), got (1, 0)",
    "undefined name 'zz'",
    "kernel must be odd",
    "'q' is used before it is defined",
    "'conv' has no argument 'kernal'. Did you mean 'kernel'?",
    "'q' is defined twice",
    "'b' is a repeat of several branches",
    "pool(mode = reference) uses the DeepLab window, which needs the crop size",
    "`earlier` is only meaningful as an option of one_of",
    "expected a number in [0, 1), got 1.5",
    "cell 'rec' calls itself but has no depth bound",
    "recursive cell 'nobase' has no base case",
    "cell 'noreturn' has no `return`",
    "the pooling window 4x16 is larger than the 8x8 feature map",
])
def test_each_error_is_reported(fragment):
    assert fragment in render_all(GOLDEN / "errors" / "semantic.dpc", size=(8, 8))


def test_errors_have_file_line_col_and_caret():
    out = render_all(GOLDEN / "errors" / "semantic.dpc").splitlines()
    first = out[0]
    assert first.endswith("semantic.dpc:2:13: error: empty set: a choice needs at least one "
                          "value [DPC402]")
    assert out[1] == "  let empty = {}" and out[2] == "              ^^"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.dpc")), ids=lambda p: p.name)
def test_examples_are_clean(path):
    assert check_file(path) == []


def test_imports_missing_and_cyclic(tmp_path):
    (tmp_path / "a.dpc").write_text('import "b.dpc"\ncell a(x) { return b(x) }\n')
    (tmp_path / "b.dpc").write_text('import "a.dpc"\ncell b(x) { return conv(x) }\n')
    (tmp_path / "c.dpc").write_text('import "nope.dpc"\ncell c(x) { return conv(x) }\n')
    msgs = [d.message for d in check_file(tmp_path / "a.dpc")]
    assert msgs == ["cyclic import: a.dpc -> b.dpc -> a.dpc"]
    missing = check_file(tmp_path / "c.dpc")
    assert missing[0].message.startswith('cannot import "nope.dpc": no such file')
    assert (missing[0].span.line, missing[0].span.column) == (1, 1)


def test_import_brings_cells_and_lets(tmp_path):
    (tmp_path / "lib.dpc").write_text("let r = {1, 2}\ncell blk(x) { return sepconv(x, rate = r) }\n")
    (tmp_path / "main.dpc").write_text('import "lib.dpc"\ncell m(x) { return blk(x) }\n')
    assert check_file(tmp_path / "main.dpc") == []


def test_syntax_errors_in_imports_name_the_imported_file(tmp_path):
    (tmp_path / "lib.dpc").write_text("cell blk(x) { return conv(x, }\n")
    (tmp_path / "main.dpc").write_text('import "lib.dpc"\ncell m(x) { return conv(x) }\n')
    diags = check_file(tmp_path / "main.dpc")
    assert diags and diags[0].span.file.endswith("lib.dpc")


def test_mutual_recursion_is_rejected():
    prog = load_text("cell a(x) depth 2 { return one_of(conv(x), b(x)) }\n"
                     "cell b(x) depth 2 { return one_of(conv(x), a(x)) }\n")
    assert any("call each other" in d.message for d in check(prog))


def test_every_diagnostic_has_a_stable_code():
    from dpcdsl.errors import CODES

    diags = check_file(GOLDEN / "errors" / "semantic.dpc")
    assert diags and all(d.code in CODES for d in diags)
    codes = {d.message.split(":")[0]: d.code for d in diags}
    assert codes["undefined name 'zz'"] == "DPC201"
    assert all(d.as_json()["code"] == d.code for d in diags)


def test_an_unknown_code_is_refused():
    from pydantic import ValidationError

    from dpcdsl.errors import Diagnostic, Span

    with pytest.raises(ValidationError, match="unknown diagnostic code"):
        Diagnostic(span=Span(), message="m", code="DPC999")


def test_a_tensor_input_named_channels_is_an_error():
    diags = check(load_text("cell a(channels) { return conv(channels) }"))
    assert [(d.code, d.message) for d in diags] == \
        [("DPC501", "'channels' is the cell's channel count, not a tensor input")]


def test_a_channel_mismatch_is_a_check_error_when_no_input_can_fix_it():
    text = ("cell a(x) {\n  p = conv(x, channels = 64)\n  q = conv(x, channels = 32)\n"
            "  return sum(p, q)\n}\n"
            "cell b(x) { return sum(x, conv(x, channels = 32)) }\n")
    diags = check(load_text(text))
    assert [(d.code, d.span.line, d.message) for d in diags] == [
        ("DPC601", 4, "node 'out': sum of inputs with different channel counts [64, 32]")]


def test_the_old_bn_and_relu_flags_name_their_new_spelling():
    diags = check(load_text("cell a(x) { return sepconv(x, bn = false, relu = false) }"))
    assert [(d.code, d.message, d.hint) for d in diags] == [
        ("DPC302", "'sepconv' has no argument 'bn'",
         "it is now norm = bn | gn | none (bn = false is norm = none)"),
        ("DPC302", "'sepconv' has no argument 'relu'",
         "it is now act = relu | relu6 | sigmoid | hardsigmoid | hardswish | gelu | none "
         "(relu = false is act = none)")]


@pytest.mark.parametrize("arg, value, expected", [
    ("act", "sigmod", "expected one of relu, relu6, sigmoid, hardsigmoid, hardswish, gelu, "
                      "none, got 'sigmod'. Did you mean 'sigmoid'?"),
    ("norm", "{bn, layer}", "expected one of bn, gn, none, got 'layer'"),
    ("bias", "1", "expected true or false, got 1"),
    ("groups", "0", "expected a positive integer, got 0"),
])
def test_norm_act_and_bias_values_are_checked(arg, value, expected):
    diags = check(load_text(f"cell a(x) {{ return conv(x, {arg} = {value}) }}"))
    assert [(d.code, d.message) for d in diags] == [
        ("DPC401", f"conv({arg} = ...): {expected}")]


def test_groupnorm_groups_must_divide_the_channels():
    text = ("cell a(x, channels = 24) {\n  y = conv(x, norm = gn, groups = 8)\n"
            "  return sepconv(y, norm = gn, groups = 16)\n}\n")
    diags = check(load_text(text))
    assert [(d.code, d.span.line, d.message) for d in diags] == [
        ("DPC601", 3, "node 'out': GroupNorm of 24 channels in 16 groups: the channels must "
                      "be a multiple of the groups")]


def test_input_strides_are_checked():
    diags = check(load_text("cell d(a @ 3, b @ 4, c @ 8 = 2) { return concat(a, b) }"))
    assert [(d.code, d.message) for d in diags] == [
        ("DPC501", "input 'a' @ 3: a backbone stride is one of 1, 2, 4, 8, 16, 32"),
        ("DPC501", "'c' has a default, so it is a parameter; only a tensor input reads "
                   "features at a stride")]


CALLED = """cell b(x, kernel = 3, p = 0.1, grid = 1, act = relu, channels = 8) {{
  return dropout(pool(conv(x, kernel = kernel, act = act), grid = (grid, grid)), p = p)
}}
cell c(x, k = 3) {{ return b(x, kernel = k) }}
cell a(x) {{ return {call} }}
"""


@pytest.mark.parametrize("call, expected", [
    ("b(x, kernel = reference)", "b(kernel = ...): expected a positive integer, got "
                                 "reference (the cell passes it to conv's `kernel`)"),
    ("b(x, kernel = 2.5)", "b(kernel = ...): expected a positive integer, got 2.5"),
    ("b(x, kernel = {3, 4})", "b(kernel = ...): kernel must be odd for SAME padding, got 4"),
    ("b(x, grid = reference)", "b(grid = ...): expected a positive integer, got reference "
                               "(the cell passes it to pool's `grid`)"),
    ("b(x, act = paper)", "b(act = ...): expected one of relu, relu6, sigmoid, hardsigmoid, "
                          "hardswish, gelu, none, got paper"),
    ("b(x, p = 2.0)", "b(p = ...): expected a number in [0, 1), got 2"),
    ("b(x, channels = 0)", "b(channels = ...): expected a positive integer, got 0 (the cell "
                           "passes it to every conv's `channels`)"),
    ("b(x, channels = 1.5)", "b(channels = ...): expected a positive integer, got 1.5"),
    ("c(x, k = 2)", "c(k = ...): kernel must be odd for SAME padding, got 2 (the cell "
                    "passes it to conv's `kernel`)"),
])
def test_values_passed_to_a_cell_get_the_checks_of_the_ops_that_use_them(call, expected):
    diags = check(load_text(CALLED.format(call=call)))
    assert len(diags) == 1 and diags[0].code == "DPC401" and expected in diags[0].message


def test_good_values_passed_to_a_cell_pass():
    assert not check(load_text(CALLED.format(call="b(x, kernel = {1, 5}, grid = 2, "
                                                  "act = gelu, p = 0.5, channels = 16)")))


@pytest.mark.parametrize("text", [
    "cell a(x) { return one_of(x, x) }",
    "cell a(x) { return one_of(conv(kernel = 1), conv(kernel = {1, 3}))(x) }",
    "cell a(x) { return one_of(relu(conv(x)), relu(conv(x, kernel = 1))) }",
    "cell a(x) { return one_of(sepconv(x, rate = 2), sepconv(x, rate = (2, {2, 3}))) }",
    "cell a(x) { return one_of(relu(x), one_of(gelu(x), relu(x))) }",
    "cell h(x, k = 1) { return conv(x, kernel = k) }\n"
    "cell a(x) { return one_of(h(x), h(x, k = {1, 3})) }",
])
def test_one_of_options_that_can_make_the_same_architecture_are_refused(text):
    from dpcdsl.lang.program import load_text

    diags = check(load_text(text, "f.dpc"))
    assert [d.code for d in diags] == ["DPC306"]
    assert "can make the same architecture" in diags[0].message


@pytest.mark.parametrize("text", [
    "cell a(x) { return one_of(conv(kernel = 3), conv(kernel = {1, 5}))(x) }",
    "cell a(x) { return one_of(sepconv(x, rate = 2), sepconv(x, rate = (3, {2, 3}))) }",
    "cell a(x) { return one_of(relu(x), one_of(sigmoid(x), gelu(x))) }",
    "cell a(x) { return one_of(conv(x), conv(relu(x))) }",
])
def test_one_of_options_that_differ_are_accepted(text):
    from dpcdsl.lang.program import load_text

    assert check(load_text(text, "f.dpc")) == []


@pytest.mark.parametrize("text, name", [
    ("cell a(x) {\n  out = relu(x)\n  return one_of(conv(out), sepconv(out))\n}", "out"),
    ("cell a(x) {\n  y = relu(one_of(conv(x), pool(x)))\n  y_conv = relu(x)\n"
     "  return sum(y, y_conv)\n}", "y_conv"),
    ("cell a(x) {\n  repeat 2 as b {\n    t = relu(x)\n    b = conv(t)\n  }\n"
     "  b1_t = relu(x)\n  return concat(b, b1_t)\n}", "b1_t"),
])
def test_a_name_that_a_generated_name_can_clash_with_is_a_check_error(text, name):
    """Found by check, in a space, before a sample that makes both names is built."""
    from dpcdsl.lang.program import load_text

    diags = check(load_text(text, "f.dpc"))
    assert [d.code for d in diags] == ["DPC203"] and f"'{name}' is a name made up" in \
        diags[0].message
    fixed = text.replace(name, "renamed")
    assert check(load_text(fixed, "f.dpc")) == []


@pytest.mark.parametrize("value", ["2.56", "0", "reference", "{4, 0}"])
def test_the_cells_own_channels_meets_the_check_of_every_conv(value):
    from dpcdsl.lang.program import load_text

    diags = check(load_text(f"cell m(x, channels = {value}) {{ return conv(x) }}", "f.dpc"))
    assert [d.code for d in diags] == ["DPC401"] and "m(channels = ...)" in diags[0].message


def test_a_one_value_tuple_is_a_square_pair_and_prints_back():
    from dpcdsl.lang.space import Space

    cell = Space.from_text("cell m(x) { return pool(x, grid = (2,)) }").concrete()
    assert cell.nodes[0].attr("grid") == (2, 2)
    assert Space.from_text(cell.canonical_text()).concrete() == cell


def test_architectures_of_a_space_that_do_not_fit_are_warned_with_their_share():
    from dpcdsl.lang.checker import checked, errors
    from dpcdsl.lang.program import load_text

    small = ("cell w(x, channels = 8) {\n  a = one_of(conv(x), conv(x, channels = 16))\n"
             "  return sum(a, conv(x))\n}\n")
    diags = check(load_text(small, "f.dpc"))
    assert [(d.severity, d.code, d.span.line) for d in diags] == [("warning", "DPC601", 3)]
    assert diags[0].message.startswith("1 of its 2 architectures fail here, e.g. node 'out'")
    assert errors(diags) == [] and checked(load_text(small, "f.dpc"))  # a warning only
    big = ("cell s(x, channels = 8) {\n  repeat 4 as b {\n    b = one_of(conv(kernel = 1), "
           "conv(kernel = 3, channels = 4))(one_of(x, earlier))\n  }\n  return sum(b)\n}\n")
    (d,) = check(load_text(big, "f.dpc"))
    assert d.severity == "warning" and "of 64 sampled architectures (about" in d.message
    assert "f.dpc:5:10: warning:" in d.render()


def test_rates_that_read_only_padding_at_the_size_are_a_warning():
    """On 16x16 features (the demo's), every rate of 16 and up is one computation."""
    prog = load_text("let rates = {1, 6, 18, 21}\n"
                     "cell c(x) {\n"
                     "  a = sepconv(x, rate = (rates, 3))\n"
                     "  b = conv(x, rate = 40)\n"
                     "  d = conv(x, kernel = 3, rate = (2, 16))\n"
                     "  return concat(a, b, d)\n"
                     "}\n", "pad.dpc")
    diags = check(prog, (16, 16))
    assert [(d.severity, d.span.line) for d in diags] == [("warning", 3), ("warning", 5)]
    assert "rates (h 18, 21) are at least the 16x16 feature map" in diags[0].message
    assert "rates (w 16)" in diags[1].message  # a 1x1 conv (line 4) has no taps to lose
    assert check(prog) == [] and check(prog, (64, 64)) == []


def test_a_statement_the_checker_has_no_rule_for_is_an_error_not_skipped():
    import dataclasses

    from dpcdsl.lang import ir

    prog = load_text("cell a(x) { y = conv(x) return y }")
    cell = prog.cells["a"]
    odd = cell.model_copy(update={"body": (ir.Import(path="x.dpc"), *cell.body)})
    module = prog.module.model_copy(update={"items": (odd,)})
    with pytest.raises(TypeError, match="no rule for a Import statement"):
        check(dataclasses.replace(prog, module=module, cells={"a": odd}, checks={}))
