"""mIOU against a hand-computed example."""

import numpy as np
import pytest

from dpcdsl.train.data.metrics import ConfusionMatrix


def test_hand_computed_example_with_ignored_pixels():
    labels = np.array([[0, 0, 1, 1],
                       [2, 2, 255, 255]])
    predictions = np.array([[0, 1, 1, 1],
                            [2, 0, 2, 0]])  # predictions under 255 do not count
    m = ConfusionMatrix(3, ignore_index=255)
    m.update(predictions, labels)
    # class 0: tp 1, fp 1 (a 2 taken for 0), fn 1 -> 1/3
    # class 1: tp 2, fp 1, fn 0 -> 2/3
    # class 2: tp 1, fp 0, fn 1 -> 1/2
    np.testing.assert_allclose(m.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert m.miou() == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_absent_class_is_left_out_of_the_mean():
    m = ConfusionMatrix(4)
    m.update(np.array([0, 1, 1]), np.array([0, 1, 1]))
    assert np.isnan(m.iou()[2]) and np.isnan(m.iou()[3])
    assert m.miou() == 100.0


def test_unknown_label_is_an_error():
    m = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="label 7 is outside 0..2"):
        m.update(np.array([0, 1]), np.array([0, 7]))
