"""The JAX backend against the PyTorch backend: same weights, same outputs; plus golden
sources, standalone files, name safety, the parameter count and jit caching."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
import textwrap

import dpcdsl_jax
import dpcdsl_torch
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from dpcdsl_jax._emit import LAYERS
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost, infer_channels
from dpcdsl.lang.space import Space
from tests.backends.names import HOSTILE, IDENT, named_cell
from tests.backends.torch.conftest import EXAMPLE_NAMES, Example, load_example
from tests.conftest import EXAMPLES, without_layers

PAPER = Space.from_file(EXAMPLES / "dpc_paper.dpc")


@pytest.fixture(params=EXAMPLE_NAMES)
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)


def pair(cell, in_channels, seed: int = 0):
    """A torch module with moved running statistics, and a JAX module with its weights."""
    tm = dpcdsl_torch.build(cell, in_channels, seed=seed)
    chans = infer_channels(cell, in_channels)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tm(*[torch.randn(2, chans[i], 9, 11, generator=g) * 2 + 1 for i in cell.inputs])
    jm = dpcdsl_jax.build(cell, in_channels, seed=seed + 1)
    dpcdsl_jax.import_weights(jm, dpcdsl_torch.export_weights(tm))
    return tm, jm


def nhwc(x: torch.Tensor) -> jax.Array:
    return jnp.asarray(x.detach().numpy().transpose(0, 2, 3, 1))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def eval_outputs(tm, jm, xs):
    tm.eval()
    jm.eval()
    with torch.no_grad():
        ty = tm(*xs).numpy().transpose(0, 2, 3, 1)
    return np.asarray(jitted(jm, *[nhwc(x) for x in xs])), ty


@nnx.jit
def jitted(module, *xs):
    """``module(*xs)`` compiled whole, as training runs it (op by op, each op's
    program is compiled alone for each shape, which is most of these tests' time)."""
    return module(*xs)


@pytest.mark.parametrize("size", [(33, 33), (17, 29)])
@pytest.mark.slow
def test_same_weights_same_outputs_eval(example: Example, size) -> None:
    sizes = {i: size for i in example.cell.inputs}
    if len(example.cell.inputs) == 2:  # the decoder: the context at a quarter size
        sizes[example.cell.inputs[0]] = ((size[0] + 3) // 4, (size[1] + 3) // 4)
    tm, jm = pair(example.cell, example.in_channels)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, example.in_channels[i], *sizes[i], generator=g)
          for i in example.cell.inputs]
    jy, ty = eval_outputs(tm, jm, xs)
    assert jy.shape == ty.shape
    assert rel_err(jy, ty) <= 1e-5


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
@pytest.mark.slow
def test_random_paper_cells_agree(seed: int) -> None:
    cell, _ = PAPER.sample(random.Random(seed))
    tm, jm = pair(cell, 16)
    x = torch.randn(2, 16, 17, 29, generator=torch.Generator().manual_seed(seed % 1000))
    jy, ty = eval_outputs(tm, jm, [x])
    assert rel_err(jy, ty) <= 1e-5
    n = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(jm, nnx.Param)))
    assert n == cost(cell, 16, (17, 29)).params


@pytest.mark.slow
def test_reference_pool_and_align_corners() -> None:
    cell = Space.from_text("cell c(x, channels = 8) { a = pool(x, grid = (2, 4), mode = "
                           "reference, crop = (257, 513)) b = pool(x, grid = (3, 5)) "
                           "return concat(a, b) }").concrete()
    tm, jm = pair(cell, 4)
    x = torch.randn(2, 4, 17, 33)
    jy, ty = eval_outputs(tm, jm, [x])
    assert rel_err(jy, ty) <= 1e-5


@pytest.mark.parametrize("size_in, size_out", [((5, 7), (17, 29)), ((33, 33), (9, 4)),
                                               ((1, 1), (3, 3)), ((4, 6), (4, 6))])
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_matches_torch(size_in, size_out, align_corners: bool) -> None:
    x = torch.randn(2, 3, *size_in)
    want = torch.nn.functional.interpolate(x, size=size_out, mode="bilinear",
                                           align_corners=align_corners)
    got = dpcdsl_jax._layers.resize_bilinear(nhwc(x), size_out, align_corners)
    assert rel_err(np.asarray(got), want.numpy().transpose(0, 2, 3, 1)) <= 1e-5


def no_dropout_train(tm, jm) -> None:
    tm.train()
    for m in tm.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    jm.train()
    for _, m in nnx.iter_graph(jm):
        if isinstance(m, nnx.Dropout):
            m.deterministic = True


@pytest.mark.slow
def test_train_mode_bn_outputs_and_statistics_agree(example: Example) -> None:
    tm, jm = pair(example.cell, example.in_channels)
    no_dropout_train(tm, jm)
    xs = example.inputs(seed=4)
    ty = tm(*xs).detach().numpy().transpose(0, 2, 3, 1)
    jy = np.asarray(jitted(jm, *[nhwc(x) for x in xs]))
    assert rel_err(jy, ty) <= 1e-5
    tw, jw = dpcdsl_torch.export_weights(tm), dpcdsl_jax.export_weights(jm)
    for k in tw:
        if "running" in k:
            np.testing.assert_allclose(jw[k], tw[k], rtol=1e-5, atol=1e-6, err_msg=k)


