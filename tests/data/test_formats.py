"""Each real dataset layout, as a small fixture tree on disk; and each broken tree's
error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpcdsl.errors import DpcError
from dpcdsl.train.data.datasets import open_split
from dpcdsl.train.data.task import task_from_text
from tests.data.trees import gray, ids_map, palette, rgb


def task(kind: str, root: Path, classes: int, crop: int = 32):
    return task_from_text(f"[dataset]\nkind = '{kind}'\nroot = '{root}'\nnum_classes = "
                          f"{classes}\n[train]\ncrop = {crop}\n", "task.toml")


def test_cityscapes_maps_ids_to_train_ids_with_the_official_table(tmp_path):
    img = tmp_path / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    rgb(img)
    labels = ids_map(values=(7, 26))  # road, car
    labels[0, 0] = 0  # unlabeled
    gray(tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", labels)
    data = open_split(task("cityscapes", tmp_path, 19), "train")
    image, y = data[0]
    assert image.shape == (3, 32, 32) and y.shape == (32, 32)
    raw = data.raw(0)[1]
    assert raw[5, 0] == 0 and raw[5, -1] == 13 and raw[0, 0] == 255
    assert (y[0] == 255).all()  # padded rows: 30 -> 32


def test_cityscapes_unknown_id_and_missing_label(tmp_path):
    img = tmp_path / "leftImg8bit/train/bonn/bonn_000000_000019_leftImg8bit.png"
    rgb(img)
    label = tmp_path / "gtFine/train/bonn/bonn_000000_000019_gtFine_labelIds.png"
    gray(label, ids_map(values=(7, 60)))
    data = open_split(task("cityscapes", tmp_path, 19), "train")
    with pytest.raises(DpcError, match=f"{label}: unknown label id 60"):
        data[0]
    label.unlink()
    with pytest.raises(DpcError, match="bonn_000000_000019_leftImg8bit.png: no label"):
        open_split(task("cityscapes", tmp_path, 19), "train")


def test_voc_reads_palette_indices(tmp_path):
    rgb(tmp_path / "JPEGImages/2007_000032.jpg")
    labels = ids_map(values=(0, 15))
    labels[0, :] = 255
    palette(tmp_path / "SegmentationClass/2007_000032.png", labels)
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n")
    data = open_split(task("voc", tmp_path, 21), "train")
    raw = data.raw(0)[1]
    assert set(np.unique(raw)) == {0, 15, 255}
    palette(tmp_path / "SegmentationClass/2007_000032.png", ids_map(values=(0, 30)))
    with pytest.raises(DpcError, match="2007_000032.png: unknown label id 30"):
        data[0]


def test_voc_split_lists_a_missing_image(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2008_000001\n")
    with pytest.raises(DpcError, match="the split lists 2008_000001, but .*2008_000001.jpg "
                                       "does not exist"):
        open_split(task("voc", tmp_path, 21), "val")


def test_person_part(tmp_path):
    rgb(tmp_path / "JPEGImages/2008_000003.jpg")
    gray(tmp_path / "SegmentationPart/2008_000003.png", ids_map(values=(0, 6)))
    (tmp_path / "list").mkdir()
    (tmp_path / "list/train_id.txt").write_text("2008_000003\n")
    data = open_split(task("person_part", tmp_path, 7), "train")
    assert set(np.unique(data.raw(0)[1])) == {0, 6}
    gray(tmp_path / "SegmentationPart/2008_000003.png", ids_map(values=(0, 9)))
    with pytest.raises(DpcError, match="unknown label id 9"):
        data[0]


def test_folder_dataset(tmp_path):
    (tmp_path / "classes.txt").write_text("sky\nground\nthing\n")
    rgb(tmp_path / "images/train/a.png", 48, 48)
    gray(tmp_path / "masks/train/a.png", ids_map(48, 48, values=(1, 2)))
    data = open_split(task("folder", tmp_path, 3), "train")
    image, y = data[0]
    assert image.shape == (3, 32, 32) and set(np.unique(y)) == {1, 2}  # centre crop
    rgb(tmp_path / "images/train/b.png")
    with pytest.raises(DpcError, match="b.png: no label .*masks/train/b.png"):
        open_split(task("folder", tmp_path, 3), "train")


@pytest.mark.parametrize("kind, classes", [("cityscapes", 19), ("voc", 21),
                                           ("person_part", 7), ("folder", 3)])
def test_missing_tree_is_a_clear_error(tmp_path, kind, classes):
    with pytest.raises(DpcError, match="does not exist"):
        open_split(task(kind, tmp_path / "nowhere", classes), "train")


def test_wrong_class_count_is_named(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    rgb(tmp_path / "images/val/a.png")
    gray(tmp_path / "masks/val/a.png", ids_map())
    with pytest.raises(DpcError, match="dataset.num_classes is 5, but folder has 2 classes"):
        open_split(task("folder", tmp_path, 5), "val")


def test_ignore_index_must_match_the_format(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    rgb(tmp_path / "images/val/a.png")
    gray(tmp_path / "masks/val/a.png", ids_map())
    bad = task_from_text(f"[dataset]\nkind = 'folder'\nroot = '{tmp_path}'\nnum_classes = 2\n"
                         "ignore_index = 0\n", "task.toml")
    with pytest.raises(DpcError, match="dataset.ignore_index is 0, but folder labels use 255"):
        open_split(bad, "val")
