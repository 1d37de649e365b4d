"""Images are normalised with the statistics the backbone's weights expect (timm's
``pretrained_cfg``), in the feature cache and in end-to-end training; the tiny backbone
keeps its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dpcdsl_torch import feature_extractor
from dpcdsl_torch.train import make_model, open_splits
from PIL import Image

from dpcdsl.lang.space import Space
from dpcdsl.train.data.cache import build_cache
from dpcdsl.train.data.formats import IMAGENET
from dpcdsl.train.data.task import task_from_text

XCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def folder_dataset(root: Path, size: int = 64) -> None:
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("background\nthing\n")
    for split, n in (("train", 2), ("val", 1)):
        for k in range(n):
            for sub, array in (("images", rng.integers(0, 255, (size, size, 3), np.uint8)),
                               ("masks", rng.integers(0, 2, (size, size), np.uint8))):
                path = root / sub / split / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)


def task_for(tmp_path: Path, backbone: str):
    folder_dataset(tmp_path / "data")
    return task_from_text(f"""
cache_dir = "{tmp_path / 'cache'}"
[dataset]
kind = "folder"
root = "{tmp_path / 'data'}"
num_classes = 2
[backbone]
name = "{backbone}"
[train]
crop = 64
batch = 2
""")


@pytest.mark.parametrize(("backbone", "expected"), [("xception71.tf_in1k", XCEPTION),
                                                    ("mobilenetv2_100", IMAGENET),
                                                    ("tiny", IMAGENET)])
@pytest.mark.slow
def test_the_cache_normalises_as_the_backbone_expects(tmp_path, backbone, expected):
    task = task_for(tmp_path, backbone)
    extract = feature_extractor(task)
    assert tuple(map(tuple, extract.normalisation)) == expected
    cache = build_cache(task, extract, progress=False)
    assert cache.meta["normalisation"] == {"mean": list(expected[0]), "std": list(expected[1])}
    raw = np.asarray(Image.open(tmp_path / "data/images/val/0.png"), np.float32) / 255
    image = ((raw - np.float32(expected[0])) / np.float32(expected[1])).transpose(2, 0, 1)
    want = extract.run(image[None].astype(np.float32))[0][0]
    got = cache.features("val", 16)[0].astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * float(np.abs(want).max()))
    if backbone != "tiny":  # the other statistics give other features
        other = IMAGENET if expected == XCEPTION else XCEPTION
        wrong = ((raw - np.float32(other[0])) / np.float32(other[1])).transpose(2, 0, 1)
        assert not np.allclose(extract.run(wrong[None].astype(np.float32))[0][0], got,
                               rtol=1e-2, atol=1e-2 * float(np.abs(want).max()))


def test_end_to_end_training_reads_images_as_its_backbone_expects(tmp_path):
    task = task_for(tmp_path, "xception71.tf_in1k")
    cell = Space.from_text("cell h(x, channels = 8) { return conv(x, kernel = 1) }").concrete()
    model = make_model(cell, task, 2)
    train, val = open_splits(task, model)
    assert tuple(map(tuple, train.normalisation)) == XCEPTION  # type: ignore[attr-defined]
    raw = np.asarray(Image.open(tmp_path / "data/images/val/0.png"), np.float32) / 255
    np.testing.assert_allclose(val[0][0], ((raw - 0.5) / 0.5).transpose(2, 0, 1), atol=1e-6)
