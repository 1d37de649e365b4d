"""Small dataset trees in each real dataset's on-disk layout, written by tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def rgb(path: Path, h: int = 30, w: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (h, w, 3), np.uint8)).save(path)


def gray(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def palette(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), mode="P")
    im.putpalette([(i * 37) % 256 for i in range(768)])
    im.save(path)


def ids_map(h: int = 30, w: int = 40, values: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Labels: the left half ``values[0]``, the right half ``values[1]``."""
    out = np.full((h, w), values[0])
    out[:, w // 2:] = values[1]
    return out


def tree(kind: str, root: Path, sizes: dict[str, int], h: int = 60, w: int = 80) -> Path:
    """A tree of ``kind`` with ``sizes[split]`` image/label pairs per split, in the
    dataset's real layout, under ``root``; returns ``root``."""
    for split, n in sizes.items():
        ids = [f"2008_{split}_{k:03d}" for k in range(n)]
        for k, i in enumerate(ids):
            if kind == "cityscapes":
                stem = f"aachen_{k:06d}_000019"
                rgb(root / f"leftImg8bit/{split}/aachen/{stem}_leftImg8bit.png", h, w)
                gray(root / f"gtFine/{split}/aachen/{stem}_gtFine_labelIds.png",
                     ids_map(h, w, (7, 26)))  # road, car
            elif kind == "voc":
                rgb(root / f"JPEGImages/{i}.jpg", h, w)
                palette(root / f"SegmentationClass/{i}.png", ids_map(h, w, (0, 15)))
            elif kind == "person_part":
                rgb(root / f"JPEGImages/{i}.jpg", h, w)
                gray(root / f"SegmentationPart/{i}.png", ids_map(h, w, (0, 6)))
            elif kind == "folder":
                rgb(root / f"images/{split}/{i}.png", h, w)
                gray(root / f"masks/{split}/{i}.png", ids_map(h, w, (0, 2)))
            else:
                raise ValueError(kind)
        if kind == "voc":
            (root / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
            (root / f"ImageSets/Segmentation/{split}.txt").write_text("\n".join(ids) + "\n")
        elif kind == "person_part":
            (root / "list").mkdir(parents=True, exist_ok=True)
            (root / f"list/{split}_id.txt").write_text("\n".join(ids) + "\n")
    if kind == "folder":
        (root / "classes.txt").write_text("sky\nground\nthing\n")
    return root
