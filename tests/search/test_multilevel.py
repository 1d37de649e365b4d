"""Cells that read several backbone levels (a DeepLabv3+ decoder: context at stride 16,
low-level features at stride 4) through every path that trains: the proxy in both
backends, end-to-end training, a search and its re-ranking, on a multi-level cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.space import Space
from dpcdsl.search.driver import SearchConfig, search
from dpcdsl.search.rerank import rerank
from dpcdsl.search.study import counted
from dpcdsl.train.data.cache import open_cache
from dpcdsl.train.data.task import load_task
from dpcdsl.train.proxy import fed, train
from tests.conftest import EXAMPLES

DECODERS = """
cell decoder(context, low, channels = 16) {
  reduced = conv(low, kernel = 1, channels = {8, 16})
  up = upsample(context, like = reduced)
  return one_of(sepconv(concat(up, reduced), kernel = 3, rate = {1, 2}),
                conv(concat(up, reduced), kernel = 1))
}
"""


@pytest.fixture
def write(tmp_path, task_file):
    """The decoder space and a task file whose backbone feeds ``inputs``."""
    def make(inputs: list[int] | None = [16, 4], **changes) -> tuple[Path, Path]:
        (tmp_path / "space.dpc").write_text(DECODERS)
        return tmp_path / "space.dpc", task_file(backbone={"inputs": inputs}, **changes)
    return make


def dpcc(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_proxy_trains_a_decoder_on_two_cached_levels(write):
    _, task_file = write()
    task = load_task(task_file)
    cell = Space.from_file(EXAMPLES / "deeplabv3plus.dpc").concrete()
    results = {b: train(cell, task, backend=b) for b in ("torch", "jax")}
    cache = open_cache(task)
    assert cache is not None and cache.strides == (16, 4)
    assert cache.in_channels(cell, task) == {"context": 64, "low": 16}
    assert cache.sizes(cell, task) == {"context": (4, 4), "low": (16, 16)}
    torch_r, jax_r = results["torch"], results["jax"]
    assert torch_r.steps == jax_r.steps == 8
    assert torch_r.params == jax_r.params and torch_r.madds == jax_r.madds
    # the 48-channel reduction reads the 16 channels of stride 4, the rest the 64 of 16
    wired = cost(cell, {"context": 64, "low": 16}, {"context": (4, 4), "low": (16, 16)})
    assert torch_r.params == wired.params and torch_r.madds == wired.madds
    assert abs(torch_r.losses[0] - jax_r.losses[0]) <= 1e-3 * torch_r.losses[0]


UNDECLARED = """
cell fuse(context, low, channels = 16) {
  return conv(concat(upsample(context, like = low), low), kernel = 1)
}
"""


@pytest.mark.slow
def test_a_decoder_without_its_levels_is_a_clear_error(tmp_path, write):
    _, task_file = write(inputs=None, cache_dir=tmp_path / "cache")
    (tmp_path / "fuse.dpc").write_text(UNDECLARED)
    cell = Space.from_file(tmp_path / "fuse.dpc").concrete()
    with pytest.raises(DpcError, match=r"has 2 inputs \(context, low\), but the task feeds "
                       r"it no backbone level") as info:
        train(cell, load_task(task_file))
    assert "inputs = [16, 4]" in str(info.value)
    assert not (tmp_path / "cache").exists()  # checked before the backbone runs
    r = dpcc("proxy", tmp_path / "fuse.dpc", "--task", task_file)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "fuse.dpc:2:1: error: the cell 'fuse' has 2 inputs" in r.stderr
    r = dpcc("search", tmp_path / "space.dpc", "--task", task_file, "--run-dir",
             tmp_path / "run", "--trials", 2)
    assert r.returncode == 1 and "has 2 inputs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_end_to_end_training_wires_levels_by_stride(tmp_path, write):
    _, task_file = write()
    run = tmp_path / "train"
    r = dpcc("train", EXAMPLES / "deeplabv3plus.dpc", "--task", task_file, "--run-dir", run)
    assert r.returncode == 0, r.stderr
    assert "deeplabv3plus: mIOU" in r.stdout and (run / "checkpoint.safetensors").exists()
    assert "deeplabv3plus end to end evaluated: step" in r.stderr  # log lines, not a tty
    r = dpcc("eval", run)
    assert r.returncode == 0 and r.stdout.startswith("mIOU")


@pytest.mark.slow
def test_a_search_over_decoders_and_its_rerank(tmp_path, write, task_file):
    space, task = write()
    run = tmp_path / "run"
    study = search(SearchConfig(space, task, trials=4, run_dir=run, progress=False,
                                executor="pool", workers=2))
    done = [t for t in study.trials if counted(t)]
    assert len(done) == 4 and all(t.value is not None for t in done)
    assert (run / "best.dpc").exists()
    best = Space.from_file(run / "best.dpc").concrete()
    assert best.inputs == ("context", "low")
    result = rerank(run, top=2, steps=4)
    assert len(result["rows"]) == 2
    e2e = rerank(run, top=1, steps=2, end_to_end=True)
    assert e2e["end_to_end"] and 0 <= e2e["rows"][0]["rerank_miou"] <= 100
    # the paper re-ranks with another backbone: here the same cells at output stride 8
    os8 = task_file("os8.toml", backbone={"output_stride": 8, "inputs": [8, 4]})
    r = dpcc("rerank", run, "--top", 1, "--end-to-end", "--task", os8)
    assert r.returncode == 0, r.stderr
    assert "Spearman" in r.stdout
    record = json.loads((run / "rerank.json").read_text())
    assert record["task"].endswith("os8.toml") and record["steps"] == 8  # the task's steps


@pytest.mark.slow
def test_the_strides_a_cell_declares_feed_it(tmp_path, write):
    """examples/deeplabv3plus.dpc says `context @ 16, low @ 4`: a task that names no
    levels caches and feeds those two, in the proxy and end to end."""
    _, task_file = write(inputs=None)
    task = load_task(task_file)
    cell = Space.from_file(EXAMPLES / "deeplabv3plus.dpc").concrete()
    assert cell.strides == (16, 4)
    result = train(cell, task)
    assert result.steps == 8
    assert open_cache(fed(cell, task)).strides == (16, 4)  # type: ignore[union-attr]
    r = dpcc("train", EXAMPLES / "deeplabv3plus.dpc", "--task", task_file, "--run-dir",
             tmp_path / "run")
    assert r.returncode == 0, r.stderr
    os8 = load_task(task_file).model_copy(update={"backbone": task.backbone.model_copy(
        update={"output_stride": 8})})
    with pytest.raises(DpcError, match="reads 'context' at stride 16, deeper than the "
                       "backbone's output stride 8"):
        train(cell, os8)


REFINE = """
cell refine(x @ 16, image @ 1, channels = 8) {
  edges = conv(image, kernel = 3, channels = 4, atrous = false)
  return conv(concat(upsample(x, like = image), edges), kernel = 1)
}
"""


@pytest.mark.slow
def test_an_input_at_stride_1_reads_the_image(tmp_path, write):
    """`image @ 1` is the image as the backbone gets it (normalised): cached beside the
    stride-16 features, fed to the proxy in both backends and to the model end to end."""
    _, task_file = write(inputs=None)
    (tmp_path / "refine.dpc").write_text(REFINE)
    task = load_task(task_file)
    cell = Space.from_file(tmp_path / "refine.dpc").concrete()
    results = {b: train(cell, task, backend=b) for b in ("torch", "jax")}
    assert results["torch"].params == results["jax"].params
    cache = open_cache(fed(cell, task))
    assert cache is not None and cache.strides == (16, 1)
    crop = task.train.crop
    assert cache.in_channels(cell, task) == {"x": 64, "image": 3}
    assert cache.sizes(cell, task) == {"x": (crop // 16, crop // 16), "image": (crop, crop)}
    r = dpcc("train", tmp_path / "refine.dpc", "--task", task_file, "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr


def test_the_model_feeds_the_image_to_an_input_at_stride_1():
    import torch
    from dpcdsl_torch import SegmentationModel, TinyBackbone

    model = SegmentationModel(TinyBackbone(16), "cell h(image @ 1) { return identity(image) }",
                              num_classes=2).eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(image), model.classifier(image))


SHARED = """
cell shared(early @ 8[0], late @ 8, channels = 8) {
  return conv(concat(early, late), kernel = 1)
}
"""


@pytest.mark.slow
def test_inputs_that_share_a_stride_read_the_map_they_name(tmp_path, task_file):
    """At output stride 8 the tiny backbone has two maps at stride 8 (its strided stage
    and its dilated last stage): `early @ 8[0]` reads the first, `late @ 8` the deepest,
    cached apart, fed to the proxy in both backends and to the model end to end."""
    import numpy as np
    import torch
    from dpcdsl_torch import feature_extractor

    os8 = task_file(backbone={"output_stride": 8})
    (tmp_path / "shared.dpc").write_text(SHARED)
    task = load_task(os8)
    cell = Space.from_file(tmp_path / "shared.dpc").concrete()
    results = {b: train(cell, task, backend=b) for b in ("torch", "jax")}
    assert results["torch"].params == results["jax"].params
    task = fed(cell, task)
    assert task.backbone.inputs == ["8[0]", 8]
    cache = open_cache(task)
    assert cache is not None and [str(v) for v in cache.levels] == ["8[0]", "8"]
    assert cache.in_channels(cell, task) == {"early": 32, "late": 64}
    # each level holds its own map of the backbone
    extract = feature_extractor(task)
    net = extract.run.backbone  # type: ignore[attr-defined]
    image = np.asarray(np.random.default_rng(0).normal(size=(1, 3, 64, 64)), np.float32)
    with torch.no_grad():
        maps = net(torch.from_numpy(image))
    early, late = extract.run(image)
    np.testing.assert_array_equal(early, maps[1].numpy())
    np.testing.assert_array_equal(late, maps[2].numpy())
    r = dpcc("train", tmp_path / "shared.dpc", "--task", os8, "--run-dir",
             tmp_path / "run")
    assert r.returncode == 0, r.stderr


def test_a_level_the_backbone_lacks_is_refused_naming_its_maps():
    from dpcdsl_torch import SegmentationModel, TinyBackbone

    with pytest.raises(DpcError, match=r"(?s)2 feature maps at stride 8, so it has no "
                       r"level 8\[2\].*index them 8\[0\] to 8\[1\]"):
        SegmentationModel(TinyBackbone(8), "cell h(x @ 8[2]) { return identity(x) }", 2)
    model = SegmentationModel(TinyBackbone(8), "cell h(x @ 8[-2]) { return identity(x) }", 2)
    assert model.levels == [1]


def test_a_task_names_levels_as_text_and_refuses_a_bad_one(task_file):
    task = load_task(task_file(backbone={"output_stride": 8, "inputs": ["8[0]", 8, "4"]}))
    assert [str(v) for v in task.backbone.input_levels] == ["8[0]", "8", "4"]
    bad = task_file("bad.toml")
    bad.write_text(bad.read_text() + '\n[backbone]\ninputs = ["16[x]"]\n')
    r = dpcc("cache", "--task", bad)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "'16[x]' is not a backbone level" in r.stderr + r.stdout
