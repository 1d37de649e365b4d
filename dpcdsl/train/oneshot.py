"""One-shot training: a whole space's supernet trained on the proxy task's cached
features, and candidates scored with the weights they inherit from it.

Every step trains the candidate that the space's own uniform sampler draws for that
step (so counts and recursion stay exact), on the step's batch, as the proxy task
trains one head. A candidate is scored by its stand-alone head with the inherited
weights, its BatchNorm statistics recalibrated on :data:`CALIBRATION_BATCHES` train
batches (the same batches for every candidate), on the cached val split.

A run folder holds ``supernet.safetensors`` (the bank, by key), ``optimizer.safetensors``
(the momentum, by key) and ``supernet.json`` (the space's identity, the task, the step,
the losses and the evaluations). Each is written whole and renamed, so a killed run
leaves its last checkpoint; a step draws its candidate, batch and dropout from (seed,
step), so a resumed run goes on exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dpcdsl import backends
from dpcdsl._files import load_json, write_atomic
from dpcdsl.compiler.supernet import Bank, bank_of, space_identity
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.program import standalone_text
from dpcdsl.lang.space import Space
from dpcdsl.train import weightfile
from dpcdsl.train.data.augment import sample_labels
from dpcdsl.train.data.cache import FeatureCache
from dpcdsl.train.data.metrics import ConfusionMatrix
from dpcdsl.train.data.task import Task
from dpcdsl.train.progress import StepProgress, mode_for
from dpcdsl.train.proxy import ensure_cache, evaluate, fed
from dpcdsl.train.training import Diverged, batches

BANK, OPTIMIZER, SIDECAR = "supernet.safetensors", "optimizer.safetensors", "supernet.json"
#: train batches a candidate's BatchNorm statistics are measured on before it is scored
CALIBRATION_BATCHES = 4
#: candidates scored at each of the training's evaluations (their mean is shown)
EVAL_CANDIDATES = 2
#: what a run's record holds
RECORD_KEYS = frozenset({"space", "task", "backend", "step", "losses", "evals", "bank"})


#: what of a task a supernet depends on is all but these: its own training settings,
#: seed and device may differ from a search's that uses it (and the backend is the
#: one that trained it, compared on its own)
NOT_IDENTITY = frozenset({"file", "cache_dir", "strategy", "pruner", "train", "seed",
                          "device", "backend"})


def identity(space: Space, task: Task, backend: str) -> dict[str, Any]:
    """What a supernet must share with a search that uses it: the space, the task's
    data and features, and the backend."""
    return {"space": space_identity(space),
            "task": task.model_dump(mode="json", exclude=set(NOT_IDENTITY)),
            "backend": backend}


def candidate(space: Space, seed: int, k: int | str) -> tuple[ir.Cell, dict[str, int]]:
    """The candidate of step ``k`` (or of a named draw): uniform over the space."""
    return space.sample(random.Random(f"{seed}:{k}"))


class OneShot:
    """A supernet on a task: its backend steps, the cache, and candidate scoring."""

    def __init__(self, space: Space, task: Task, backend: str | None = None,
                 progress: bool | str = False, bank: Bank | None = None) -> None:
        self.space = space
        self.task = task = fed(space.cell_def, task)
        self.cache: FeatureCache = ensure_cache(task, progress=mode_for(progress))
        first, _ = candidate(space, task.seed, "inputs")  # any candidate: they read alike
        self.first = first
        self.in_channels = self.cache.in_channels(first, task)
        self.trainer = backends.resolve(backend or task.backend, "supernet_steps")
        self.bank = bank or bank_of(space, self.in_channels, self.cache.num_classes, task.seed)
        self.steps = self.trainer.supernet_steps(space, self.cache, task, self.in_channels,
                                                 self.bank)
        self.feats = self.cache.inputs(first, task, "train")
        self.labels = self.cache.labels("train")
        self._val: list[np.ndarray] | None = None
        self.calibration = CALIBRATION_BATCHES
        #: the steps the supernet was trained for, and its last loss (once opened)
        self.trained_steps, self.final_loss = 0, float("nan")

    def identity(self) -> dict[str, Any]:
        return identity(self.space, self.task, self.trainer.name)

    def calibrate_batches(self) -> list[list[np.ndarray]]:
        """The train batches every candidate's statistics are measured on."""
        stream = batches(len(self.labels), self.task.train.batch, self.task.seed + 1)
        return [[np.asarray(f[idx], np.float32) for f in self.feats]
                for idx in (next(stream) for _ in range(self.calibration))]

    def matrix(self, decisions: Mapping[str, int] | ir.Cell) -> ConfusionMatrix:
        """The candidate's confusion matrix on the val split, with its inherited
        weights and recalibrated statistics. A cell is first found in the space (one
        that is not in it is refused)."""
        if isinstance(decisions, ir.Cell):
            decisions = self.space.encode(decisions)
        if self._val is None:
            self._val = self.cache.inputs(self.first, self.task, "val")
            self._calibrate = self.calibrate_batches()
        predict = self.steps.predictor(decisions, self._calibrate)
        return evaluate(predict, self.cache, self._val, (0,))[0]

    def score(self, decisions: Mapping[str, int] | ir.Cell) -> float:
        """The candidate's mIOU (:meth:`matrix`)."""
        return self.matrix(decisions).miou()