# every example with the reference's resize; PyTorch's default resize (the loss's only
# difference) on the two-input decoder
@pytest.mark.parametrize(("example", "align_corners"), [
    *((name, True) for name in EXAMPLE_NAMES), ("deeplabv3plus", False)], indirect=["example"])
@pytest.mark.slow
def test_one_sgd_step_agrees(example: Example, align_corners: bool) -> None:
    """The loss on logits resized as the DeepLab reference does (align_corners=True) or
    as PyTorch does by default, and the weights after one step, agree."""
    classes, lr = 5, 0.01
    tm, jm = pair(example.cell, example.in_channels)
    out_channels = infer_channels(example.cell, example.in_channels)[example.cell.output]
    thead = torch.nn.Module()
    thead.cell = tm
    thead.classifier = torch.nn.Conv2d(out_channels, classes, 1)
    jhead = dpcdsl_jax.Head(jm, out_channels, classes, rngs=nnx.Rngs(0))
    dpcdsl_jax.import_weights(jhead, dpcdsl_torch.export_weights(thead))
    no_dropout_train(tm, jm)
    xs = example.inputs(seed=6)
    size = example.sizes[example.cell.inputs[-1]]
    labels = torch.randint(0, classes, (2, size[0] * 2, size[1] * 2))
    labels[:, :3] = 255  # ignored pixels

    opt = torch.optim.SGD(thead.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5)
    logits = torch.nn.functional.interpolate(thead.classifier(tm(*xs)), size=labels.shape[1:],
                                             mode="bilinear", align_corners=align_corners)
    loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255)
    opt.zero_grad()
    loss.backward()
    opt.step()

    train_step, _ = dpcdsl_jax.make_steps(ignore_index=255, align_corners=align_corners)
    optimizer = dpcdsl_jax.optimizer(jhead, dpcdsl_jax.poly_sgd(lr, steps=100))
    (jloss,) = train_step([jhead], [optimizer], [nhwc(x) for x in xs],
                          jnp.asarray(labels.numpy()))
    assert abs(float(jloss) - loss.item()) <= 1e-4 * abs(loss.item())
    tw, jw = dpcdsl_torch.export_weights(thead), dpcdsl_jax.export_weights(jhead)
    assert tw.keys() == jw.keys()
    for k in tw:
        np.testing.assert_allclose(jw[k], tw[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_parameter_count_matches_cost(example: Example) -> None:
    jm = dpcdsl_jax.build(example.cell, example.in_channels)
    n = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(jm, nnx.Param)))
    assert n == cost(example.cell, example.in_channels, example.sizes).params


def test_golden_source(example: Example, golden) -> None:
    source = dpcdsl_jax.emit(example.cell, example.in_channels)
    golden(f"jax/{example.name}.py", without_layers(source, LAYERS))


#: runs each emitted file of the folders it is given (cell.py, its class name in
#: class.txt, inputs x.npz) with dpcdsl unimportable; writes y.npy beside each
STANDALONE = textwrap.dedent("""
    import importlib.util, pathlib, sys
    sys.modules["dpcdsl"] = None
    sys.modules["dpcdsl_jax"] = None
    import numpy as np
    from flax import nnx
    for folder in map(pathlib.Path, sys.argv[1:]):
        spec = importlib.util.spec_from_file_location(folder.name, folder / "cell.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = getattr(mod, (folder / "class.txt").read_text())(rngs=nnx.Rngs(3))
        model.eval()
        inputs = np.load(folder / "x.npz")
        run = nnx.jit(lambda m, *xs: m(*xs))  # compiled whole, as jitted() below
        np.save(folder / "y.npy", np.asarray(run(model, *[inputs[k] for k in sorted(inputs)])))
""")


@pytest.mark.slow
def test_emitted_files_run_without_dpcdsl(tmp_path) -> None:
    """Every example's emitted file, run in one process where dpcdsl cannot be imported,
    gives what the module built by dpcdsl gives."""
    expected = {}
    for name in EXAMPLE_NAMES:
        example = load_example(name)
        source = dpcdsl_jax.emit(example.cell, example.in_channels)
        roots = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom)
                 else n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.Import | ast.ImportFrom)}
        assert roots == {"__future__", "jax", "flax"}, name
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cell.py").write_text(source)
        (folder / "class.txt").write_text(dpcdsl_jax.class_name(example.cell))
        xs = [nhwc(x) for x in example.inputs(seed=2)]
        np.savez(folder / "x.npz", **{f"{i:02d}": np.asarray(x) for i, x in enumerate(xs)})
        jm = dpcdsl_jax.build(example.cell, example.in_channels, seed=3)
        jm.eval()
        expected[name] = np.asarray(jitted(jm, *xs))
    subprocess.run([sys.executable, "-c", STANDALONE, *(str(tmp_path / n) for n in expected)],
                   check=True, cwd=tmp_path)
    for name, want in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / name / "y.npy"), want, err_msg=name)


