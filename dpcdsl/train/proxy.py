"""The proxy task (PAPER.md, "The proxy task and the search"): a candidate cell and a
1x1 classifier train on cached backbone features, not end to end, and are scored by
mIOU on the cached val split.

The loop is here, once, for every backend: batches, the evaluation schedule, the
divergence check, the callback and the result record. A backend gives the two steps
(its ``proxy_steps`` hook, :class:`dpcdsl.backends.Backend`), for one head or for
several trained fused on the same batches (:func:`train_fused`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from dpcdsl import backends
from dpcdsl.compiler.canonical import initial_weights, weight_shapes
from dpcdsl.compiler.rewrite import at_output_stride
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import cost, infer_channels
from dpcdsl.train.data.augment import sample_labels
from dpcdsl.train.data.cache import FeatureCache, build_cache, open_cache
from dpcdsl.train.data.datasets import check_dataset
from dpcdsl.train.data.metrics import ConfusionMatrix
from dpcdsl.train.data.task import Task, input_levels
from dpcdsl.train.progress import StepProgress, mode_for
from dpcdsl.train.training import Diverged, batches

#: called with (step, mIOU) at every evaluation; raise to stop (e.g. optuna.TrialPruned)
Callback = Callable[[int, float], None]


class ProxyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    cell: str
    hash: str
    backend: str
    miou: float
    per_class_iou: list[float | None]
    losses: list[float]
    evals: list[tuple[int, float]]
    steps: int
    wall_s: float
    params: int
    madds: int
    # what the compiled head computes at the task's sizes (atrous taps over padding
    # skipped); equal to madds where no rate reaches the feature map's size
    computed_madds: int = 0
    # the heads trained together in each step (train_fused); the timings are theirs
    fused: int = 1
    # seconds by phase: build (the backend's steps and the weights), data (batches read
    # from the cache), steps (training), eval (the val split), cost
    timings: dict[str, float] = {}


def ensure_cache(task: Task, progress: bool | str = True) -> FeatureCache:
    """The task's feature cache, built with its backbone when missing (by the task's
    ``backbone.backend``, or the default backend that has a feature extractor)."""
    cache = open_cache(task)
    if cache is not None:
        return cache
    check_dataset(task)  # before the backbone, whose weights may come over the network
    extract = backends.resolve(task.backbone.backend, "feature_extractor").feature_extractor(task)
    return build_cache(task, extract, progress=progress)


def head_cell(cell: ir.Cell, task: Task) -> ir.Cell:
    """The cell as the proxy trains it: at the output stride of the task's backbone
    (rates written for 16 are doubled at 8), the same architecture as the end-to-end
    model's head."""
    return at_output_stride(cell, task.backbone.output_stride)


def head_weights(cell: ir.Cell, cache: FeatureCache, task: Task) -> dict[str, Any]:
    """Initial weights of the cell and its classifier, the same for every backend."""
    in_channels = cache.in_channels(cell, task)
    shapes = {f"cell.{k}": v for k, v in weight_shapes(cell, in_channels).items()}
    out_channels = infer_channels(cell, in_channels)[cell.output]
    shapes["classifier.weight"] = (cache.num_classes, out_channels, 1, 1)
    weights = initial_weights(shapes, task.seed)
    weights["classifier.bias"] = np.zeros(cache.num_classes, np.float32)
    return weights


def train(cell: ir.Cell, task: Task, backend: str | None = None,
          callback: Callback | None = None, progress: bool | str = False,
          label: str | None = None, on_step: Callable[[int], None] | None = None
          ) -> ProxyResult:
    """Train ``cell`` on the task's cached features with ``backend`` (default: the
    task's) and score it on the val split. ``progress`` is a mode of
    :mod:`dpcdsl.train.progress` (True: a bar on a terminal, log lines elsewhere), its lines
    headed by ``label`` (default: the cell's name). A divergence raises
    :class:`~dpcdsl.train.training.Diverged`; what ``callback`` raises stops the training
    and propagates."""
    (result,) = train_fused([cell], task, backend, [callback], progress, label, on_step)
    if isinstance(result, Exception):
        raise result
    return result


