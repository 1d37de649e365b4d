"""Export: every library head, every example cell and random cells of every example
space, written as ONNX (run in onnxruntime) and as StableHLO (deserialised and run in
JAX), each equal to the module it came from at two input shapes; a cell an exporter
cannot take is refused by node, and nothing is left half-written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dpcdsl import backends
from dpcdsl.compiler import codegen
from dpcdsl.deploy import export, formats
from dpcdsl.errors import DpcError
from dpcdsl.lang import heads
from dpcdsl.lang.space import Space, as_space
from dpcdsl.ops import OpSpec, register, unregister
from tests.heads.references import REFERENCES

FORMATS = ("onnx", "stablehlo")
#: the example files whose cell is one architecture, and the spaces
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CELLS = ("aspp.dpc", "aspp_deeplab.dpc", "deeplabv3plus.dpc", "dpc_cityscapes.dpc")
SPACES = ("dpc_paper.dpc", "hierarchical.dpc", "spaces/decoders.dpc",
          "spaces/mobile_heads.dpc")
#: random cells of each space in the suite (benchmarks/bench_export.py exports 20 of each)
RANDOM_CELLS = 1


def test_the_installed_backends_write_both_formats() -> None:
    assert formats() == {"onnx": "torch", "stablehlo": "jax"}


def _checked(result, fmt: str) -> None:
    assert result.path.is_file() and not result.path.with_name(
        result.path.name + ".partial").exists()
    assert result.max_error <= 1e-5
    checked = [shapes for shapes, _ in result.checks]
    # the batch is dynamic: checked at another than the one traced
    assert all(checked[-1][n][0] == result.inputs[n][0] + 1 for n in result.inputs)
    if fmt == "onnx":  # and ONNX's height and width: checked at the traced size and another
        assert len(checked) == 2 and checked[0] == result.inputs
        assert any(checked[1][n][2:] != checked[0][n][2:] for n in result.inputs)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_library_head_exports_equal_to_its_module(name: str, fmt: str,
                                                         tmp_path: Path) -> None:
    ref = REFERENCES[name]
    result = export(heads.resolve(Path(name)), tmp_path / f"{name}.{fmt}", fmt,
                    in_channels=ref.in_channels, params=ref.options or None,
                    output_stride=ref.output_stride, sizes=ref.sizes[0],
                    check_sizes=ref.sizes[1])
    _checked(result, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("file", CELLS)
def test_every_example_cell_exports_equal_to_its_module(file: str, fmt: str,
                                                        tmp_path: Path) -> None:
    cell = Space.from_file(EXAMPLES / file).concrete()
    channels = {i: 24 + 8 * k for k, i in enumerate(cell.inputs)}
    result = export(cell, tmp_path / f"cell.{fmt}", fmt, in_channels=channels,
                    image=(129, 97))
    _checked(result, fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("file", SPACES)
def test_random_cells_of_every_example_space_export(file: str, fmt: str,
                                                    tmp_path: Path) -> None:
    space = as_space(EXAMPLES / file, None, {"channels": 16})
    for seed in range(RANDOM_CELLS):
        cell = space.sample(seed)[0]
        channels = {i: 24 + 8 * k for k, i in enumerate(cell.inputs)}
        result = export(cell, tmp_path / f"{seed}.{fmt}", fmt, in_channels=channels,
                        image=(97, 129), seed=seed)
        _checked(result, fmt)


def test_weights_come_from_a_file_and_the_file_runs_alone(tmp_path: Path) -> None:
    """The exported file holds the given weights: run by onnxruntime on its own, it
    equals the module loaded with them, and not one initialised otherwise."""
    import onnxruntime as ort

    torch_backend = backends.get("torch")
    cell = Space.from_file(EXAMPLES / "aspp.dpc").concrete()
    trained = backends.compile(cell, in_channels=16, seed=7)
    torch_backend.save_weights(trained, tmp_path / "w.safetensors")
    result = export(cell, tmp_path / "aspp.onnx", in_channels=16, image=(64, 64),
                    weights=tmp_path / "w.safetensors", check=False)
    assert result.checks == []
    x = np.random.default_rng(1).standard_normal((3, 16, 5, 7), dtype=np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    got = session.run(None, {"x": x})[0]
    with torch.no_grad():
        want = trained.eval()(torch.from_numpy(x)).numpy()
        other = backends.compile(cell, in_channels=16, seed=8).eval()(torch.from_numpy(x))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - other.numpy()).max() > 1e-2


#: an op whose layer branches on a tensor's value, which no tracer can follow
GATE = OpSpec("gate", 1, 1, (), "passes its input where its mean is positive",
              example="gate(x)")


@pytest.fixture
def gate_op() -> Iterator[None]:
    register(GATE)
    torch_lowering = codegen.expression(lambda ins, a: f"({ins[0]} if float({ins[0]}.mean()) "
                                        f"> 0 else -{ins[0]})")
    jax_lowering = codegen.expression(lambda ins, a: f"({ins[0]} if float({ins[0]}.mean()) "
                                      f"> 0 else -{ins[0]})")
    tables = [(backends.get("torch").lowerings, torch_lowering),
              (backends.get("jax").lowerings, jax_lowering)]
    for table, lowering in tables:
        table["gate"] = lowering
    try:
        yield
    finally:
        unregister("gate")
        for table, _ in tables:
            del table["gate"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cell_an_exporter_cannot_take_is_refused_by_node(gate_op: None, fmt: str,
                                                           tmp_path: Path) -> None:
    cell = Space.from_text("cell g(x, channels = 8) {\n  a = conv(x, kernel = 1)\n"
                           "  b = gate(a)\n  return conv(b, kernel = 1)\n}").concrete()
    out = tmp_path / f"g.{fmt}"
    with pytest.raises(DpcError) as e:
        export(cell, out, fmt, in_channels=8, sizes=(6, 6))
    assert "cannot export node 'b' (op gate)" in str(e.value)
    assert e.value.diagnostics[0].code == "DPC907"
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_an_unknown_format_names_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(DpcError, match=r"unknown export format 'onx'. Did you mean 'onnx'\?"):
        export(EXAMPLES / "aspp.dpc", tmp_path / "a", "onx", in_channels=8)
    assert list(tmp_path.iterdir()) == []
