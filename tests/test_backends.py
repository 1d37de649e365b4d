"""The backend registry and the top-level Python API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import dpcdsl
from dpcdsl import backends
from dpcdsl.errors import DpcError
from tests.conftest import EXAMPLES


def test_torch_is_registered_through_its_entry_point() -> None:
    assert "torch" in backends.available()
    import dpcdsl_torch

    assert backends.get("torch") is dpcdsl_torch


def test_unknown_backend_says_did_you_mean() -> None:
    with pytest.raises(DpcError, match="unknown backend 'troch'. Did you mean 'torch'"):
        backends.get("troch")


def test_compile_api() -> None:
    head = dpcdsl.compile(EXAMPLES / "aspp.dpc", cell="aspp", backend="torch", in_channels=32)
    assert head(torch.randn(2, 32, 9, 9)).shape == (2, 256, 9, 9)
    source = dpcdsl.emit(str(EXAMPLES / "dpc_cityscapes.dpc"), in_channels=2048)
    assert "class DpcCityscapes(nn.Module):" in source


def test_compile_from_text() -> None:
    head = dpcdsl.compile("cell tiny(x, channels = 8) { return conv(x, kernel = 3) }",
                          in_channels=3)
    assert head(torch.randn(1, 3, 5, 5)).shape == (1, 8, 5, 5)


def test_core_imports_no_framework() -> None:
    code = ("import sys, dpcdsl, dpcdsl.cli, dpcdsl.lang.space, dpcdsl.lang.analysis, dpcdsl.backends; "
            "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_the_facade_shadows_no_submodule() -> None:
    import importlib
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(dpcdsl.__path__)}
    assert not submodules & set(dpcdsl.__all__)
    for name in submodules:
        module = importlib.import_module(f"dpcdsl.{name}")
        assert getattr(dpcdsl, name) is module
    analysis = importlib.import_module("dpcdsl.lang.analysis")
    assert analysis.infer_channels is dpcdsl.infer_channels
    assert all(hasattr(dpcdsl, name) for name in dpcdsl.__all__)


@pytest.mark.slow
def test_compile_at_output_stride_8_doubles_the_rates() -> None:
    text = "cell a(x, channels = 8) { return sepconv(x, rate = (3, 6)) }"
    assert "rate=(3, 6)" in dpcdsl.emit(text, in_channels=4)
    assert "rate=(6, 12)" in dpcdsl.emit(text, in_channels=4, output_stride=8)
    head = dpcdsl.compile(text, in_channels=4, output_stride=8, backend="jax")
    assert "rate=(6, 12)" in backends.get("jax").source_of(head)


def test_compile_without_in_channels_names_the_input() -> None:
    text = "cell two(context, low, channels = 8) { return concat(context, low) }"
    with pytest.raises(DpcError, match="in_channels is needed: the channels of the input "
                       "'context', 'low' of cell 'two'") as e:
        dpcdsl.compile(text)
    assert "in_channels={'context': 256, 'low': 256}" in str(e.value)
    with pytest.raises(DpcError, match="in_channels is needed"):
        dpcdsl.emit("cell one(x) { return conv(x) }")


@pytest.mark.slow
def test_compile_and_the_model_take_a_path_or_a_head_name() -> None:
    """A head of the library by name is its file; an unknown name says what is near."""
    from dpcdsl_torch import SegmentationModel, TinyBackbone

    by_name = dpcdsl.emit("lraspp", backend="torch", in_channels={"low": 40, "high": 960})
    by_path = dpcdsl.emit(EXAMPLES / "heads" / "lraspp.dpc", backend="torch",
                          in_channels={"low": 40, "high": 960})
    assert by_name == by_path
    with pytest.raises(DpcError, match="no head named 'lrasp' in the library. Did you mean 'lraspp'"):
        dpcdsl.compile("lrasp", backend="torch", in_channels=8)
    path = EXAMPLES / "dpc_cityscapes.dpc"
    cell = dpcdsl.Space.from_file(path).concrete()
    models = [SegmentationModel(TinyBackbone(output_stride=16), c, num_classes=3, seed=0)
              for c in (cell, path, str(path))]
    states = [m.head.state_dict() for m in models]  # the head, built with its seed
    for s in states[1:]:
        assert s.keys() == states[0].keys()
        assert all(torch.equal(s[k], states[0][k]) for k in s)
