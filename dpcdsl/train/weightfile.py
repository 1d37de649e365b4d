"""Weight files: canonical name -> numpy array, stored as safetensors (no pickle).
Every backend reads and writes the same files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def check(expected: Mapping[str, tuple[int, ...]], weights: Mapping[str, Any],
          owner: str) -> None:
    """Raise one error naming every missing, extra or mis-shaped tensor of ``weights``
    against ``expected`` (canonical name -> shape in the canonical layout), and every
    tensor that is not floating point or holds NaN or infinite values."""
    import numpy as np

    from dpcdsl.errors import DpcError

    problems = []
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("unexpected: " + ", ".join(extra))
    for name in sorted(set(expected) & set(weights)):
        array = np.asarray(weights[name])
        got = tuple(array.shape)
        if tuple(expected[name]) != got:
            problems.append(f"{name}: expected shape {tuple(expected[name])}, got {got}")
        elif not np.issubdtype(array.dtype, np.floating):
            problems.append(f"{name}: expected floating-point values, got {array.dtype}")
        elif not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            problems.append(f"{name}: {bad} value{'s' if bad != 1 else ''} NaN or infinite")
    if problems:
        raise DpcError.at(None, f"the weights do not fit {owner}: " + "; ".join(problems),
                          hint="weights are matched by canonical name and shape; export "
                          "them from a module built for the same cell and in_channels",
                          code="DPC703")


def write(arrays: Mapping[str, Any], path: str | Path) -> None:
    """Write ``arrays`` as a safetensors file, readable as the user's umask allows (the
    safetensors library itself leaves its files readable by their owner alone)."""
    import os

    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def read(path: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from dpcdsl.errors import DpcError

    try:
        return dict(load_file(str(path)))
    except (OSError, SafetensorError) as e:
        raise DpcError.at(None, f"cannot read weights from {path}: {e}", code="DPC703") from None
