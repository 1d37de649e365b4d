"""The op registry is the single source of truth: an op registered here, outside the
core, with one lowering per backend, goes through every pass of the language with no
edit to any file of ``dpcdsl/``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

from dpcdsl import backends
from dpcdsl.compiler import codegen, graph
from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.checker import check
from dpcdsl.lang.program import load_text
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS, Arg, OpSpec, Weight, register, unregister
from dpcdsl.train.proxy import train
from tests.backends.conformance import IN_CHANNELS, probe_cell, probe_inputs, probe_weights

SCALE = OpSpec(
    "scale", 1, 1, (Arg("factor", "float", 1.0, doc="the multiplier"),),
    "multiplies every element by a constant",
    label=lambda a: f"scale x{a['factor']:g}", color="#e0d0f0",
    example="scale(x, factor = 0.5)",
)
SPACE = "cell s(x, channels = 8) { return conv(one_of(scale(x, factor = {0.5, 2.0}), " \
        "sepconv(x)), kernel = 1) }"


@pytest.fixture
def scale_op() -> Iterator[None]:
    register(SCALE)
    lowering = codegen.expression(lambda ins, a: f"{ins[0]} * {a['factor']!r}")
    tables = [backends.get(name).lowerings for name in backends.available()]
    for table in tables:
        table["scale"] = lowering
    try:
        yield
    finally:
        unregister("scale")
        for table in tables:
            del table["scale"]


def test_scale_is_not_built_in() -> None:
    assert "scale" not in OPS


def test_parses_checks_and_names_a_misspelt_argument(scale_op: None) -> None:
    assert check(load_text(SPACE)) == []
    diags = check(load_text("cell s(x) { return scale(x, factr = 2.0) }"))
    assert [d.message for d in diags] == \
        ["'scale' has no argument 'factr'. Did you mean 'factor'?"]
    diags = check(load_text("cell s(x) { return scale(x, factor = true) }"))
    assert "expected a finite number" in diags[0].message


def test_counts_samples_and_prints(scale_op: None) -> None:
    space = Space.from_text(SPACE)
    assert space.count() == 3
    cells = {space.sample(seed)[0] for seed in range(40)}
    assert len(cells) == 3
    scaled = next(c for c in cells if any(n.op == "scale" for n in c.nodes))
    assert Space.from_text(scaled.canonical_text()).concrete() == scaled


def test_costs_and_draws(scale_op: None) -> None:
    cell = Space.from_text("cell s(x, channels = 8) { return conv(scale(x, factor = 2.0), "
                           "kernel = 1) }").concrete()
    report = cost(cell, 4, (5, 5))
    assert report.params == 4 * 8 + 2 * 8
    assert [n.detail for n in report.nodes if n.op == "scale"] == ["scale x2"]
    dot = graph.to_dot(cell)
    assert "scale x2" in dot and "#e0d0f0" in dot


def test_compiles_on_every_backend_with_equal_outputs(scale_op: None) -> None:
    cell = probe_cell("scale")
    x = probe_inputs(cell)
    for name in backends.available():
        backend = backends.get(name)
        assert "* 0.5" in backend.emit(cell, IN_CHANNELS)
        y = backend.forward(backend.build(cell, IN_CHANNELS), x)
        np.testing.assert_allclose(y, x[0] * 0.5, rtol=1e-6)


def test_a_backend_without_its_lowering_says_so(scale_op: None) -> None:
    cell = probe_cell("scale")
    table = backends.get("jax").lowerings
    lowering = table.pop("scale")
    try:
        with pytest.raises(DpcError, match="the jax backend has no lowering for op 'scale'"):
            backends.get("jax").emit(cell, IN_CHANNELS)
    finally:
        table["scale"] = lowering


@pytest.mark.slow
def test_trains_on_the_proxy_task(scale_op: None, task_file) -> None:
    from dpcdsl.train.data.task import load_task

    task = load_task(task_file(dataset={"train_size": 8, "val_size": 4},
                               train={"steps": 4}))
    cell = Space.from_text("cell s(x, channels = 8) { return conv(scale(x, factor = 0.5), "
                           "kernel = 1) }").concrete()
    for name in backends.available():
        result = train(cell, task, backend=name)
        assert result.steps == 4 and 0 <= result.miou <= 100


# --------------------------------------------------------------- an op with weights
# ``affine(x)``: a learned scale and shift per channel. Its layers are its own, one per
# backend; their source is copied into the emitted files as the library's are.
class TorchAffine(torch.nn.Module):
    def __init__(self, channels: int, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class JaxAffine(nnx.Module):
    def __init__(self, channels: int, bn_momentum: float = 0.0003, bn_eps: float = 1e-5,
                 *, rngs: nnx.Rngs) -> None:
        self.weight = nnx.Param(jnp.ones(channels))
        self.bias = nnx.Param(jnp.zeros(channels))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.weight[...] + self.bias[...]


AFFINE = OpSpec(
    "affine", 1, 1, (), "a learned scale and shift per channel",
    weights=lambda attrs, ins, out: {"weight": Weight((out.channels,)),
                                     "bias": Weight((out.channels,))},
    madds=lambda attrs, ins, out, weights: out.channels * math.prod(out.size or (0, 0)),
    example="affine(x)",
)
LAYERS = {"torch": TorchAffine, "jax": JaxAffine}


@pytest.fixture
def affine_op() -> Iterator[None]:
    register(AFFINE)
    tables = {name: backends.get(name).lowerings for name in LAYERS}
    for name, table in tables.items():
        table["affine"] = codegen.layer_lowering(LAYERS[name], lambda a, cin, cout: f"{cin[0]}")
    try:
        yield
    finally:
        unregister("affine")
        for table in tables.values():
            del table["affine"]


def test_an_op_with_weights_and_its_own_layers_runs_on_every_backend(affine_op: None) -> None:
    """The declared weights are the ones each backend's module holds, the emitted files
    carry the op's layer and run without dpcdsl, and the same weights give the same
    outputs on both backends."""
    cell = probe_cell("affine")
    x = probe_inputs(cell)
    weights = probe_weights(cell)
    assert set(weights) == {"out.weight", "out.bias"}
    outputs = []
    for name, layer in LAYERS.items():
        backend = backends.get(name)
        source = backend.emit(cell, IN_CHANNELS)
        assert f"class {layer.__name__}(" in source
        namespace: dict[str, object] = {}
        exec(compile(source, f"<{name}>", "exec"), namespace)  # standalone: no dpcdsl
        module = backend.build(cell, IN_CHANNELS)
        assert {k: v.shape for k, v in backend.export_weights(module).items()} == \
            {k: v.shape for k, v in weights.items()}
        backend.import_weights(module, weights)
        outputs.append(backend.forward(module, x))
    scale, shift = weights["out.weight"], weights["out.bias"]
    np.testing.assert_allclose(outputs[0], x[0] * scale[:, None, None] + shift[:, None, None],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-6, atol=1e-6)
    assert cost(cell, IN_CHANNELS, (6, 8)).params == 2 * IN_CHANNELS["x"]
