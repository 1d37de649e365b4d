"""Weight files: canonical name -> numpy array, stored as safetensors (no pickle).
Every backend reads and writes the same files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write(arrays: Mapping[str, Any], path: str | Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def read(path: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from dpcdsl.errors import DpcError

    try:
        return dict(load_file(str(path)))
    except (OSError, SafetensorError) as e:
        raise DpcError.at(None, f"cannot read weights from {path}: {e}") from None
