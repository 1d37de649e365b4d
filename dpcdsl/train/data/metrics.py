"""Mean intersection over union from a confusion matrix, with an ignore label."""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Counts (label, prediction) pairs over every pixel whose label is not
    ``ignore_index``. Rows are labels, columns predictions."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        labels = np.asarray(labels).ravel()
        predictions = np.asarray(predictions).ravel()
        if labels.shape != predictions.shape:
            raise ValueError(f"{predictions.size} predictions for {labels.size} labels")
        keep = labels != self.ignore_index
        labels, predictions = labels[keep].astype(np.int64), predictions[keep].astype(np.int64)
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ValueError(f"label {int(labels[bad][0])} is outside 0..{self.num_classes - 1} "
                             f"and is not the ignore label {self.ignore_index}")
        n = self.num_classes
        self.matrix += np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)

    def iou(self) -> np.ndarray:
        """IoU per class; NaN for a class absent from both labels and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes present, in percent."""
        iou = self.iou()
        return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else 0.0
