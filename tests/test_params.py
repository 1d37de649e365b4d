"""A cell's parameters set from outside its file: ``params={...}`` in the API and
``--param NAME=VALUE`` on the command line, held to the rules of the language."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dpcdsl
from dpcdsl import heads
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import as_space

CELL = """cell head(x, k = 3, r = 1, act = relu, channels = 16) {
  y = conv(x, kernel = k, rate = r, act = act)
  return conv(y, kernel = 1)
}
"""


@pytest.fixture
def file(tmp_path: Path) -> Path:
    (tmp_path / "head.dpc").write_text(CELL)
    return tmp_path / "head.dpc"


def dpcc(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_compile_takes_a_files_parameters(file: Path) -> None:
    import torch

    head = dpcdsl.compile(file, in_channels=4, params={"channels": 8, "k": 1, "act": "gelu"})
    y = head(torch.randn(2, 4, 9, 9))
    assert y.shape == (2, 8, 9, 9)
    source = dpcdsl.emit(file, in_channels=4, backend="torch", params={"channels": 8})
    assert "cell head(x, channels = 8)" in source


def test_the_values_of_the_language_can_be_given(file: Path) -> None:
    assert as_space(file, None, {"k": {1, 3, 5}}).count() == 3
    assert as_space(file, None, {"k": [1, 3], "act": {"relu", "gelu"}}).count() == 4
    cell = as_space(file, None, {"r": (1, 3)}).concrete()
    assert cell.nodes[0].attr("rate") == (1, 3)


def test_the_same_weights_give_the_same_outputs_as_the_file_written_so(
        file: Path, tmp_path: Path) -> None:
    import torch

    (tmp_path / "wide.dpc").write_text(CELL.replace("channels = 16", "channels = 12"))
    a = dpcdsl.compile(file, in_channels=3, params={"channels": 12}, seed=3)
    b = dpcdsl.compile(tmp_path / "wide.dpc", in_channels=3, seed=3)
    x = torch.randn(1, 3, 7, 7)
    np.testing.assert_array_equal(a.eval()(x).detach(), b.eval()(x).detach())


@pytest.mark.parametrize("params, code, message", [
    ({"chanels": 8}, "DPC302", "cell 'head' has no parameter 'chanels'. Did you mean "
                               "'channels'?"),
    ({"x": 8}, "DPC302", "cell 'head' has no parameter 'x'"),
    ({"k": 0}, "DPC401", "the default of 'k': conv(kernel = ...): expected a positive "
                         "integer, got 0"),
    # as in the file: a word no op argument takes is an undefined name there
    ({"act": "swish"}, "DPC201", "undefined name 'swish'"),
    ({"k": "3 x"}, "DPC401", "parameter 'k': '3 x' is not a value of the language"),
    ({"k": None}, "DPC401", "parameter 'k': None is not a value of the language"),
])
def test_a_bad_parameter_is_named(file: Path, params: dict, code: str, message: str) -> None:
    with pytest.raises(DpcError) as e:
        dpcdsl.compile(file, in_channels=4, params=params)
    assert e.value.diagnostics[0].code == code
    assert message in e.value.render()


def test_a_built_cell_takes_no_params(file: Path) -> None:
    cell = as_space(file, None).concrete()
    with pytest.raises(DpcError, match="params cannot be set on the built cell 'head'"):
        dpcdsl.compile(cell, in_channels=4, params={"k": 1})


def test_library_heads_take_their_parameters_by_name() -> None:
    assert heads.load("lraspp", classes=19).concrete() != heads.load("lraspp").concrete()
    with pytest.raises(DpcError, match="the head 'lraspp' has no parameter 'clases'"):
        heads.load("lraspp", clases=19)


def test_the_command_line_sets_parameters(file: Path) -> None:
    r = dpcc("count", file, "--param", "k={1, 3, 5}", "-p", "act={relu, gelu}")
    assert r.returncode == 0 and r.stdout.split() == ["6"], r.stderr
    r = dpcc("compile", file, "--param", "channels=64", "--in-channels", 8)
    assert r.returncode == 0 and "cell head(x, channels = 64)" in r.stdout
    r = dpcc("cost", file, "-p", "k=1", "--in-channels", 8, "--size", "9x9")
    assert r.returncode == 0 and "total parameters" in r.stdout, r.stderr
    # a 1x1 conv of 8 to 16 channels and BN, then the 1x1 of 16 to 16 and BN
    assert r.stdout.split("total parameters")[1].split()[0] == f"{8 * 16 + 32 + 16 * 16 + 32:,}"


@pytest.mark.parametrize("arg, message", [
    ("chanels=64", "cell 'head' has no parameter 'chanels'. Did you mean 'channels'?"),
    ("k=0", "expected a positive integer, got 0"),
    ("k=(3,", "--param k:1:12: error: syntax error"),
    ("k", "'k': expected NAME=VALUE"),
    ("k=1", "'k' is given twice"),
])
def test_the_command_line_names_a_bad_parameter(file: Path, arg: str, message: str) -> None:
    extra = ["-p", "k=3"] if "twice" in message else []
    r = dpcc("count", file, "--param", arg, *extra)
    assert r.returncode != 0 and message in " ".join(r.stderr.split()), r.stderr
    assert "Traceback" not in r.stderr
