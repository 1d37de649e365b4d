"""The backend conformance suite: runs once per installed backend
(``backends.available()``) and once per op of the registry (``OPS``), so a new backend
or a new op is tested without anyone listing it here."""

from __future__ import annotations

import numpy as np
import pytest

from dpcdsl import backends
from dpcdsl.compiler.canonical import weights_of
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS
from tests.backends.conformance import (
    IN_CHANNELS,
    SIZES,
    expected_shape,
    probe_cell,
    probe_inputs,
    probe_weights,
    variants,
)

BACKENDS = sorted(backends.available())


def test_every_installed_backend_is_tested() -> None:
    assert {"torch", "jax"} <= set(BACKENDS)


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_meets_the_contract(name: str) -> None:
    backend = backends.get(name)
    assert isinstance(backend, backends.Backend)
    assert backend.name == name
    assert set(OPS) - set(backend.lowerings) == set(), "ops without a lowering"


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_an_example(op: str) -> None:
    assert OPS[op].example, f"op '{op}' declares no example call"
    probe_cell(op)


CASES = [(op, "") for op in sorted(OPS)] + variants()
IDS = [f"{op}({extra})" if extra else op for op, extra in CASES]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("op", "extra"), CASES, ids=IDS)
@pytest.mark.slow
def test_op_lowers_with_its_declared_weights(op: str, extra: str, name: str) -> None:
    backend = backends.get(name)
    cell = probe_cell(op, extra)
    source = backend.emit(cell, IN_CHANNELS)
    compile(source, f"<{op}>", "exec")
    module = backend.build(cell, IN_CHANNELS, seed=0)
    exported = backend.export_weights(module)
    declared = weights_of(cell, IN_CHANNELS)
    assert {k: tuple(v.shape) for k, v in exported.items()} == \
        {k: w.shape for k, w in declared.items()}
    params = sum(int(np.prod(v.shape)) for k, v in exported.items()
                 if declared[k].kind != "stat")
    assert params == cost(cell, IN_CHANNELS, SIZES).params
    backend.import_weights(module, probe_weights(cell))
    y = backend.forward(module, probe_inputs(cell))
    assert y.shape == expected_shape(cell)
    assert np.isfinite(y).all()


@pytest.mark.parametrize(("op", "extra"), CASES, ids=IDS)
@pytest.mark.slow
def test_same_weights_give_the_same_outputs_on_every_backend(op: str, extra: str) -> None:
    cell = probe_cell(op, extra)
    weights, inputs = probe_weights(cell), probe_inputs(cell)
    outputs = {}
    for name in BACKENDS:
        backend = backends.get(name)
        module = backend.build(cell, IN_CHANNELS, seed=1)
        backend.import_weights(module, weights)
        outputs[name] = backend.forward(module, inputs)
    first = outputs[BACKENDS[0]]
    for name, y in outputs.items():
        np.testing.assert_allclose(y, first, rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_backend_missing_required_hooks_is_named() -> None:
    import types

    from dpcdsl.errors import DpcError

    fake = types.SimpleNamespace(name="fake", priority=0, lowerings={}, emit=print,
                                 build=None)
    with pytest.raises(DpcError, match="missing export_weights, import_weights; "
                       "not callable: build"):
        backends.check_contract(fake, "fake")


@pytest.mark.parametrize("name", sorted(backends.available()))
def test_every_backend_meets_the_typed_contract(name: str) -> None:
    """The required part as the Protocol declares it, and each capability a backend
    has, in full: a capability is all of its hooks or none."""
    backend = backends.get(name)
    assert isinstance(backend, backends.Backend)
    for cap in backends.CAPABILITIES.values():
        has = [h for h in cap.hooks if getattr(backend, h, None) is not None]
        assert has in ([], list(cap.hooks)) or set(cap.hooks) - set(has) <= set(cap.defaults), \
            (name, cap.title, has)


SIZED = sorted(op for op, spec in OPS.items() if spec.at_size is not None)


def test_atrous_convs_have_a_rule_for_their_size() -> None:
    assert {"conv", "sepconv"} <= set(SIZED)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("op", SIZED)
@pytest.mark.parametrize("rate", [(7, 2), (1, 9), (7, 12), (6, 8), (5, 7)])
def test_the_size_rule_keeps_the_computation(op: str, rate: tuple[int, int],
                                             name: str) -> None:
    """``at_size``'s canonical form of a node computes the same outputs (same weights)
    on inputs of that size: on the 6x8 probe map every rate of 6 and up on h (8 and up
    on w) reads only padding beyond the centre tap, so it becomes 6 (8)."""
    from dpcdsl.compiler.rewrite import at_size

    cell = Space.from_text(f"cell probe(x, small) {{ return {op}(x, kernel = 3, rate = "
                           f"({rate[0]}, {rate[1]}), channels = 6) }}").concrete()
    sized = at_size(cell, IN_CHANNELS, SIZES)
    node_rate = dict(sized.nodes[0].attrs)["rate"]
    assert node_rate == (min(rate[0], 6), min(rate[1], 8))
    assert (sized.hash == cell.hash) == (rate[0] <= 6 and rate[1] <= 8)
    backend = backends.get(name)
    weights, inputs = probe_weights(cell), probe_inputs(cell)
    outputs = []
    for c in (cell, sized):
        module = backend.build(c, IN_CHANNELS, seed=0)
        backend.import_weights(module, weights)
        outputs.append(backend.forward(module, inputs))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def _unspecialised(module):
    """The namespace the module's emitted source runs in, with ``atrous`` swapped for
    the plain full conv: the module as it was before shape specialisation."""
    import contextlib
    import inspect

    namespace = next(f.__globals__ for f in vars(type(module)).values()
                     if inspect.isfunction(f))

    @contextlib.contextmanager
    def swapped():
        own = namespace["atrous"]
        namespace["atrous"] = lambda x, conv: conv(x)
        try:
            yield
        finally:
            namespace["atrous"] = own
    return swapped()


#: (kernel, rate) on the 6x8 probe map: below, at and above the size on each axis,
#: and a 5x5 kernel whose outermost taps alone read padding
AROUND = [(3, (5, 7)), (3, (6, 8)), (3, (7, 2)), (3, (2, 9)), (3, (9, 12)), (5, (3, 4)),
          (5, (2, 3)), (1, (1, 1))]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("op", SIZED)
@pytest.mark.parametrize(("kernel", "rate"), AROUND)
@pytest.mark.slow
def test_only_the_taps_that_touch_pixels_run(op: str, kernel: int, rate: tuple[int, int],
                                              name: str) -> None:
    """Emitted atrous convs skip the taps that read only padding on the map they get;
    the outputs equal the full convs' (the unspecialised module, same weights)."""
    cell = Space.from_text(f"cell probe(x, small) {{ return {op}(x, kernel = {kernel}, rate = "
                           f"({rate[0]}, {rate[1]}), channels = 6) }}").concrete()
    backend = backends.get(name)
    module = backend.build(cell, IN_CHANNELS, seed=0)
    backend.import_weights(module, probe_weights(cell))
    inputs = probe_inputs(cell)
    fast = backend.forward(module, inputs)
    with _unspecialised(module):
        full = backend.forward(module, inputs)
    np.testing.assert_allclose(fast, full, rtol=1e-5, atol=1e-5)
