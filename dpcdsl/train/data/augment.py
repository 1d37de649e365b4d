"""Training augmentation, as DeepLab does it: a random scale from 0.5 to 2.0 in steps of
0.25, a random crop with padding (labels padded with the ignore index), and a random
horizontal flip. Validation is not augmented (see :func:`formats.centre_crop`)."""

from __future__ import annotations

import numpy as np

SCALES = tuple(0.5 + 0.25 * i for i in range(7))  # 0.5, 0.75, ..., 2.0


def resize(image: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """Bilinear for the image (H, W, 3) float32, nearest for the labels (H, W)."""
    from PIL import Image

    h, w = labels.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    channels = [np.asarray(Image.fromarray(image[..., c]).resize(size, Image.Resampling.BILINEAR))
                for c in range(image.shape[-1])]
    lab = np.asarray(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST))
    return np.stack(channels, -1).astype(np.float32), lab


def augment(image: np.ndarray, labels: np.ndarray, crop: int, rng: np.random.Generator,
            ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """A randomly scaled, cropped and flipped copy of (image (H, W, 3), labels (H, W))."""
    image, labels = resize(image, labels, SCALES[int(rng.integers(len(SCALES)))])
    h, w = labels.shape
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=ignore_index)
        h, w = labels.shape
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    image, labels = image[y:y + crop, x:x + crop], labels[y:y + crop, x:x + crop]
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def sample_labels(labels: np.ndarray, stride: int) -> np.ndarray:
    """Labels (..., H, W) sampled to ((H - 1) // stride + 1, (W - 1) // stride + 1), the
    feature size of a crop at that output stride: output pixel i reads the input pixel
    nearest to i * (H - 1) / (h - 1), corners aligned (the DeepLab reference's labels
    when it does not upsample the logits). Ignored pixels stay ignored."""
    if stride == 1:
        return labels
    index = []
    for n in labels.shape[-2:]:
        m = (n - 1) // stride + 1
        scale = (n - 1) / (m - 1) if m > 1 else 0.0
        index.append(np.floor(np.arange(m) * scale + 0.5).astype(np.int64))
    return np.ascontiguousarray(labels[..., index[0][:, None], index[1][None, :]])