def train_fused(cells: Sequence[ir.Cell], task: Task, backend: str | None = None,
                callbacks: Sequence[Callback | None] | None = None,
                progress: bool | str = False, label: str | None = None,
                on_step: Callable[[int], None] | None = None
                ) -> list[ProxyResult | Exception]:
    """Train several cells at once, fused: every step runs all of their heads on the
    same cached batch, in one backend step. Each cell's result equals what
    :func:`train` gives it alone (same weights, batches and random streams; equal to
    float tolerance). A cell whose loss diverges, or whose callback raises (a pruner's
    ``optuna.TrialPruned``), stops alone: its place in the returned list holds that
    exception, and the others train on. The cells must read the same inputs (cells
    of one space do)."""
    if not cells:
        raise ValueError("train_fused needs at least one cell")
    first = cells[0]
    for c in cells[1:]:
        if (c.inputs, c.levels) != (first.inputs, first.levels):
            raise DpcError.at(c.span, f"cell '{c.name}' reads the inputs {list(c.inputs)}, "
                              f"cell '{first.name}' reads {list(first.inputs)}",
                              hint="only cells that read the same inputs train fused "
                                   "(the cells of one space do)", code="DPC804")
    start = time.perf_counter()
    task = fed(first, task)  # before the cache is built
    mode = mode_for(progress)
    cache = ensure_cache(task, progress=mode)
    opened = round(time.perf_counter() - start, 6)
    name = label or (first.name if len(cells) == 1 else f"{len(cells)} cells fused")
    with StepProgress(task.train.steps, mode, name) as shown:
        results = _train(cells, task, cache, backend,
                         list(callbacks or [None] * len(cells)), shown, on_step)
    return [r if isinstance(r, Exception) else
            r.model_copy(update={"timings": {"cache": opened, **r.timings}}) for r in results]


def _train(cells: Sequence[ir.Cell], task: Task, cache: FeatureCache, backend: str | None,
           callbacks: list[Callback | None], shown: StepProgress,
           on_step: Callable[[int], None] | None = None) -> list[ProxyResult | Exception]:
    clock = _Clock()
    trainer = backends.resolve(backend or task.backend, "proxy_steps")
    heads = [head_cell(c, task) for c in cells]
    step, predict = trainer.proxy_steps(heads, cache, task,
                                        [head_weights(h, cache, task) for h in heads])
    clock.lap("build")
    spec = task.train
    feats, labels = cache.inputs(heads[0], task, "train"), cache.labels("train")
    val = cache.inputs(heads[0], task, "val")
    state = _Heads(cells, cache.num_classes, cache.ignore_index, callbacks)
    start = time.perf_counter()
    for k, idx in zip(range(1, spec.steps + 1), batches(len(labels), spec.batch, task.seed)):
        batch = ([np.asarray(f[idx], np.float32) for f in feats],
                 sample_labels(np.asarray(labels[idx]), spec.proxy_loss_stride))
        clock.lap("data")
        got = dict(zip(state.active, step(*batch, tuple(state.active)), strict=True))
        clock.lap("steps")
        if not state.took(k, spec.steps, got):
            break
        shown.step(k, float(np.mean([got[i] for i in state.active])))
        if on_step is not None:
            on_step(k)
        if k % spec.eval_every == 0 or k == spec.steps:
            clock.lap("steps")
            matrices = evaluate(predict, cache, val, state.active)
            clock.lap("eval")
            shown.evaluated(k, state.evaluated(k, matrices))
            if not state.told(k):
                break
        clock.lap("steps")
    wall = time.perf_counter() - start
    results: list[ProxyResult | Exception] = []
    for i, (cell, head) in enumerate(zip(cells, heads, strict=True)):
        if i in state.stopped:
            results.append(state.stopped[i])
            continue
        report = cost(head, cache.in_channels(head, task), cache.sizes(head, task))
        clock.lap("cost")
        results.append(ProxyResult(
            cell=cell.name, hash=cell.hash, backend=trainer.name, miou=state.evals[i][-1][1],
            per_class_iou=[None if np.isnan(v) else float(v) * 100
                           for v in state.matrices[i].iou()],
            losses=state.losses[i], evals=state.evals[i], steps=len(state.losses[i]),
            wall_s=wall, params=report.params, madds=report.madds,
            computed_madds=report.computed_madds, fused=len(cells), timings=clock.totals()))
    return results