@pytest.mark.slow
def test_hostile_names() -> None:
    cell = Space.from_text(HOSTILE).concrete()
    jm = dpcdsl_jax.build(cell, 4)
    assert jitted(jm, jnp.ones((2, 9, 9, 4))).shape == (2, 9, 9, 8)
    names = {k.split(".")[0] for k in dpcdsl_jax.export_weights(jm)}
    tm = dpcdsl_torch.build(cell, 4)
    assert names == {k.split(".")[0] for k in dpcdsl_torch.export_weights(tm)}


@settings(max_examples=40, deadline=None)
@given(cell_name=IDENT, names=st.lists(IDENT, min_size=5, max_size=5, unique=True))
@pytest.mark.slow
def test_any_identifier_gives_valid_python(cell_name: str, names: list[str]) -> None:
    cell = named_cell(cell_name, names)
    tree = ast.parse(dpcdsl_jax.emit(cell, 3))
    top = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    assert top == {"drawn", "lecun_normal", "_truncated", "resize_bilinear", "grid_pool",
                   "adaptive_avg_pool", "BatchNorm", "GroupNorm", "activate", "make_norm",
                   "normed", "atrous", "ConvBNReLU", "SepConvBNReLU", "GridPool",
                   dpcdsl_jax.class_name(cell)}
    jm = dpcdsl_jax.build(cell, 3)
    assert jm(jnp.ones((2, 6, 5, 3))).shape == (2, 6, 5, 4)


def test_jit_compiles_once() -> None:
    ex = load_example("dpc_cityscapes")
    jm = dpcdsl_jax.build(ex.cell, ex.in_channels)
    jm.eval()
    graphdef, state = nnx.split(jm)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    x = jnp.ones((2, 17, 13, 24))
    first = forward(state, x)
    second = forward(state, x + 1)
    assert forward._cache_size() == 1
    assert first.shape == second.shape == (2, 17, 13, 256)


def test_wrong_shape_names_the_tensor() -> None:
    ex = load_example("dpc_cityscapes")
    jm = dpcdsl_jax.build(ex.cell, 24)
    weights = dpcdsl_jax.export_weights(jm)
    weights["b1.depthwise.weight"] = np.zeros((3, 1, 3, 3), np.float32)
    with pytest.raises(DpcError, match=r"b1\.depthwise\.weight: expected shape "
                                       r"\(256, 1, 3, 3\), got \(3, 1, 3, 3\)"):
        dpcdsl_jax.import_weights(jm, weights)


@pytest.mark.slow
def test_safetensors_between_backends(tmp_path) -> None:
    ex = load_example("aspp")
    tm, _ = pair(ex.cell, ex.in_channels)
    dpcdsl_torch.save_weights(tm, tmp_path / "w.safetensors")
    jm = dpcdsl_jax.build(ex.cell, ex.in_channels, seed=9)
    dpcdsl_jax.load_weights(jm, tmp_path / "w.safetensors")
    back = dpcdsl_torch.build(ex.cell, ex.in_channels, seed=5)
    dpcdsl_jax.save_weights(jm, tmp_path / "w2.safetensors")
    dpcdsl_torch.load_weights(back, tmp_path / "w2.safetensors")
    a, b = dpcdsl_torch.export_weights(tm), dpcdsl_torch.export_weights(back)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_poly_schedule() -> None:
    tx = dpcdsl_jax.poly_sgd(0.01, steps=10, momentum=0.0, weight_decay=0.0)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    steps = []
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(updates["w"]))
    expected = [0.01 * (1 - k / 10) ** 0.9 for k in range(3)]
    np.testing.assert_allclose(steps, expected, rtol=1e-6)
    assert isinstance(tx, optax.GradientTransformation)


#: size pairs where PyTorch's float32 ratio rounds to another pixel than exact integer
#: arithmetic would, and ordinary ones
NEAREST_PAIRS = [(6, 74), (12, 74), (14, 46), (21, 69), (26, 22), (39, 33), (39, 66),
                 (3, 7), (7, 3), (8, 16), (16, 8), (5, 5), (1, 9), (9, 1)]


@pytest.mark.slow
def test_nearest_resize_picks_the_pixels_pytorch_picks() -> None:
    from dpcdsl_jax._layers import resize_nearest

    for n_in, n_out in NEAREST_PAIRS:
        x = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in, 1)
        want = torch.nn.functional.interpolate(x, size=(n_out, 1), mode="nearest")
        got = resize_nearest(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), (n_out, 1))
        np.testing.assert_array_equal(np.asarray(got)[0, :, 0, 0], want[0, 0, :, 0].numpy(),
                                      err_msg=f"{n_in} -> {n_out}")
