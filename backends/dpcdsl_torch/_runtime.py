"""The PyTorch backend's runtime hooks: running a module on numpy arrays, and threads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def forward(module: nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    """``module`` in eval mode on NCHW float arrays, without gradients: NCHW out."""
    module.eval()
    with torch.no_grad():
        y = module(*[torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs])
    return np.asarray(y.detach().cpu().numpy())


def set_threads(threads: int) -> None:
    """PyTorch's intra-op CPU threads, for one worker's share of the machine."""
    torch.set_num_threads(max(1, int(threads)))
