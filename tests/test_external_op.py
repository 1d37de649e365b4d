"""The op registry is the single source of truth: an op registered here, outside the
core, with one lowering per backend, goes through every pass of the language with no
edit to any file of ``dpcdsl/``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from dpcdsl import backends
from dpcdsl.compiler import codegen, graph
from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.checker import check
from dpcdsl.lang.program import load_text
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS, Arg, OpSpec, register, unregister
from dpcdsl.train.proxy import train
from tests.backends.conformance import IN_CHANNELS, probe_cell, probe_inputs

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
