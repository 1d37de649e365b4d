"""The CLI, run as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import EXAMPLES


def dpcc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_count_paper_space():
    r = dpcc("count", EXAMPLES / "dpc_paper.dpc")
    assert r.returncode == 0 and r.stdout.strip() == "418414128120"


@pytest.mark.parametrize("channels, weights, madds", [("2048", "814,080", "(6.83B)"),
                                                      ("320", "356,160", "(2.99B)")])
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
    assert lines[0] == f"{bad}:1:31: error: syntax error: keyword arguments use `=`, not `:`"
    assert lines[2].index("^") == 2 + 30


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
