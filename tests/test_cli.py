"""The CLI, run as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from dpcdsl.search.config import STRATEGIES
from tests.conftest import EXAMPLES


def dpcc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_count_paper_space():
    r = dpcc("count", EXAMPLES / "dpc_paper.dpc")
    assert r.returncode == 0 and r.stdout.strip() == "418414128120"


@pytest.mark.parametrize("channels, weights, madds", [("2048", "814,080", "(6.83B)"),
                                                      ("320", "356,160", "(2.99B)")])
@pytest.mark.slow
def test_cost_table(channels, weights, madds):
    r = dpcc("cost", EXAMPLES / "dpc_cityscapes.dpc", "--in-channels", channels,
             "--size", "65x129")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("branch conv weights"))
    assert line.split()[-1] == weights
    assert madds in next(x for x in r.stdout.splitlines() if x.startswith("branch MAdds"))


def test_cost_json():
    r = dpcc("cost", EXAMPLES / "dpc_cityscapes.dpc", "--in-channels", "320", "--size",
             "65x129", "--format", "json")
    assert json.loads(r.stdout)["totals"]["branch_conv_weights"] == 356_160


@pytest.mark.slow
def test_sample_prints_dpc_that_checks(tmp_path):
    r = dpcc("sample", EXAMPLES / "dpc_paper.dpc", "-n", "3", "--seed", "4")
    assert r.returncode == 0, r.stderr
    (tmp_path / "s.dpc").write_text(r.stdout)
    assert dpcc("check", tmp_path / "s.dpc").returncode == 0
    assert dpcc("count", tmp_path / "s.dpc", "--cell", "dpc_paper_2").stdout.strip() == "1"
    again = dpcc("sample", EXAMPLES / "dpc_paper.dpc", "-n", "3", "--seed", "4")
    assert again.stdout == r.stdout


def test_check_reports_every_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.dpc"
    bad.write_text("cell a(x) {\n  y = sepcov(x)\n  z = conv(w)\n  return y\n}\n")
    r = dpcc("check", bad)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{bad}:2:7: error: unknown op 'sepcov'. Did you mean 'sepconv'?" in r.stderr
    assert f"{bad}:3:12: error: undefined name 'w'" in r.stderr
    j = dpcc("check", bad, "--format", "json")
    assert [(d["line"], d["column"]) for d in json.loads(j.stdout)] == [(2, 7), (3, 12)]


@pytest.mark.parametrize("args", [
    ("count", "missing.dpc"),
    ("cost", str(EXAMPLES / "dpc_paper.dpc")),
    ("count", str(EXAMPLES / "aspp.dpc"), "--cell", "asp"),
    ("viz", str(EXAMPLES / "aspp.dpc"), "-o", "x.bmp"),
])
def test_errors_are_one_clean_message(args, tmp_path):
    r = dpcc(*args, cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "error" in r.stderr


def test_syntax_error_has_caret(tmp_path):
    bad = tmp_path / "bad.dpc"
    bad.write_text("cell a(x) { y = conv(x, kernel: 1) }\n")
    r = dpcc("count", bad)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"{bad}:1:31: error: syntax error: keyword arguments use `=`, not `:` [DPC100]"
    assert lines[2].index("^") == 2 + 30


@pytest.mark.slow
def test_fmt_check_and_rewrite(tmp_path):
    f = tmp_path / "m.dpc"
    f.write_text("cell a(x){return conv(x,kernel=1)}")
    assert dpcc("fmt", "--check", f).returncode == 1
    assert dpcc("fmt", f).returncode == 0
    assert f.read_text() == "cell a(x) {\n  return conv(x, kernel = 1)\n}\n"
    assert dpcc("fmt", "--check", f).returncode == 0


def test_viz_writes_valid_svg(tmp_path):
    out = tmp_path / "cell.svg"
    r = dpcc("viz", EXAMPLES / "dpc_cityscapes.dpc", "-o", out)
    assert r.returncode == 0, r.stderr
    assert ET.parse(out).getroot().tag.endswith("svg")


@pytest.mark.slow
def test_deeplab_import_export(tmp_path):
    src = EXAMPLES / "deeplab" / "dense_prediction_cell_branch5_top1_cityscapes.json"
    r = dpcc("import-deeplab", src, "-o", tmp_path / "c.dpc", "--name", "dpc_cityscapes")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.dpc").read_text() == (EXAMPLES / "dpc_cityscapes.dpc").read_text(
    ).split("json.\n", 1)[1]
    r = dpcc("export-deeplab", tmp_path / "c.dpc", "-o", tmp_path / "c.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "c.json").read_text()) == json.loads(src.read_text())


@pytest.mark.slow
def test_tour_runs_over_every_example(tmp_path):
    r = dpcc("tour", "--examples", EXAMPLES, "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "418,414,128,120" in r.stdout
    assert len(list(tmp_path.glob("*.svg"))) == len(list(EXAMPLES.glob("*.dpc")))


@pytest.mark.slow
def test_compile_writes_source_that_imports_and_runs(tmp_path):
    out = tmp_path / "aspp_head.py"
    r = dpcc("compile", EXAMPLES / "aspp.dpc", "--backend", "torch", "--in-channels", "64",
             "-o", out)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([sys.executable, "-c", "import torch, aspp_head; m = aspp_head.Aspp()"
                          ".eval(); print(tuple(m(torch.randn(1, 64, 9, 9)).shape))"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 256, 9, 9)"


@pytest.mark.slow
def test_compile_to_stdout_with_per_input_channels():
    r = dpcc("compile", EXAMPLES / "deeplabv3plus.dpc", "--in-channels", "context=256",
             "--in-channels", "low=24")
    assert r.returncode == 0, r.stderr
    assert "self.reduced = ConvBNReLU(24, 48, kernel=1, **bn)" in r.stdout
    assert "def forward(self, context: torch.Tensor, low: torch.Tensor)" in r.stdout


@pytest.mark.slow
def test_compile_scales_rates_to_the_output_stride():
    r = dpcc("compile", EXAMPLES / "dpc_cityscapes.dpc", "--output-stride", "8",
             "--in-channels", "2048")
    assert r.returncode == 0, r.stderr
    assert "rate=(36, 30)" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--backend", "troch", "--in-channels", "8"],
     "error: unknown backend 'troch'. Did you mean 'torch'?"),
    (["--cell", "asp"], "no cell named 'asp'"),
    (["--in-channels", "y=3"], "no input named 'y'"),
    ([], "--in-channels is needed"),
    (["--in-channels", "0"], "expected a positive integer, got '0'"),
])
def test_compile_errors_are_clear(args, message):
    r = dpcc("compile", EXAMPLES / "aspp.dpc", *args)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_compile_refuses_a_space():
    r = dpcc("compile", EXAMPLES / "dpc_paper.dpc")
    assert r.returncode == 1
    assert "is a search space of 418414128120 architectures" in r.stderr


@pytest.mark.slow
def test_compile_jax_backend(tmp_path):
    out = tmp_path / "dpc_head.py"
    r = dpcc("compile", EXAMPLES / "dpc_cityscapes.dpc", "--backend", "jax", "--in-channels",
             "16", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "class DpcCityscapes(nnx.Module):" in out.read_text()


def test_fmt_never_rewrites_a_file_into_one_that_does_not_parse(tmp_path):
    big = tmp_path / "big.dpc"
    big.write_text("let big = 1e999\n")
    r = dpcc("fmt", big)
    assert r.returncode == 1 and "the number 1e999 is too large" in r.stderr
    assert "Traceback" not in r.stderr
    assert big.read_text() == "let big = 1e999\n"


def test_version():
    import dpcdsl

    r = dpcc("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"dpcc (dpcdsl) {dpcdsl.__version__}"


@pytest.mark.slow
def test_shell_completion_offers_the_choices_of_an_option():
    """`dpcc --install-completion` installs it; the shell then asks dpcc itself."""
    import os
    import shutil

    exe = shutil.which("dpcc", path=os.path.dirname(sys.executable))
    assert exe is not None

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_DPCC_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        r = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=120)
        return r.stdout.split()

    assert complete("dpcc search x.dpc --strategy ") == list(STRATEGIES)
    assert complete("dpcc search x.dpc --executor p") == ["pool"]
    assert "--install-completion" in dpcc("--help").stdout


@pytest.mark.parametrize("args, message", [
    (("check", str(EXAMPLES / "aspp.dpc"), "--format", "yaml"), "'yaml' is not one of"),
    (("search", str(EXAMPLES / "aspp.dpc"), "--task", "t.toml", "--executor", "foo"),
     "'foo' is not one of"),
])
@pytest.mark.slow
def test_option_values_are_choices(args, message, tmp_path):
    r = dpcc(*args, cwd=tmp_path)
    assert r.returncode != 0 and message in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr and not any(tmp_path.iterdir())


def test_check_warns_of_a_space_whose_architectures_do_not_all_fit_and_exits_0(tmp_path):
    f = tmp_path / "w.dpc"
    f.write_text("cell w(x, channels = 8) {\n  a = one_of(conv(x), conv(x, channels = 16))\n"
                 "  return sum(a, conv(x))\n}\n")
    r = dpcc("check", f)
    assert r.returncode == 0 and "ok: 1 file, 1 warning" in r.stdout
    assert f"{f}:3:10: warning: 1 of its 2 architectures fail here" in r.stderr
    j = json.loads(dpcc("check", f, "--format", "json").stdout)
    assert [d["severity"] for d in j] == ["warning"]


@pytest.mark.slow
def test_sample_writes_a_file_that_compiles(tmp_path):
    out = tmp_path / "x.dpc"
    r = dpcc("sample", EXAMPLES / "dpc_paper.dpc", "--seed", "3", "-o", out)
    assert r.returncode == 0 and r.stdout == "" and f"wrote {out} (1 architecture)" in r.stderr
    assert out.read_text() == dpcc("sample", EXAMPLES / "dpc_paper.dpc", "--seed", "3").stdout
    r = dpcc("compile", out, "--in-channels", "8", "-o", tmp_path / "x.py")
    assert r.returncode == 0, r.stderr


def test_the_help_keeps_its_bracketed_words():
    import os

    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search", "--help"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "300"})
    assert "over the task file's [strategy])" in r.stdout
    assert "over the task file's [pruner])" in r.stdout


def test_viz_of_a_space_hints_at_its_seed_option(tmp_path):
    r = dpcc("viz", EXAMPLES / "dpc_paper.dpc", "-o", tmp_path / "x.svg")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is a search space of" in r.stderr and "draw one of them with --seed" in r.stderr
    r = dpcc("viz", EXAMPLES / "dpc_paper.dpc", "--seed", "0", "-o", tmp_path / "x.svg")
    assert r.returncode == 0 and (tmp_path / "x.svg").is_file()
