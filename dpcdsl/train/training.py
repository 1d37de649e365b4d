"""What every trainer shares, in any backend: the divergence error and the seeded
order of batches. The proxy loop (:mod:`dpcdsl.train.proxy`) and the backends' end-to-end
trainers import it; it imports no trainer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from dpcdsl.errors import DpcError


class Diverged(DpcError):
    """The loss became NaN or infinite."""


def batches(n: int, batch: int, seed: int) -> Iterator[np.ndarray]:
    """Sorted index batches, epoch after epoch of seeded permutations."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield np.sort(order[start:start + batch])
