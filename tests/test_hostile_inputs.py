"""Each root cause an independent fuzz of the language found, as its reproducer: the
input gives a clear, located error (or now works), never a traceback, a hang, an
allocation past the machine, or another file's content in the output."""

import os
import subprocess
import sys
import time

import pytest

from dpcdsl import limits
from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost, infer
from dpcdsl.lang.checker import check
from dpcdsl.lang.program import load, load_text
from dpcdsl.lang.space import Space

MAIN = "cell main(x) {\n  return conv(x, kernel = 1)\n}\n"
SECRET = "dpcdsl-test-secret-7f3a"


def dpcc(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, **(env or {})})


def messages(text: str, file: str = "t.dpc", **kw) -> list[str]:
    return [d.render({file: text}) for d in check(load_text(text, file, **kw))]


# ------------------------------------------------------------------ files and imports
def test_an_import_of_a_symlink_loop_is_a_located_error(tmp_path):
    (tmp_path / "loop.dpc").symlink_to("loop.dpc")
    main = tmp_path / "main.dpc"
    main.write_text('import "loop.dpc"\n' + MAIN)
    diags = check(load(main))
    assert [(d.code, d.span.line) for d in diags] == [("DPC110", 1)]
    assert "loop of symbolic links" in diags[0].message
    r = dpcc("check", main)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "loop of symbolic links" in r.stderr


def test_a_symlink_loop_as_the_main_file_is_a_clear_error(tmp_path):
    (tmp_path / "loop.dpc").symlink_to("loop.dpc")
    r = dpcc("check", tmp_path / "loop.dpc")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot read the source file" in r.stderr


@pytest.mark.parametrize("how", ["import", "main file", "link as main file"])
def test_no_error_echoes_the_environment(tmp_path, how):
    """A .dpc name that links to /proc/self/environ is refused before it is read:
    nothing of the process environment reaches the output."""
    (tmp_path / "env.dpc").symlink_to("/proc/self/environ")
    main = tmp_path / "main.dpc"
    main.write_text('import "env.dpc"\n' + MAIN)
    target = {"import": main, "main file": "/proc/self/environ",
              "link as main file": tmp_path / "env.dpc"}[how]
    r = dpcc("check", target, env={"DPCDSL_SECRET": SECRET})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert "environ" in r.stderr  # it says what the name reaches
    if how == "import":
        assert "main.dpc:1:1: error: cannot import \"env.dpc\": it links to a file named " \
               "'environ'" in r.stderr
    else:
        assert "not a .dpc file" in r.stderr


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.dpc")
    main = tmp_path / "main.dpc"
    main.write_text('import "pipe.dpc"\n' + MAIN)
    for target in (main, tmp_path / "pipe.dpc"):  # imported, and as the main file
        r = dpcc("check", target)  # a hang would be the subprocess timeout
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "not a regular file (a pipe, device or folder)" in r.stderr


def test_check_on_a_task_file_says_it_is_not_a_dpc_file(tmp_path):
    task = tmp_path / "task.toml"
    task.write_text('[dataset]\nformat = "synthetic"\n')
    r = dpcc("check", task)
    assert r.returncode == 1
    assert "error: not a .dpc file" in r.stderr and "a task file goes to --task" in r.stderr


def test_a_byte_order_mark_is_read_as_nothing(tmp_path):
    f = tmp_path / "bom.dpc"
    f.write_bytes(b"\xef\xbb\xbf" + MAIN.encode())
    assert check(load(f)) == []
    assert Space.from_file(f).count() == 1
    assert messages("\ufeff" + MAIN) == []  # text given through the API


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("text", [
    "let f = 3\ncell f(x) {\n  return x\n}\n" + MAIN,
    "cell f(x) {\n  return x\n}\nlet f = 3\n" + MAIN,
    "let main = 3\n" + MAIN,
])
def test_a_let_and_a_cell_of_one_name_are_a_located_error(text):
    diags = check(load_text(text, "t.dpc"))
    assert [d.code for d in diags] == ["DPC110"]
    assert "is defined twice (first at t.dpc:" in diags[0].message


