"""Bounded work and no traceback: each reproducer of the hardening audit, through the
real parser, checker, space and CLI. Every limit is a located DPC150 error, reached in
a fraction of the time the unbounded work took."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dpcdsl import limits
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.checker import check, check_file
from dpcdsl.lang.printer import format_module
from dpcdsl.lang.program import load, load_text
from dpcdsl.lang.space import Space
from dpcdsl.lang.syntax import parse
from tests.conftest import EXAMPLES

#: a generous bound on a refusal's time: the unbounded work took minutes, and a
#: shared machine slows everything; benchmarks/fuzz_dsl.py holds the 2 s goal
BOUND = 10


PAPER = (EXAMPLES / "dpc_paper.dpc").read_text()


def dpcc(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120, env=env)


def refused(text: str, what: str = "check") -> tuple[list[str], float]:
    """The codes of the problems ``check`` (or ``count``/``sample``) finds, and the time."""
    start = time.perf_counter()
    try:
        program = load_text(text, "f.dpc")
        diags = check(program)
        if not diags and what != "check":
            space = Space(program)
            space.count() if what == "count" else space.sample(0)
    except DpcError as e:
        diags = e.diagnostics
    return [d.code for d in diags], time.perf_counter() - start


def test_the_limits_are_documented_and_far_above_the_examples():
    assert limits.__doc__ and "MAX_NODES" in (Path(limits.__file__).read_text())
    for path in sorted(EXAMPLES.rglob("*.dpc")):
        assert not check_file(path), path  # every example, space and head stays within


@pytest.mark.parametrize("text", [
    "cell a(x) {\n  repeat 1000000000 as b { b = conv(x) }\n  return concat(b)\n}\n",
    "cell a(x) {\n  repeat 100000 as b { b = one_of(x, earlier) }\n  return concat(b)\n}\n",
], ids=["repeat-1e9", "repeat-1e5"])
@pytest.mark.parametrize("what", ["check", "count", "sample"])
def test_a_huge_repeat_is_refused_at_once(text, what):
    codes, elapsed = refused(text, what)
    assert codes == ["DPC150"] and elapsed < BOUND


def test_a_repeat_of_a_thousand_branches_is_counted_and_printed_in_full(monkeypatch):
    monkeypatch.setattr(limits, "MAX_REPEAT", 1000)  # over the default: a program may raise it
    space = PAPER.replace("repeat 5", "repeat 1000")
    n = Space.from_text(space).count()
    assert len(limits.count_text(n)) > 4300  # past Python's own int-to-str limit
    assert limits.count_text(n, exact=False).startswith("about ")


def test_a_large_set_used_as_a_pair_is_checked_without_its_product():
    values = ", ".join(map(str, range(1, 1001)))
    text = f"let r = {{{values}}}\ncell a(x) {{ return sepconv(x, rate = (r, r)) }}\n"
    codes, elapsed = refused(text, "sample")
    assert codes == [] and elapsed < BOUND
    bad = text.replace("{1, ", "{0, 1, ")  # a bad value far into the product is still found
    assert refused(bad)[0] == ["DPC401"]
    big = ", ".join(map(str, range(1, limits.MAX_SET + 2)))
    assert refused(f"let r = {{{big}}}\n")[0] == ["DPC150"]


@pytest.mark.parametrize("what", ["check", "count", "sample"])
def test_deep_recursion_is_refused_at_once(what):
    deep = (EXAMPLES / "hierarchical.dpc").read_text().replace("depth 3", "depth 16")
    assert "depth 16" in deep
    codes, elapsed = refused(deep, what)
    assert set(codes) == {"DPC150"} and elapsed < BOUND
    codes, elapsed = refused("cell t(x) depth 200 { return one_of(relu(x), t(t(x))) }\n", what)
    assert codes == ["DPC150"] and elapsed < BOUND


@pytest.mark.slow
def test_an_architecture_too_large_to_build_is_refused_by_check():
    # 2**20 nodes from 21 short lines: each cell sums two copies of the one below
    text = "cell c0(x) { return relu(x) }\n" + "".join(
        f"cell c{i}(x) {{ return sum(c{i - 1}(x), c{i - 1}(x)) }}\n" for i in range(1, 21))
    codes, elapsed = refused(text)
    assert codes == ["DPC150"] and elapsed < BOUND
    chain = "cell c0(x) { return relu(x) }\n" + "".join(
        f"cell c{i}(x) {{ return c{i - 1}(sum(x, x)) }}\n" for i in range(1, 300))
    codes, elapsed = refused(chain)
    assert codes == ["DPC150"] and elapsed < BOUND


@pytest.mark.parametrize("text", [
    "let r = " + "(" * 1000 + "1" + ")" * 1000 + "\n",
    "cell a(x) { return " + "relu(" * 5000 + "x" + ")" * 5000 + " }\n",
    "let r = " + "{" * 500 + "1" + "}" * 500 + "\n",
], ids=["tuples", "calls", "sets"])
def test_deep_nesting_is_a_located_error(text):
    with pytest.raises(DpcError) as e:
        parse(text, "f.dpc")
    d = e.value.diagnostics[0]
    assert d.code == "DPC150" and d.span.line == 1 and d.span.column > 60
    assert text[d.span.column - 1] in "({"


def test_ir_nested_too_deep_for_the_stack_is_an_error_not_a_crash():
    e: ir.Expr = ir.Name(id="x")
    for _ in range(5000):
        e = ir.Call(func="relu", args=(e,))
    module = ir.Module(items=(ir.CellDef(name="a", params=(ir.Param(name="x"),),
                                         body=(ir.Return(value=e),)),))
    with pytest.raises(DpcError, match="nests too deeply"):
        format_module(module)


def test_an_integer_of_thousands_of_digits_is_a_located_error():
    with pytest.raises(DpcError) as e:
        parse("let r = " + "9" * 5000 + "\n", "f.dpc")
    d = e.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == ("DPC150", 1, 9)
    assert "5000 digits" in d.message


def test_a_deeplab_json_too_long_or_too_deep_is_refused(tmp_path):
    from dpcdsl.compiler.interop.deeplab import read

    long = tmp_path / "long.json"
    branch = {"op": "conv", "kernel": 1, "rate": [1, 1], "input": -1}
    long.write_text(json.dumps([branch] * 2000))
    start = time.perf_counter()
    with pytest.raises(DpcError, match="2,000 branches"):
        read(long)
    long.write_text(json.dumps([branch] * 100_000))  # 5 MB: refused before it is parsed
    with pytest.raises(DpcError, match=f"larger than {limits.MAX_SOURCE_BYTES:,} bytes"):
        read(long)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DpcError, match="nests 100000 deep"):
        read(deep)
    assert time.perf_counter() - start < BOUND
    r = dpcc("import-deeplab", deep, "-o", tmp_path / "out.dpc")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "DPC150" in r.stderr


# ------------------------------------------------------------------ files and imports
@pytest.mark.slow
def test_files_that_are_not_utf8_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.dpc"
    bad.write_bytes(b"cell a(x) {\n  return \xff\n}\n")
    r = dpcc("check", bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{bad}:2:10: error: the source file is not UTF-8 text (byte 0xff)" in r.stderr
    task = tmp_path / "task.toml"
    task.write_bytes(b"[dataset]\nkind = \"\xfe\"\n")
    r = dpcc("cache", "--task", task)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "the task file is not UTF-8 text" in r.stderr
    js = tmp_path / "cell.json"
    js.write_bytes(b'[{"op": "\xc3"}]')
    r = dpcc("import-deeplab", js, "-o", tmp_path / "o.dpc")
    assert r.returncode == 1 and "is not UTF-8 text" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("path, problem", [
    ("/bin/true", "only .dpc files can be imported"),
    ("/etc/passwd", "only .dpc files can be imported"),
    ("a" * 300 + ".dpc", "longer than 255 characters"),
    ("a\0b.dpc", "NUL"),
    ("latin1.dpc", "is not UTF-8 text"),
    ("nowhere.dpc", "no such file"),
])
def test_imports_are_refused_without_echoing_the_file(tmp_path, path, problem):
    (tmp_path / "latin1.dpc").write_bytes(b"# caf\xe9\ncell b(x) { return x }\n")
    main = tmp_path / "main.dpc"
    main.write_text(f'import "{path}"\ncell a(x) {{ return relu(x) }}\n')
    diags = check_file(main)
    assert [d.code for d in diags] == ["DPC110"] and problem in diags[0].message
    rendered = "\n".join(d.render(diags.sources) for d in diags)
    assert "root:" not in rendered and "caf" not in rendered
    assert set(diags.sources) == {str(main)}  # nothing of the refused file was kept


def test_imports_resolve_from_the_importing_file_then_the_search_path(tmp_path):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    (lib / "sub" / "blocks.dpc").write_text(
        'import "more.dpc"\ncell blk(x) { return gate(x) }\n')
    (lib / "sub" / "more.dpc").write_text("cell gate(x) { return relu(x) }\n")
    main = tmp_path / "proj" / "main.dpc"
    main.parent.mkdir()
    main.write_text('import "sub/blocks.dpc"\ncell a(x) { return blk(x) }\n')
    assert "DPC110" in [d.code for d in check_file(main)]  # not found from proj/
    assert Space(load(main, search_path=[lib])).concrete().nodes[0].op == "relu"
    r = dpcc("count", main, env={**_env(), "DPCDSL_PATH": str(lib)})
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    r = dpcc("count", main, cwd=tmp_path)  # and never from the working directory
    assert r.returncode == 1 and "no such file" in r.stderr


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# ------------------------------------------------------------------ display
@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                                 "\u2029", "\r"])
def test_carets_stay_under_their_line_whatever_separators_the_text_holds(sep):
    text = f"cell a(x) {{ # a{sep}b\n  y = relu(x)\n  return z\n}}\n"
    diags = check(load_text(text, "f.dpc"))
    d = diags[0]
    assert (d.span.line, d.span.column) == (3, 10)
    lines = d.render({"f.dpc": text}).splitlines()
    assert lines[1] == "    return z" and lines[2] == "  " + " " * 9 + "^"


@pytest.mark.slow
def test_echoed_source_is_printed_literally_not_as_markup(tmp_path):
    f = tmp_path / "m.dpc"
    f.write_text("cell a(x) { return zz }  # :smile: [bold]x[/bold] :x:\n")
    r = dpcc("check", f)
    assert r.returncode == 1
    assert "# :smile: [bold]x[/bold] :x:" in r.stderr and "\U0001f604" not in r.stderr
    named = tmp_path / "[red]x.dpc"
    named.write_text("cell a(x) { return relu(x) }\n")
    r = dpcc("compile", named, "--in-channels", "4", "-o", tmp_path / ":smile:.py")
    assert r.returncode == 0 and ":smile:.py" in r.stderr


def test_fmt_never_writes_text_that_does_not_parse_back(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dpcdsl import cli
    from dpcdsl.lang import printer

    f = tmp_path / "a.dpc"
    original = "let big = 1.5\ncell a(x) {\n    return relu(x)\n}\n"
    f.write_text(original)
    monkeypatch.setattr(printer, "format_module",
                        lambda m: "let big = inf.0\n")  # a printer bug, simulated
    r = CliRunner().invoke(cli.app, ["fmt", str(f)])
    assert r.exit_code == 1 and "does not parse back" in r.output
    assert f.read_text() == original


def test_a_space_whose_architectures_are_all_too_large_is_an_error_from_check():
    inner = "relu(" * 12 + "y" + ")" * 12
    text = (f"cell a(x) {{\n  repeat 200 as b {{\n    y = one_of(x, earlier)\n"
            f"    b = {inner}\n  }}\n  return concat(b)\n}}\n")
    codes, elapsed = refused(text)
    assert codes == ["DPC150"] and elapsed < BOUND


def test_a_recursive_cell_alone_in_its_file_is_counted_by_check():
    codes, elapsed = refused("cell t(x) depth 20 { return one_of(relu(x), sum(t(x), t(x))) }\n")
    assert codes == ["DPC150"] and elapsed < BOUND


def test_the_limits_table_of_the_language_docs_matches_the_code():
    """docs/language.md lists each limit with its value: every row is checked against
    dpcdsl.limits, and every limit has a row."""
    import re

    from tests.conftest import ROOT

    text = (ROOT / "docs" / "language.md").read_text()
    rows = re.findall(r"^\| (`MAX_\w+`(?:, `MAX_\w+`)*) \| ([^|]+) \|", text, re.M)
    seen = set()
    for names, values in rows:
        names = re.findall(r"MAX_\w+", names)
        for name, shown in zip(names, values.split(", ") if len(names) > 1 else [values]):
            value = getattr(limits, name)
            power = f"2^{value.bit_length() - 1}" if value & (value - 1) == 0 else None
            assert shown.strip() in (f"{value:,}", power), (name, shown, value)
            seen.add(name)
    assert seen == {n for n in limits.__all__ if n.startswith("MAX_")}
