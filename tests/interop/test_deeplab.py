import json

import numpy as np
import pytest

from dpcdsl.compiler.interop import deeplab
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES

JSON = EXAMPLES / "deeplab" / "dense_prediction_cell_branch5_top1_cityscapes.json"


def test_top1_json_is_the_cityscapes_example():
    _, cell = deeplab.read(JSON, "dpc_cityscapes")
    assert cell == Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()


def test_round_trip_gives_equal_json(tmp_path):
    _, cell = deeplab.read(JSON)
    out = deeplab.write(cell, tmp_path / "out.json")
    assert json.loads(out.read_text()) == json.loads(JSON.read_text())


def test_an_import_with_the_reference_pooling_exports_the_same_json(tmp_path):
    """import-deeplab --crop, then export-deeplab: the JSON it came from, and a note
    of the crop the reference must run with."""
    import subprocess
    import sys

    data = [{"op": "conv", "kernel": 3, "rate": [6, 3], "input": -1},
            {"op": "pyramid_pooling", "grid_size": [2, 4], "input": 0},
            {"op": "conv", "kernel": 1, "rate": [1, 1], "input": -1}]
    src = tmp_path / "cell.json"
    src.write_text(json.dumps(data))

    def dpcc(*args):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    r = dpcc("import-deeplab", src, "--crop", "513", "-o", tmp_path / "cell.dpc")
    assert r.returncode == 0, r.stderr
    assert "mode = reference, crop = 513" in (tmp_path / "cell.dpc").read_text()
    r = dpcc("export-deeplab", tmp_path / "cell.dpc", "-o", tmp_path / "back.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "back.json").read_text()) == data
    assert "note: b1 pools as the reference does at crop 513x513" in r.stderr


def test_samples_with_pooling_round_trip():
    space = Space.from_file(EXAMPLES / "dpc_paper.dpc")
    for seed in range(30):
        cell, _ = space.sample(seed)
        text = deeplab.to_dpc_text(deeplab.to_json(cell), "dpc_paper", pooling="paper")
        assert deeplab.from_text(text) == cell


@pytest.mark.parametrize("data, message", [
    ([], "non-empty JSON list"),
    ([{"op": "conv", "kernel": 3, "rate": [1, 1], "input": 0}], "earlier branch"),
    ([{"op": "conv", "kernel": 4, "rate": [1, 1], "input": -1}], "must be 1 or an odd size"),
    ([{"op": "conv", "kernel": [3, 5], "rate": [1, 1], "input": -1}], "must be 1 or an odd"),
    ([{"op": "conv", "kernel": "3", "rate": [1, 1], "input": -1}], "must be 1 or an odd"),
    ([{"op": "conv", "kernel": 3, "rate": [1, 1], "input": 1}], "earlier branch"),
    ([{"op": "conv", "kernel": 3, "rate": [0, 1], "input": -1}], "`rate` must be"),
    ([{"op": "pyramid_pooling", "grid_size": [2, 2], "input": -1}], "needs|crop"),
    ([{"op": "magic", "input": -1}], "unknown op 'magic'"),
    ([{"op": "pyramid_pooling", "grid_size": [0, 2], "input": -1}], "grid_size"),
])
def test_bad_json_is_named(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DpcError, match=message):
        deeplab.read(path)


def test_aspp_cannot_be_exported():
    aspp = Space.from_file(EXAMPLES / "aspp.dpc").concrete()
    with pytest.raises(DpcError, match="no DeepLab JSON form"):
        deeplab.to_json(aspp)


def test_every_form_the_reference_accepts():
    data = [{"op": "conv", "kernel": [1, 1], "rate": [4, 4], "input": -1},
            {"op": "conv", "kernel": [3, 3], "rate": [1, 6], "input": -5},
            {"op": "conv", "kernel": 5, "rate": [2, 2], "input": 0},
            {"op": "pyramid_pooling", "grid_size": [2, 4], "input": -1}]
    cell = deeplab.from_text(deeplab.to_dpc_text(data, "forms", crop=513))
    nodes = {n.name: n for n in cell.nodes}
    assert nodes["b0"].op == "conv" and nodes["b0"].attr("kernel") == 1
    assert nodes["b1"].op == "sepconv" and nodes["b1"].attr("rate") == (1, 6)
    assert nodes["b1"].inputs == ("x",)
    assert nodes["b2"].attr("kernel") == 5 and nodes["b2"].inputs == ("b0",)
    assert nodes["b3"].attr("mode") == "reference" and nodes["b3"].attr("crop") == (513, 513)
    paper = deeplab.from_text(deeplab.to_dpc_text(data, "forms", pooling="paper"))
    assert {n.name: n for n in paper.nodes}["b3"].attr("mode") == "paper"


@pytest.mark.parametrize("edit, message", [
    (("b1 = sepconv(x, kernel = 3, rate = 2)", "b1 = sepconv(x, kernel = 3, rate = 2, "
      "channels = 128)"), "channels = 128"),
    (("b1 = sepconv(x, kernel = 3, rate = 2)", "b1 = sepconv(x, kernel = 3, rate = 2, "
      "norm = none)"), "norm = none"),
    (("b1 = sepconv(x, kernel = 3, rate = 2)", "b1 = sepconv(x, kernel = 3, rate = 2, "
      "norm = gn, groups = 8)"), "norm = gn"),
    (("b0 = conv(x, kernel = 1)", "b0 = conv(x, kernel = 1, act = none)"), "act = none"),
    (("b0 = conv(x, kernel = 1)", "b0 = conv(x, kernel = 1, act = hardswish)"),
     "act = hardswish"),
    (("b0 = conv(x, kernel = 1)", "b0 = conv(x, kernel = 1, bias = true)"), "bias = true"),
    (("p = 0.1", "p = 0.2"), "dropout [0.2]"),
    (("dropout(concat(b0, b1, b2), p = 0.1)", "concat(b0, b1, b2)"), "dropout none"),
])
def test_lossy_export_is_refused(edit, message):
    text = ("cell c(x, channels = 256) {\n  b0 = conv(x, kernel = 1)\n"
            "  b1 = sepconv(x, kernel = 3, rate = 2)\n  b2 = pool(x, grid = 2)\n"
            "  return conv(dropout(concat(b0, b1, b2), p = 0.1), kernel = 1)\n}\n")
    assert deeplab.to_json(Space.from_text(text).concrete())  # the unedited cell exports
    old, new = edit
    with pytest.raises(DpcError, match="cannot export .* losslessly") as e:
        deeplab.to_json(Space.from_text(text.replace(old, new)).concrete())
    assert message in str(e.value)


# --------------------------------------------------------------------------------------
# The reference's computation of a pyramid-pooling cell, re-implemented in numpy from
# research/deeplab/core/dense_prediction_cell.py: a stride-1 VALID average pool with the
# window scale_dimension(scale_dimension(crop, 1 / OS), 1 / g), a 1x1 conv + BN + ReLU,
# then resize_bilinear(align_corners=True) to the feature size.
def _scale_dimension(dim: int, scale: float) -> int:
    return int((float(dim) - 1.0) * scale + 1.0)


def _conv_bn_relu(x, w, bn):  # x (C, H, W), w (O, C, 1, 1)
    y = np.einsum("oc,chw->ohw", w[:, :, 0, 0], x)
    gamma, beta, mean, var = bn
    y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    return np.maximum(y * gamma[:, None, None] + beta[:, None, None], 0.0)


def _resize_align_corners(x, size):
    out = x
    for axis, n_out in ((1, size[0]), (2, size[1])):
        n_in = out.shape[axis]
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (src - lo).reshape([-1 if a == axis else 1 for a in range(3)])
        out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
    return out


def _reference_cell(x, branches, weights, crop, output_stride):
    from numpy.lib.stride_tricks import sliding_window_view

    size = [_scale_dimension(crop, 1.0 / output_stride)] * 2
    outs = []
    for i, item in enumerate(branches):
        bn = [weights[f"b{i}.bn.{k}"] for k in ("weight", "bias", "running_mean",
                                                  "running_var")]
        w = weights[f"b{i}.conv.weight"]
        if item["op"] == "conv":
            outs.append(_conv_bn_relu(x, w, bn))
            continue
        window = [_scale_dimension(size[0], 1.0 / item["grid_size"][0]),
                  _scale_dimension(size[1], 1.0 / item["grid_size"][1])]
        pooled = sliding_window_view(x, window, axis=(1, 2)).mean(axis=(-2, -1))
        outs.append(_resize_align_corners(_conv_bn_relu(pooled, w, bn), size))
    bn = [weights[f"out.bn.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    return _conv_bn_relu(np.concatenate(outs), weights["out.conv.weight"], bn)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_imported_pyramid_pooling_computes_as_the_reference(output_stride):
    import dpcdsl_torch
    import torch

    from dpcdsl.compiler.rewrite import at_output_stride

    branches = [{"op": "conv", "kernel": 1, "rate": [1, 1], "input": -1},
                {"op": "pyramid_pooling", "grid_size": [1, 1], "input": -1},
                {"op": "pyramid_pooling", "grid_size": [2, 4], "input": -1},
                {"op": "pyramid_pooling", "grid_size": [8, 2], "input": -1}]
    crop, channels = 513, 6
    cell = at_output_stride(deeplab.from_text(
        deeplab.to_dpc_text(branches, "pp", crop=crop, channels=channels)), output_stride)
    rng = np.random.default_rng(0)
    module = dpcdsl_torch.build(cell, 5).double().eval()
    weights = {k: rng.normal(size=v.shape) for k, v in
               dpcdsl_torch.export_weights(module).items()}
    for k in weights:
        if k.endswith("running_var"):
            weights[k] = np.abs(weights[k]) + 0.5
    dpcdsl_torch.import_weights(module, weights)
    side = _scale_dimension(crop, 1.0 / output_stride)
    x = rng.normal(size=(5, side, side))
    with torch.no_grad():
        got = module(torch.from_numpy(x[None]))[0].numpy()
    want = _reference_cell(x, branches, weights, crop, output_stride)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(np.max(np.abs(want)), 1.0)