def train_supernet(space: Space, task: Task, run_dir: str | Path, resume: bool = False,
                   backend: str | None = None, progress: bool | str = False,
                   eval_candidates: int = EVAL_CANDIDATES) -> dict[str, Any]:
    """Train the supernet of ``space`` on the task's cached features for
    ``task.train.steps`` steps, checkpointing at every evaluation; with ``resume``, go on
    from the folder's checkpoint (refused when it holds another space or task). Returns
    the run's record."""
    run = Path(run_dir)
    if (run / SIDECAR).exists() and not resume:
        raise DpcError.at(None, f"{run} already holds a supernet training",
                          hint="pass --resume to continue it, or choose another --run-dir",
                          code="DPC802")
    mode = mode_for(progress)
    record: dict[str, Any] | None = None
    if resume:
        record = read_record(run)
    shot = OneShot(space, task, backend, progress=mode)
    if record is not None:
        check_identity(record, shot.identity(), run)
        planned = int(record.get("steps_total", shot.task.train.steps))
        if planned != shot.task.train.steps:
            raise DpcError.at(None, f"the supernet in {run} trains for {planned} steps; "
                              f"{shot.task.train.steps} would change its learning-rate "
                              "schedule", hint=f"resume with --steps {planned} (or the "
                              "task's train.steps), or train a new supernet", code="DPC803")
        shot.steps.load(weightfile.read(run / BANK), weightfile.read(run / OPTIMIZER))
    else:
        record = {**shot.identity(), "space_text": standalone_text(space.program),
                  "cell": space.name, "step": 0, "losses": [], "evals": [],
                  "steps_total": shot.task.train.steps,
                  "calibration_batches": shot.calibration, "eval_candidates": eval_candidates,
                  "bank": {"tensors": len(shot.bank.weights), "params": shot.bank.params,
                           "exact": shot.bank.exact, "walks": shot.bank.walks},
                  "wall_s": 0.0}
    run.mkdir(parents=True, exist_ok=True)
    spec = shot.task.train
    start = int(record["step"])
    stream = batches(len(shot.labels), spec.batch, shot.task.seed)
    for _ in range(start):
        next(stream)
    began = time.perf_counter() - float(record.get("wall_s", 0.0))
    with StepProgress(spec.steps, mode, f"supernet of {space.name}") as shown:
        for k in range(start + 1, spec.steps + 1):
            idx = next(stream)
            _, decisions = candidate(space, shot.task.seed, k)
            loss = shot.steps.step([np.asarray(f[idx], np.float32) for f in shot.feats],
                                   sample_labels(np.asarray(shot.labels[idx]),
                                                 spec.proxy_loss_stride), decisions, k)
            if not np.isfinite(loss):
                raise Diverged.at(None, f"the supernet's loss is {loss} at step {k}",
                                  hint="lower train.lr", code="DPC805")
            record["losses"].append(loss)
            shown.step(k, loss)
            if k % spec.eval_every == 0 or k == spec.steps:
                scores = [shot.score(candidate(space, shot.task.seed, f"eval{i}")[1])
                          for i in range(eval_candidates)]
                miou = float(np.mean(scores)) if scores else float("nan")
                record["evals"].append([k, miou])
                record["step"] = k
                record["wall_s"] = round(time.perf_counter() - began, 3)
                _save(run, shot, record)
                if scores:
                    shown.evaluated(k, miou)
    return record


