"""Emitted source: golden files, forward and backward of every example, the emitted
file standing alone, and names from .dpc text that must never break the code."""

from __future__ import annotations

import ast
import inspect
import keyword
import subprocess
import sys
import textwrap

import pytest
import torch
from dpcdsl_torch import _layers, build, class_name, emit, export_weights, source_of
from dpcdsl_torch._emit import LAYERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.backends.names import HOSTILE, IDENT, named_cell
from tests.backends.torch.conftest import EXAMPLE_NAMES, Example, load_example
from tests.conftest import without_layers


def test_golden_source(example: Example, golden) -> None:
    source = emit(example.cell, example.in_channels)
    golden(f"torch/{example.name}.py", without_layers(source, LAYERS))


def test_emitted_source_imports_only_torch(example: Example) -> None:
    tree = ast.parse(emit(example.cell, example.in_channels))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots == {"torch", "__future__"}


def test_forward_backward_shapes(example: Example) -> None:
    module = build(example.cell, example.in_channels, seed=0)
    xs = [x.requires_grad_() for x in example.inputs()]
    y = module(*xs)
    out_channels = example.cell.channels
    assert y.shape == (2, out_channels, *example.sizes[example.cell.inputs[-1]])
    y.square().mean().backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in xs)
    assert all(p.grad is not None for p in module.parameters())


def test_build_is_seeded_and_leaves_global_rng_alone(example: Example) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = export_weights(build(example.cell, example.in_channels, seed=7))
    after = torch.rand(1)
    b = export_weights(build(example.cell, example.in_channels, seed=7))
    c = export_weights(build(example.cell, example.in_channels, seed=8))
    assert torch.equal(before, after)
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a if k.endswith("weight"))


#: runs each emitted file of the folders it is given (cell.py, its class name in
#: class.txt, weights w.safetensors, inputs x.safetensors) with dpcdsl unimportable, at
#: the test's thread count (the same sums in the same order); writes y.safetensors
STANDALONE = textwrap.dedent("""
    import importlib.util, pathlib, sys
    sys.modules["dpcdsl"] = None        # any import of dpcdsl now fails
    sys.modules["dpcdsl_torch"] = None
    import torch
    from safetensors.torch import load_file, save_file
    torch.set_num_threads(int(sys.argv[1]))
    for folder in map(pathlib.Path, sys.argv[2:]):
        spec = importlib.util.spec_from_file_location(folder.name, folder / "cell.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = getattr(mod, (folder / "class.txt").read_text())()
        model.load_state_dict(load_file(folder / "w.safetensors"))
        model.eval()
        inputs = load_file(folder / "x.safetensors")
        with torch.no_grad():
            y = model(*[inputs[k] for k in sorted(inputs)])
        save_file({"y": y}, folder / "y.safetensors")
""")


@pytest.mark.slow
def test_emitted_files_run_without_dpcdsl(tmp_path) -> None:
    """Every example's emitted file, with trained running statistics, run in one process
    where dpcdsl cannot be imported, gives what the module built by dpcdsl gives."""
    expected = {}
    for name in EXAMPLE_NAMES:
        example = load_example(name)
        module = build(example.cell, example.in_channels, seed=3)
        # train briefly so the running statistics differ from their initial values
        module(*example.inputs(seed=1))
        module.eval()
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cell.py").write_text(source_of(module))
        (folder / "class.txt").write_text(class_name(example.cell))
        save_file(module.state_dict(), folder / "w.safetensors")
        xs = example.inputs(seed=2)
        save_file({f"{i:02d}": x for i, x in enumerate(xs)}, folder / "x.safetensors")
        with torch.no_grad():
            expected[name] = module(*xs)
    subprocess.run([sys.executable, "-c", STANDALONE, str(torch.get_num_threads()),
                    *(str(tmp_path / n) for n in expected)], check=True, cwd=tmp_path)
    for name, want in expected.items():
        torch.testing.assert_close(load_file(tmp_path / name / "y.safetensors")["y"], want,
                                   rtol=0, atol=0, msg=name)


def test_hostile_names_compile_and_run() -> None:
    cell = Space.from_text(HOSTILE).concrete()
    module = build(cell, 4)
    y = module(torch.randn(2, 4, 9, 9))
    assert y.shape == (2, 8, 9, 9)
    names = {k.split(".")[0] for k in export_weights(module)}
    assert names == {"lambda", "forward", "training", "node_names", "__init__", "torch", "out"}
    assert "ConvBNReLU" in type(module).node_names.values()  # a dropout: no weights
    assert class_name(cell) == "Class"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell_name=IDENT, names=st.lists(IDENT, min_size=5, max_size=5, unique=True))
@pytest.mark.slow
def test_any_identifier_gives_valid_python(cell_name: str, names: list[str]) -> None:
    _, a, b, c, _ = names
    cell = named_cell(cell_name, names)
    source = emit(cell, 3)
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"DepthwiseTaps", "ConvBNReLU", "SepConvBNReLU", "GridPool",
                       class_name(cell)}
    assert not keyword.iskeyword(class_name(cell))
    module = build(cell, 3)
    assert module(torch.randn(2, 3, 6, 5)).shape == (2, 4, 6, 5)
    assert {k.split(".")[0] for k in export_weights(module)} == {a, b, c}


def test_layers_module_lists_every_layer() -> None:
    defined = {n for n, v in vars(_layers).items()
               if (isinstance(v, type) and issubclass(v, (torch.nn.Module,
                                                          torch.autograd.Function))
                   or inspect.isfunction(v)) and v.__module__ == _layers.__name__}
    assert defined == set(_layers.LAYERS)


def test_unsupported_output_stride_is_a_clear_error() -> None:
    from dpcdsl.compiler.rewrite import at_output_stride

    cell = Space.from_text("cell c(x) { return conv(x, kernel = 3, rate = 3) }").concrete()
    with pytest.raises(DpcError, match="rate 3 does not scale to output stride 32"):
        at_output_stride(cell, 32)
    assert at_output_stride(cell, 8).nodes[0].attr("rate") == (6, 6)
