"""Datasets by kind. Each gives (image (3, H, W) float32, labels (H, W) uint8) pairs of
the task's crop size, plus ``num_classes`` and ``ignore_index``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dpcdsl.errors import DpcError
from dpcdsl.train.data.formats import IMAGENET, READERS, Normalisation
from dpcdsl.train.data.synthetic import NUM_CLASSES, SyntheticScenes
from dpcdsl.train.data.task import Task


class Dataset(Protocol):
    num_classes: int
    ignore_index: int
    class_names: tuple[str, ...]  # as the dataset names them (empty: unnamed)

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...


def open_split(task: Task, split: str,
               normalisation: Normalisation | None = None) -> Dataset:
    """The train or val split of the task's dataset, its images normalised as the
    backbone that reads them expects (``normalisation``; default ImageNet's statistics).
    Synthetic scenes are made centred and are not normalised again."""
    spec = task.dataset
    split_name = spec.train_split if split == "train" else spec.val_split
    if spec.kind == "synthetic":
        if spec.num_classes != NUM_CLASSES:
            raise DpcError.at(None, f"{task.file}: dataset.num_classes is {spec.num_classes}, "
                              f"but synthetic scenes have {NUM_CLASSES} classes", code="DPC704")
        if spec.image_size != task.train.crop:
            raise DpcError.at(None, f"{task.file}: synthetic scenes of {spec.image_size} "
                              f"pixels need train.crop = {spec.image_size}, not "
                              f"{task.train.crop}", code="DPC704")
        count = spec.train_size if split == "train" else spec.val_size
        return SyntheticScenes(count, spec.image_size, task.seed, split)
    assert spec.root is not None  # the task file's check
    data = READERS[spec.kind](spec.root, split_name, task.train.crop)
    data.normalisation = normalisation or IMAGENET
    if data.num_classes != spec.num_classes:
        raise DpcError.at(None, f"{task.file}: dataset.num_classes is {spec.num_classes}, "
                          f"but {spec.kind} has {data.num_classes} classes", code="DPC704")
    if spec.ignore_index != data.ignore_index:
        raise DpcError.at(None, f"{task.file}: dataset.ignore_index is {spec.ignore_index}, "
                          f"but {spec.kind} labels use {data.ignore_index}", code="DPC704")
    if len(data) == 0:
        raise DpcError.at(None, f"{spec.kind} at {spec.root}: the {split_name} split is empty",
                          code="DPC704")
    return data


def check_dataset(task: Task) -> None:
    """Open both splits of the task's dataset (lists of files, nothing decoded): a
    missing root, folder or file is an error at ``dataset.root`` in the task file."""
    from dpcdsl.train.data.task import located

    for split in ("train", "val"):
        try:
            open_split(task, split)
        except DpcError as e:
            if task.dataset.root is None:
                raise
            raise located(task, ("dataset", "root"), e) from None
