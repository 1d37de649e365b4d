"""The PyTorch backend's runtime hooks: running a module on numpy arrays, and threads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dpcdsl.errors import DpcError
from dpcdsl.train.data.task import Task


def forward(module: nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    """``module`` in eval mode on NCHW float arrays, without gradients: NCHW out."""
    module.eval()
    with torch.no_grad():
        y = module(*[torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs])
    return np.asarray(y.detach().cpu().numpy())


def labels_of(logits: torch.Tensor) -> torch.Tensor:
    """Each pixel's class: the index of its largest logit (the first, on a tie), as
    ``argmax(1)``. ``max(1)`` gives the same indices; PyTorch's CPU argmax over the
    channels of an NCHW tensor strides across memory and takes about 9x as long (90 ms
    against 10 ms for 16 x 5 x 256 x 256 on 2 threads), which every evaluation pays."""
    return logits.max(1).indices


def set_threads(threads: int) -> None:
    """PyTorch's intra-op CPU threads, for one worker's share of the machine."""
    torch.set_num_threads(max(1, int(threads)))


def device_of(task: Task) -> torch.device:
    """The task's device, or a clear error when this machine does not have it."""
    name = task.device
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DpcError.at(None, f"{task.file}: device = \"{name}\", but this machine has no "
                          "CUDA GPU that PyTorch can use",
                          hint="set device = \"cpu\" in the task file (or --device cpu), "
                               "or run on a machine with a GPU", code="DPC707")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise DpcError.at(None, f"{task.file}: device = \"{name}\", but this machine has "
                          f"{torch.cuda.device_count()} GPU(s)",
                          hint="pick a GPU index below the count, or device = \"cuda\"",
                          code="DPC707")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DpcError.at(None, f"{task.file}: device = \"mps\", but this machine has no "
                          "Apple GPU", hint="set device = \"cpu\" in the task file", code="DPC707")
    return torch.device(name)
