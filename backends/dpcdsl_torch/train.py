"""End-to-end training of a full :class:`SegmentationModel` (backbone + cell +
classifier), with checkpoints and resume.

A run folder holds ``checkpoint.safetensors`` (the model's canonical weights),
``optimizer.safetensors`` (the momentum buffers) and ``checkpoint.json`` (the cell's
``.dpc`` text, the task, the step and the evaluations). Each is written to a temporary
file and renamed, so a killed run leaves the last whole checkpoint. Every step draws its
batch, augmentation and dropout from (seed, step), so a resumed run continues exactly
as an uninterrupted one would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from dpcdsl._files import write_atomic
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.space import Space
from dpcdsl.train import weightfile
from dpcdsl.train.data.augment import augment
from dpcdsl.train.data.datasets import Dataset, check_dataset, open_split
from dpcdsl.train.data.formats import FileDataset
from dpcdsl.train.data.metrics import ConfusionMatrix
from dpcdsl.train.data.task import Task
from dpcdsl.train.training import Diverged, batches
from dpcdsl_torch._runtime import device_of, labels_of
from dpcdsl_torch._weights import export_weights, import_weights
from dpcdsl_torch.model import SegmentationModel, backbone

CHECKPOINT, OPTIMIZER, SIDECAR = "checkpoint.safetensors", "optimizer.safetensors", \
    "checkpoint.json"
#: what a sidecar records
SIDECAR_KEYS = frozenset({"cell", "task", "step", "evals", "losses"})


def make_model(cell: ir.Cell, task: Task, num_classes: int) -> SegmentationModel:
    device = device_of(task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.backbone.seed)
        net = backbone(task.backbone.name, task.backbone.output_stride,
                       task.backbone.pretrained, task.backbone.pretrained_file)
    return SegmentationModel(net, cell, num_classes, seed=task.seed,
                             bn_momentum=task.train.momentum_of_bn,
                             strides=task.backbone.inputs,
                             align_corners=task.train.align_corners).to(device)


def open_splits(task: Task, model: SegmentationModel) -> tuple[Dataset, Dataset]:
    """The train and val splits, normalised as the model's backbone expects."""
    norm = model.backbone.normalisation
    return open_split(task, "train", norm), open_split(task, "val", norm)


def _batch(data: Dataset, idx: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[
        torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for i in idx:
        if isinstance(data, FileDataset):  # real images: DeepLab's augmentation
            image, lab = data.raw(int(i))  # normalised first: padding is the mean pixel
            image, lab = augment(data.normalisation.apply(image), lab, crop, rng,
                                 data.ignore_index)
            image = image.transpose(2, 0, 1)
        else:  # synthetic scenes are made at the crop size: flips only
            image, lab = data[int(i)]
            if rng.random() < 0.5:
                image, lab = image[..., ::-1], lab[:, ::-1]
        images.append(np.ascontiguousarray(image, np.float32))
        labels.append(np.ascontiguousarray(lab, np.int64))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))


def evaluate(model: SegmentationModel, data: Dataset, device: str,
             batch: int = 8) -> ConfusionMatrix:
    matrix = ConfusionMatrix(data.num_classes, data.ignore_index)
    model.eval()
    with torch.no_grad():
        for s in range(0, len(data), batch):
            items = [data[i] for i in range(s, min(s + batch, len(data)))]
            x = torch.from_numpy(np.stack([im for im, _ in items])).to(device)
            pred = labels_of(model(x)).cpu().numpy()
            matrix.update(pred, np.stack([lab for _, lab in items]))
    return matrix


