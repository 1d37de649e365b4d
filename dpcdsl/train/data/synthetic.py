"""Synthetic multi-scale scenes: deterministic from a seed, made on the fly.

Every scene has one of two backgrounds (A: a fine grey grain, B: coarse green-grey
blotches) and one or two large objects, striped or checkered. An object's class depends
on its texture *and on the scene's background*:

    0 background, 1 stripes on A, 2 stripes on B, 3 checks on A, 4 checks on B

Objects cover 45-70% of the scene's side, so most of their pixels see only the object's
own texture within the backbone's reach; telling 1 from 2 (or 3 from 4) there needs
context from far away, which a head with image-level or wide pooling has and a 1x1 head
does not.
"""

from __future__ import annotations

import numpy as np

#: bump whenever scenes change: it is part of the feature cache's key
VERSION = 2
NUM_CLASSES = 5
CLASS_NAMES = ("background", "stripes/A", "stripes/B", "checks/A", "checks/B")
MEAN = np.float32(0.5)


def scene(seed: int, index: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Scene ``index`` of the set ``seed``: an image (3, size, size) float32, centred
    near zero, and its labels (size, size) uint8."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size]
    kind = int(rng.random() < 0.5)
    image = np.empty((3, size, size), np.float32)
    if kind:
        blotch = (((xx // 16) * 7 + (yy // 16) * 3) % 5 / 4.0).astype(np.float32)
        for c, base in enumerate((0.45, 0.55, 0.40)):
            image[c] = base + 0.15 * blotch
    else:
        grain = ((xx + yy) // 3 % 2).astype(np.float32)
        image[:] = 0.5 + 0.1 * grain
    labels = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        side = int(rng.uniform(0.45, 0.70) * size)
        y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
        inside = (yy >= y0) & (yy < y0 + side) & (xx >= x0) & (xx < x0 + side)
        checks = rng.random() < 0.5
        if checks:
            pattern = ((xx // 8 + yy // 8) % 2).astype(np.float32)
            colour = (0.2 + 0.2 * pattern, 0.3 + 0.2 * pattern, 0.7 + 0.2 * pattern)
        else:
            pattern = (yy // 5 % 2).astype(np.float32)
            colour = (0.7 + 0.2 * pattern, 0.3 + 0.2 * pattern, 0.2 + 0.2 * pattern)
        for c in range(3):
            image[c][inside] = colour[c][inside]
        labels[inside] = 1 + 2 * int(checks) + kind
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return image - MEAN, labels


class SyntheticScenes:
    """``count`` scenes of ``size`` x ``size``: scene i of split ``split`` is the same
    on every machine and every call."""

    num_classes = NUM_CLASSES
    ignore_index = 255
    class_names: tuple[str, ...] = CLASS_NAMES

    def __init__(self, count: int, size: int = 256, seed: int = 0, split: str = "train") -> None:
        self.count, self.size = count, size
        # the two splits draw from disjoint seed streams
        self.seed = seed * 2 + (0 if split == "train" else 1)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return scene(self.seed, i, self.size)