class _Heads:
    """What the heads trained together have done so far: each one's losses,
    evaluations and last confusion matrix; the ones still training (``active``) and
    why the others stopped (a divergence, or a callback's exception: a pruner's)."""

    def __init__(self, cells: Sequence[ir.Cell], num_classes: int, ignore_index: int,
                 callbacks: list[Callback | None]) -> None:
        self.cells, self.callbacks = cells, callbacks
        self.losses: list[list[float]] = [[] for _ in cells]
        self.evals: list[list[tuple[int, float]]] = [[] for _ in cells]
        self.matrices = [ConfusionMatrix(num_classes, ignore_index) for _ in cells]
        self.stopped: dict[int, Exception] = {}
        self.active = list(range(len(cells)))

    def took(self, k: int, steps: int, got: dict[int, float]) -> bool:
        """Record step ``k``'s losses; a head whose loss is not finite stops. Whether
        any head trains on."""
        for i, loss in got.items():
            if np.isfinite(loss):
                self.losses[i].append(loss)
            else:
                self.stopped[i] = Diverged.at(
                    None, f"cell '{self.cells[i].name}': the loss is {loss} at step {k} of "
                          f"{steps}", hint="lower train.lr, or check the cell", code="DPC805")
        return self._prune()

    def evaluated(self, k: int, matrices: list[ConfusionMatrix]) -> float:
        """Record the active heads' evaluations at step ``k``; the best mIOU."""
        for i, matrix in zip(self.active, matrices, strict=True):
            self.matrices[i] = matrix
            self.evals[i].append((k, matrix.miou()))
        return max(self.evals[i][-1][1] for i in self.active)

    def told(self, k: int) -> bool:
        """Each active head's callback is told its evaluation at step ``k``; one that
        raises stops that head alone. Whether any head trains on."""
        for i in self.active:
            callback = self.callbacks[i]
            try:
                if callback is not None:
                    callback(k, self.evals[i][-1][1])
            except Exception as e:  # a pruner's stop, for this cell alone
                self.stopped[i] = e
        return self._prune()

    def _prune(self) -> bool:
        self.active = [i for i in self.active if i not in self.stopped]
        return bool(self.active)


class _Clock:
    """Seconds by phase: ``lap(name)`` adds the time since the last lap to ``name``."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.spent: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.spent[name] = self.spent.get(name, 0.0) + now - self.last
        self.last = now

    def totals(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in self.spent.items()}


def fed(cell: ir.Cell | ir.CellDef, task: Task) -> Task:
    """The task, feeding every input of the cell: its ``backbone.inputs``, else the
    levels the cell declares (``low @ 4``, written into the returned task so that the
    cache holds those levels). A cell the task cannot feed is a clear error that shows
    the fix, before any cache is built or any trial runs."""
    if isinstance(cell, ir.Cell):
        inputs, declared = cell.inputs, cell.levels
    else:
        inputs = tuple(p.name for p in cell.inputs)
        declared = tuple(p.level for p in cell.inputs)
    wired = list(input_levels(cell.name, inputs, task.backbone.inputs,
                              task.backbone.output_stride, cell.span, declared).values())
    if task.backbone.inputs is None and wired != [ir.Level(task.backbone.output_stride)]:
        return task.model_copy(update={"backbone": task.backbone.model_copy(
            update={"inputs": [v.written for v in wired]})})
    return task


def evaluate(predict: Callable[..., list[np.ndarray]], cache: FeatureCache,
             feats: list[np.ndarray], active: Sequence[int], batch: int = 16
             ) -> list[ConfusionMatrix]:
    """The confusion matrix of each head in ``active`` on the val split: ``predict``
    is a backend's (``predict(features, size, active) -> labels`` per head), ``feats``
    holds the val features of each input of the cells."""
    labels = cache.labels("val")
    matrices = [ConfusionMatrix(cache.num_classes, cache.ignore_index) for _ in active]
    for s in range(0, len(labels), batch):
        y = np.asarray(labels[s:s + batch])
        for matrix, p in zip(matrices, predict(
                [np.asarray(f[s:s + batch], np.float32) for f in feats], y.shape[1:],
                tuple(active)), strict=True):
            matrix.update(p, y)
    return matrices
