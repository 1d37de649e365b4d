"""Augmentation: scales from the DeepLab set, ignore-padded crops, consistent flips."""

import numpy as np

from dpcdsl.train.data.augment import SCALES, augment, resize


def test_scales_are_deeplabs():
    assert SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def test_resize_keeps_label_values():
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 15:] = 7
    image = np.random.default_rng(0).random((20, 30, 3), np.float32)
    big_image, big = resize(image, labels, 2.0)
    assert big.shape == (40, 60) and big_image.shape == (40, 60, 3)
    assert set(np.unique(big)) == {0, 7}


def test_crops_pad_with_ignore_and_flip_image_and_labels_together():
    rng = np.random.default_rng(1)
    h, w = 24, 24
    labels = np.tile(np.arange(w, dtype=np.uint8), (h, 1))  # label = column
    image = np.repeat(labels[..., None].astype(np.float32), 3, -1)  # image = column too
    seen_pad = seen_flip = False
    for _ in range(60):
        img, lab = augment(image, labels, 32, rng)
        assert img.shape == (32, 32, 3) and lab.shape == (32, 32)
        valid = lab != 255
        seen_pad |= not valid.all()
        # wherever the label is real, the image shows the same column (up to resizing)
        assert np.abs(img[..., 0][valid] - lab[valid]).max() <= 1.0
        row = lab[0][lab[0] != 255]
        seen_flip |= len(row) > 1 and row[0] > row[-1]
    assert seen_pad and seen_flip


def test_deterministic_for_a_generator_seed():
    image = np.random.default_rng(0).random((40, 50, 3), np.float32)
    labels = np.random.default_rng(0).integers(0, 5, (40, 50)).astype(np.uint8)
    a = augment(image, labels, 32, np.random.default_rng(5))
    b = augment(image, labels, 32, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_labels_sampled_to_the_feature_size_align_corners():
    from dpcdsl.train.data.augment import sample_labels

    labels = np.arange(513 * 257, dtype=np.int64).reshape(513, 257) % 251
    out = sample_labels(labels, 16)
    assert out.shape == (33, 17)  # DeepLab's feature size of a 513x257 crop at 16
    assert (out == labels[::16, ::16]).all()  # corners aligned: every 16th pixel
    batch = np.stack([labels[:256, :256], labels[1:257, :256]])
    out = sample_labels(batch, 16)  # (255) // 16 + 1 = 16, pixel i reads round(17 i)
    assert out.shape == (2, 16, 16)
    assert (out[1] == labels[1:257, :256][::17, ::17]).all()
    assert sample_labels(batch, 1) is batch
    ignored = np.full((64, 64), 255, np.uint8)
    assert (sample_labels(ignored, 8) == 255).all() and sample_labels(ignored, 8).dtype == np.uint8