@pytest.mark.parametrize("name", ["depth", "as"])
def test_words_that_are_keywords_only_after_a_cell_header_can_name_nodes(name):
    text = f"cell m(x) {{\n  a = relu(x)\n  {name} = relu(a)\n  return {name}\n}}\n"
    assert messages(text) == []
    cell = Space.from_text(text).concrete()
    assert Space.from_text(cell.canonical_text()).concrete() == cell


@pytest.mark.parametrize("name", ["import", "cell"])
def test_a_keyword_after_a_statement_is_named_as_such(name):
    text = f"cell m(x) {{\n  a = relu(x)\n  {name} = relu(a)\n  return {name}\n}}\n"
    with pytest.raises(DpcError, match=f"`{name}` is a keyword and cannot name a node"):
        load_text(text)


@pytest.mark.parametrize("name, code, message", [
    ("let", "DPC100", "syntax error: `let` is a keyword and cannot name a node"),
    ("repeat", "DPC100", "syntax error: `repeat` is a keyword and cannot name a node"),
    ("return", "DPC100", "syntax error: `return` is a keyword and cannot name a node"),
    ("import", "DPC204", "'import' is a built-in name; pick another"),
    ("cell", "DPC204", "'cell' is a built-in name; pick another"),
    ("one_of", "DPC204", "'one_of' is a built-in name; pick another"),
    ("earlier", "DPC204", "'earlier' is a built-in name; pick another"),
    ("true", "DPC204", "'true' is a built-in name; pick another"),
])
def test_words_of_the_language_cannot_name_nodes(name, code, message):
    text = f"cell m(x) {{\n  {name} = relu(x)\n  return relu(x)\n}}\n"
    try:
        diags = check(load_text(text, "t.dpc"))
    except DpcError as e:
        diags = e.diagnostics
    assert (diags[0].code, diags[0].span.line) == (code, 2)
    assert diags[0].message.startswith(message)


# ------------------------------------------------------------------ sizes of the work
def test_channels_past_the_limit_are_refused_where_they_are_written():
    text = "cell m(x) {\n  return conv(x, kernel = 1, channels = 2147483647)\n}\n"
    assert messages(text) == [
        "t.dpc:2:41: error: conv(channels = ...): expected 1 to 1,048,576 channels, got "
        "2,147,483,647 [DPC401]\n"
        "    return conv(x, kernel = 1, channels = 2147483647)\n"
        "                                          ^^^^^^^^^^"]
    [m] = messages("cell m(x, channels = 2000000) {\n  return pool(x)\n}\n")
    assert m.startswith("t.dpc:1:22: error: m(channels = ...): expected 1 to 1,048,576 channels")


def test_an_architecture_of_262_gb_is_refused_before_any_backend_allocates_it():
    """Each conv is within the channel limit; together they need 262 GB."""
    text = ("cell m(x) {\n  repeat 200 as b {\n    b = conv(x, kernel = 3, channels = 60000)\n"
            "  }\n  return concat(b)\n}\n")
    cell = Space.from_text(text).concrete()
    with pytest.raises(DpcError, match=r"needs [\d,]+ weights \([\d.,]+ GB as float32\), "
                                       r"more than 1,000,000,000") as e:
        infer(cell, 2048)
    assert e.value.diagnostics[0].code == limits.CODE
    assert e.value.diagnostics[0].span.line == 3  # the node that crosses the limit
    import dpcdsl

    start = time.perf_counter()
    with pytest.raises(DpcError, match="weights"):
        dpcdsl.compile(cell, backend="torch", in_channels=2048)
    assert time.perf_counter() - start < 30  # refused, not allocated and then refused


def test_activations_past_the_limit_are_refused_with_the_size():
    text = ("cell m(x) {\n  repeat 40 as b {\n    b = conv(x, kernel = 1, channels = 60000)\n"
            "  }\n  return concat(b)\n}\n")
    cell = Space.from_text(text).concrete()
    with pytest.raises(DpcError, match="values for one image"):
        cost(cell, 8, (1000, 1000))