def train(cell: ir.Cell, task: Task, run_dir: str | Path, resume: bool = False,
          callback: Callable[[int, float], None] | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train end to end; checkpoint at every evaluation. With ``resume``, continue from
    the run folder's checkpoint. A folder that already holds a run is refused unless
    ``resume`` or ``overwrite`` says what to do with it. Returns the sidecar record."""
    run = Path(run_dir)
    if (run / SIDECAR).exists() and not (resume or overwrite):
        raise DpcError.at(None, f"{run} already holds a training run",
                          hint="pass --resume to continue it, or choose another --run-dir",
                          code="DPC802")
    check_dataset(task)  # before the backbone, whose weights may come over the network
    run.mkdir(parents=True, exist_ok=True)
    model = make_model(cell, task, task.dataset.num_classes)
    train_data, val_data = open_splits(task, model)
    spec = task.train
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                          weight_decay=spec.weight_decay)
    record: dict[str, Any] = {"cell": cell.canonical_text(), "cell_name": cell.name,
                              "task": task.model_dump(mode="json"), "task_file": task.file,
                              "step": 0, "evals": [], "losses": []}
    if resume:
        record = _restore(run, model, opt)
    start = int(record["step"])
    stream = batches(len(train_data), spec.batch, task.seed)
    for _ in range(start):
        next(stream)
    for k in range(start + 1, spec.steps + 1):
        rng = np.random.default_rng([task.seed, k])
        torch.manual_seed(task.seed * 1_000_003 + k)  # dropout
        x, y = _batch(train_data, next(stream), spec.crop, rng)
        for group in opt.param_groups:  # the poly schedule, set from the step: resumable
            group["lr"] = spec.lr * max(1 - (k - 1) / spec.steps, 0.0) ** spec.power
        model.train()
        loss = F.cross_entropy(model(x.to(task.device)), y.to(task.device),
                               ignore_index=train_data.ignore_index)
        if not torch.isfinite(loss):
            raise Diverged.at(None, f"the loss is {loss.item()} at step {k}",
                              hint="lower train.lr", code="DPC805")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        record["losses"].append(float(loss.item()))
        if k % spec.eval_every == 0 or k == spec.steps:
            miou = evaluate(model, val_data, task.device).miou()
            record["evals"].append([k, miou])
            record["step"] = k
            _save(run, model, opt, record)
            if callback is not None:
                callback(k, miou)
    return record


def _save(run: Path, model: SegmentationModel, opt: torch.optim.Optimizer,
          record: dict[str, Any]) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    momentum = {names[id(p)]: state["momentum_buffer"].cpu().numpy()
                for p, state in opt.state.items() if state.get("momentum_buffer") is not None}
    write_atomic(run / CHECKPOINT, lambda p: weightfile.write(export_weights(model), p))
    write_atomic(run / OPTIMIZER, lambda p: weightfile.write(momentum, p))
    write_atomic(run / SIDECAR, lambda p: p.write_text(json.dumps(record, indent=1)))


def _restore(run: Path, model: SegmentationModel,
             opt: torch.optim.Optimizer) -> dict[str, Any]:
    sidecar = run / SIDECAR
    if not sidecar.is_file():
        raise DpcError.at(None, f"nothing to resume in {run}: {SIDECAR} is missing",
                          hint="start the run without --resume", code="DPC802")
    record = _sidecar(sidecar)
    import_weights(model, weightfile.read(run / CHECKPOINT))
    momentum = weightfile.read(run / OPTIMIZER)
    for name, p in model.named_parameters():
        if name in momentum:
            opt.state[p]["momentum_buffer"] = torch.from_numpy(momentum[name].copy())
    return record


def _sidecar(path: Path) -> dict[str, Any]:
    """A run's checkpoint.json, or a clear error when it is truncated or not a record."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DpcError.at(None, f"{path} is damaged: {e}",
                          hint="train the run again into a new --run-dir", code="DPC703") from None
    missing = SIDECAR_KEYS - set(record) if isinstance(record, dict) else SIDECAR_KEYS
    if missing:
        raise DpcError.at(None, f"{path} is damaged: it holds no training record (no "
                          f"{', '.join(sorted(missing))})",
                          hint="train the run again into a new --run-dir", code="DPC703")
    return record


def load_run(run_dir: str | Path) -> tuple[SegmentationModel, Task, dict[str, Any]]:
    """The model of a run folder's last checkpoint, its task and its record."""
    run = Path(run_dir)
    sidecar = run / SIDECAR
    if not sidecar.is_file():
        raise DpcError.at(None, f"{run} holds no checkpoint ({SIDECAR} is missing)", code="DPC802")
    record = _sidecar(sidecar)
    try:
        task = Task.model_validate({**record["task"], "file": record.get("task_file", "<run>")})
        cell = Space.from_text(record["cell"]).concrete()
    except (KeyError, TypeError, ValueError) as e:
        raise DpcError.at(None, f"{sidecar} is damaged: {type(e).__name__}: {e}",
                          hint="train the run again into a new --run-dir", code="DPC703") from None
    model = make_model(cell, task, task.dataset.num_classes)
    import_weights(model, weightfile.read(run / CHECKPOINT))
    return model, task, record


def evaluate_run(run_dir: str | Path) -> float:
    """mIOU of a run folder's checkpoint on its task's val split."""
    model, task, _ = load_run(run_dir)
    return evaluate(model, open_splits(task, model)[1], task.device).miou()


__all__ = ["evaluate_run", "load_run", "make_model", "train"]