def _save(run: Path, shot: OneShot, record: dict[str, Any]) -> None:
    bank, momentum = shot.steps.state()
    write_atomic(run / BANK, lambda p: weightfile.write(bank, p))
    write_atomic(run / OPTIMIZER, lambda p: weightfile.write(momentum, p))
    write_atomic(run / SIDECAR, lambda p: p.write_text(json.dumps(record, indent=1)))


def read_record(run: Path) -> dict[str, Any]:
    """A supernet run's record, or a clear error when it is missing or damaged."""
    path = run / SIDECAR
    if not path.is_file():
        raise DpcError.at(None, f"{run} holds no supernet training ({SIDECAR} is missing)",
                          hint="train one first: dpcc supernet train SPACE --task T "
                               f"--run-dir {run}", code="DPC802")
    record = load_json(path, "supernet record", code="DPC703")
    missing = RECORD_KEYS - set(record) if isinstance(record, dict) else RECORD_KEYS
    if missing:
        raise DpcError.at(None, f"{path} is damaged: it holds no supernet record (no "
                          f"{', '.join(sorted(missing))})", code="DPC703")
    return record


def check_identity(record: Mapping[str, Any], now: Mapping[str, Any], run: Path) -> None:
    """Refuse a checkpoint of another space, task or backend, naming the difference."""
    diffs = []
    if record["space"] != now["space"]:
        was, got = record["space"], now["space"]
        what = [f"{k} {was.get(k)!r} -> {got.get(k)!r}" for k in sorted(got)
                if was.get(k) != got.get(k)]
        diffs.append("the space differs (" + ", ".join(what) + ")")
    if record["task"] != now["task"]:
        keys = _changed(record["task"], now["task"])
        diffs.append("the task differs (" + ", ".join(keys[:6]) + ")")
    if record["backend"] != now["backend"]:
        diffs.append(f"the backend differs ({record['backend']} -> {now['backend']})")
    if diffs:
        raise DpcError.at(None, f"the supernet in {run} was trained for another search: "
                          + "; ".join(diffs), hint="use it with the space and task it "
                          "was trained on, or train a supernet for these", code="DPC703")


def _changed(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two task records differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _changed(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]


def describe_supernet(run_dir: str | Path) -> str:
    """A supernet as a search's identity holds it: its space and how far it trained
    (not its folder, which may move)."""
    record = read_record(Path(run_dir))
    loss = record["losses"][-1] if record["losses"] else float("nan")
    return (f"supernet of {record['space']['text_sha256']} trained {record['step']} steps, "
            f"final loss {loss:.6f}")


def check_supernet(run_dir: str | Path, space: Space, task: Task,
                   backend: str) -> dict[str, Any]:
    """The record of the supernet in ``run_dir``, checked against a search's space, task
    and backend without loading it."""
    run = Path(run_dir)
    record = read_record(run)
    check_identity(record, identity(space, fed(space.cell_def, task), backend), run)
    return record


def open_supernet(space: Space | None, task: Task, run_dir: str | Path,
                  backend: str | None = None) -> OneShot:
    """A trained supernet, ready to score candidates of ``space`` (None: the space it
    was trained on); refused when it was trained for another space, task or backend."""
    run = Path(run_dir)
    record = read_record(run)
    if space is None:
        space = Space.from_text(record["space_text"], record["cell"], file=str(run / SIDECAR))
    shot = OneShot(space, task, backend or record.get("backend"))
    check_identity(record, shot.identity(), run)
    shot.steps.load(weightfile.read(run / BANK), {})
    shot.calibration = int(record.get("calibration_batches", CALIBRATION_BATCHES))
    shot.trained_steps = int(record["step"])
    shot.final_loss = float(record["losses"][-1]) if record["losses"] else float("nan")
    return shot


_OPEN: dict[tuple[str, str], OneShot] = {}


def scorer(run_dir: str | Path, task: Task) -> OneShot:
    """The supernet of ``run_dir`` on ``task``, opened once per process (a search's
    workers score many candidates with it)."""
    key = (str(Path(run_dir).resolve()), json.dumps(task.model_dump(mode="json"),
                                                    sort_keys=True))
    if key not in _OPEN:
        _OPEN.clear()  # one supernet at a time
        _OPEN[key] = open_supernet(None, task, run_dir, task.backend)
    return _OPEN[key]


__all__ = ["BANK", "CALIBRATION_BATCHES", "OneShot", "candidate", "check_supernet",
           "describe_supernet",
           "identity", "open_supernet", "scorer", "train_supernet"]