@pytest.mark.parametrize("channels, size, message", [
    (0, (65, 129), "the channels of input 'x' must be a positive integer, got 0"),
    (-3, (65, 129), "the channels of input 'x' must be a positive integer, got -3"),
    (True, (65, 129), "must be a positive integer, got True"),
    (2048, (0, 129), "the size of input 'x' must be two positive integers"),
    (2048, (-65, 129), "the size of input 'x' must be two positive integers"),
    (2_000_000, (65, 129), "input 'x' has 2,000,000 channels, more than 1,048,576"),
    (2048, (20_000, 20_000), "input 'x' is 20000x20000, larger than 16,384 on a side"),
])
def test_bad_input_channels_and_sizes_are_refused_by_the_api(channels, size, message):
    cell = Space.from_text(MAIN).concrete()
    with pytest.raises(DpcError, match=message):
        cost(cell, channels, size)


def test_cost_refuses_zero_channels_on_the_command_line(tmp_path):
    f = tmp_path / "m.dpc"
    f.write_text(MAIN)
    r = dpcc("cost", f, "--in-channels", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "expected a positive integer, got '0'" in r.stderr


def test_a_one_of_of_thousands_of_options_is_checked_without_comparing_every_pair():
    """Only options alike are compared: 5,000 distinct options check near linearly,
    and a duplicate at the end is still found."""
    options = [f"conv(x, rate = {i + 1})" for i in range(5000)]
    text = f"cell a(x) {{\n  return one_of({', '.join(options)})\n}}\n"
    assert messages(text) == []
    [m] = [d.message for d in check(load_text(text.replace(
        "rate = 5000)", "rate = 17)"), "t.dpc"))]
    assert m.startswith("options 17 and 5000 of this one_of can make the same architecture")
    same = ", ".join(["relu(x)"] * 3000)  # alike in everything: refused by the work
    [m] = [d.message for d in check(load_text(f"cell a(x) {{ return one_of({same}) }}"))]
    assert "3,000 options, too many alike to compare for duplicates" in m


def test_a_deep_recursive_cell_is_refused_after_two_oversized_samples():
    text = "cell t(x) depth 13 {\n  return one_of(relu(x), sum(t(x), t(x)))\n}\n"
    diags = check(load_text(text, "t.dpc"))
    assert [d.code for d in diags] == [limits.CODE]
    assert f"more than {limits.MAX_NODES:,} nodes" in diags[0].message


def test_a_diagnostic_on_a_huge_line_echoes_only_its_neighbourhood():
    body = " ".join(f"b{i} = relu(x)" for i in range(10_000))
    text = f"cell m(x) {{ {body} return zz }}\n"
    [d] = check(load_text(text, "t.dpc"))
    rendered = d.render({"t.dpc": text})
    assert len(text) > 100_000 and len(rendered) < 400
    line, caret = rendered.split("\n")[1:3]
    assert line.startswith("  ...") and line.endswith("return zz }")
    assert line[caret.index("^"):caret.index("^") + 2] == "zz"


def test_the_source_limit_keeps_parsing_within_seconds():
    assert limits.MAX_SOURCE_BYTES <= 256_000
    with pytest.raises(DpcError, match="longer than 256,000 characters"):
        load_text("#" * 300_000)


# ------------------------------------------------------------------ meaning
def test_an_alias_and_what_it_names_are_one_option():
    """`y = x` makes y the tensor x: one_of(y, x) would count one architecture twice."""
    text = "cell m(x) {\n  y = x\n  z = y\n  return relu(one_of(z, x))\n}\n"
    diags = check(load_text(text, "t.dpc"))
    assert [d.code for d in diags] == ["DPC306"]
    assert diags[0].span.line == 4
    text = "cell m(x) {\n  y = relu(x)\n  return one_of(relu(y), relu(x))\n}\n"
    assert check(load_text(text)) == []  # y is another tensor


@pytest.mark.parametrize("text", [
    # an applied one_of's option is the op applied to its arguments: relu(x) twice
    "cell m(x) {\n  return one_of(one_of(gelu(), relu())(x), relu(x))\n}\n",
    # a0 is x in some architectures, so one_of(a0, x) holds x twice there
    "cell m(x) {\n  a0 = one_of(relu(x), one_of(x, sigmoid(x)))\n"
    "  return sum(a0, one_of(a0, x))\n}\n",
])
def test_options_that_meet_through_an_applied_or_assigned_one_of_are_refused(text):
    diags = check(load_text(text, "t.dpc"))
    assert [d.code for d in diags] == ["DPC306"], diags


def test_count_is_the_number_of_distinct_architectures_of_each_example_space():
    from tests.conftest import EXAMPLES

    for f in sorted(EXAMPLES.rglob("*.dpc")):
        space = Space.from_file(f)
        n = space.count()
        if n <= 2000:
            assert len({c.canonical_text() for c in space.enumerate()}) == n, f


def test_a_depth_zero_recursive_space_is_its_one_architecture():
    space = Space.from_text("cell t(x) depth 0 {\n  return one_of(relu(x), t(x))\n}\n")
    assert space.count() == 1 and space.is_concrete
    assert [n.op for n in space.concrete().nodes] == ["relu"]


def test_a_bad_default_is_reported_where_it_is_written():
    text = "cell h(x, k = 2) {\n  return conv(x, kernel = k)\n}\n" \
           "cell m(x) {\n  return h(x, k = 3)\n}\n"
    [m] = messages(text)
    assert m.startswith("t.dpc:1:15: error: the default of 'k': conv(kernel = ...): kernel "
                        "must be odd")
    assert "hint: used at 2:27; change the default, or pass k = ... in every call" in m


def test_a_cell_checked_only_where_it_is_called_warns_of_what_fails_alone():
    text = ("cell h(x, c = 8) {\n  return sum(conv(x, channels = c, kernel = 1), "
            "conv(x, kernel = 1, channels = 16))\n}\ncell m(x) {\n  return h(x, c = 16)\n}\n")
    [d] = check(load_text(text, "t.dpc"))
    assert d.severity == "warning" and d.span.line == 2
    assert d.message.startswith("alone, cell 'h' fails here")
    alone = Space.from_text(text, cell="h").concrete()
    with pytest.raises(DpcError, match="different channel counts"):  # as foretold
        infer(alone, 64)


def test_a_space_where_every_architecture_fails_is_an_error(tmp_path):
    text = ("cell m(x) {\n  a = conv(x, channels = {8, 4}, kernel = 1)\n"
            "  return sum(a, conv(x, kernel = 1, channels = 16))\n}\n")
    [d] = check(load_text(text, "t.dpc"))
    assert d.severity == "error" and d.code == "DPC601"
    assert d.message.startswith("all 2 architectures of this space fail")
    f = tmp_path / "fails.dpc"
    f.write_text(text)
    assert dpcc("check", f).returncode == 1


def test_a_node_named_channels_is_refused_because_every_cell_declares_it():
    """A sample's text declares `channels` in the cell's header: a node of that name
    would make the text of every architecture of the space unreadable."""
    text = "cell m(x) {\n  channels = conv(x, kernel = 1)\n  return relu(channels)\n}\n"
    [d] = check(load_text(text, "t.dpc"))
    assert (d.code, d.span.line) == ("DPC204", 2) and "'channels' is the cell's width" \
        in d.message


@pytest.mark.parametrize("text, how", [
    ("cell m(x) {\n  a = relu(x)\n  b = one_of(x, a)\n  return conv(x)\n}\n", "never read"),
    ("cell m(x) {\n  a = relu(x)\n  b = one_of(a, one_of(gelu(x), x))\n"
     "  return one_of(relu(x), sum(a, b))\n}\n", "read only inside one_of options"),
])
def test_a_choice_among_names_that_may_go_unread_is_the_documented_warning(text, how):
    """The one case where two decisions give one architecture: count counts decision
    vectors, and check says where they are not distinct architectures."""
    [d] = check(load_text(text, "t.dpc"))
    assert (d.severity, d.code, d.span.line) == ("warning", "DPC307", 3)
    assert how in d.message
    space = Space.from_text(text)
    assert len({c.canonical_text() for c in space.enumerate()}) < space.count()
    read = text.replace("return conv(x)", "return conv(b)")
    if read != text:  # read outside a choice: distinct again, and no warning
        assert check(load_text(read)) == []
        space = Space.from_text(read)
        assert len({c.canonical_text() for c in space.enumerate()}) == space.count()
