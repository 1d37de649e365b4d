"""Canonical weights: names from the .dpc nodes, round trips, clear errors, safetensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dpcdsl_torch import build, export_weights, import_weights, load_weights, save_weights

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.backends.torch.conftest import Example, load_example


def test_canonical_names_follow_the_nodes() -> None:
    ex = load_example("dpc_cityscapes")
    names = set(export_weights(build(ex.cell, 24)))
    assert "b0.depthwise.weight" in names
    assert "b0.pointwise_bn.running_var" in names
    assert "out.conv.weight" in names
    assert not any(n.endswith("num_batches_tracked") for n in names)


def test_round_trip_between_modules(example: Example) -> None:
    a = build(example.cell, example.in_channels, seed=1)
    a(*example.inputs())  # move the running statistics
    b = build(example.cell, example.in_channels, seed=2)
    import_weights(b, export_weights(a))
    a.eval()
    b.eval()
    xs = example.inputs(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(a(*xs), b(*xs), rtol=0, atol=0)


def test_safetensors_round_trip(example: Example, tmp_path) -> None:
    a = build(example.cell, example.in_channels, seed=1)
    b = build(example.cell, example.in_channels, seed=2)
    save_weights(a, tmp_path / "w.safetensors")
    load_weights(b, tmp_path / "w.safetensors")
    wa, wb = export_weights(a), export_weights(b)
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    # no pickle: the file is a safetensors header followed by raw tensors
    head = (tmp_path / "w.safetensors").read_bytes()[8:9]
    assert head == b"{"


def test_wrong_shape_names_the_tensor_and_both_shapes() -> None:
    ex = load_example("dpc_cityscapes")
    module = build(ex.cell, 24)
    weights = export_weights(module)
    weights["b1.depthwise.weight"] = np.zeros((3, 1, 3, 3), np.float32)
    before = export_weights(module)["b0.depthwise.weight"].copy()
    weights["b0.depthwise.weight"] = before + 1
    with pytest.raises(DpcError) as e:
        import_weights(module, weights)
    assert "b1.depthwise.weight: expected shape (256, 1, 3, 3), got (3, 1, 3, 3)" in str(e.value)
    # nothing was loaded
    assert np.array_equal(export_weights(module)["b0.depthwise.weight"], before)


def test_missing_and_extra_tensors_are_all_named() -> None:
    ex = load_example("aspp")
    module = build(ex.cell, 24)
    weights = export_weights(module)
    del weights["a.bn.bias"], weights["e.conv.weight"]
    weights["z.conv.weight"] = np.zeros(1, np.float32)
    with pytest.raises(DpcError, match=r"missing: a\.bn\.bias, e\.conv\.weight; "
                                       r"unexpected: z\.conv\.weight"):
        import_weights(module, weights)


def test_keyword_names_keep_their_dpc_name_in_weights(tmp_path) -> None:
    cell = Space.from_text("cell c(x, channels = 4) { class = conv(x) "
                           "return sepconv(class) }").concrete()
    a, b = build(cell, 3, seed=0), build(cell, 3, seed=1)
    assert "class.conv.weight" in export_weights(a)
    save_weights(a, tmp_path / "w.safetensors")
    load_weights(b, tmp_path / "w.safetensors")
    assert torch.equal(a.class_.conv.weight, b.class_.conv.weight)


def test_unreadable_weights_file_is_a_clear_error(tmp_path) -> None:
    ex = load_example("aspp")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DpcError, match="cannot read weights from .*bad.safetensors"):
        load_weights(build(ex.cell, 24), bad)


@pytest.mark.slow
def test_weights_that_are_not_finite_floats_are_refused_by_every_backend(tmp_path) -> None:
    from dpcdsl import backends

    ex = load_example("aspp")
    for name in sorted(backends.available()):
        backend = backends.get(name)
        module = backend.build(ex.cell, 24)
        weights = backend.export_weights(module)
        weights["a.conv.weight"] = weights["a.conv.weight"].astype(np.int32)
        weights["b.bn.running_var"] = weights["b.bn.running_var"].copy()
        weights["b.bn.running_var"][:2] = np.nan
        weights["c.bn.weight"] = weights["c.bn.weight"].astype(np.float16)  # lossless: fine
        with pytest.raises(DpcError) as e:
            backend.import_weights(module, weights)
        text = str(e.value)
        assert "a.conv.weight: expected floating-point values, got int32" in text, name
        assert "b.bn.running_var: 2 values NaN or infinite" in text, name
        assert "c.bn.weight" not in text, name
