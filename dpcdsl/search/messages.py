"""The messages between the search driver, its executors and their workers.

Every one is a frozen dataclass of plain values, so it pickles across processes and
Ray tasks unchanged: the driver sends a :class:`Job`, a worker may send
:class:`Progress` at each evaluation (and hears back whether to stop), and every trial
ends in one :class:`Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Job:
    """One trial's work: a concrete cell as ``.dpc`` text, the task as JSON, the
    backend that trains it (None: the task's), whether the driver may prune it and the
    CPU threads it runs with (None: as the executor places it). ``fused`` holds the
    cells of more trials trained fused with it (``--fuse``): such a job's outcome has a
    part per cell. ``evaluator`` names a trained supernet's run folder that scores the
    cells with inherited weights instead (None: they train on the proxy task)."""

    cell: str
    task: dict[str, Any]
    backend: str | None = None
    prunable: bool = False
    threads: int | None = None
    fused: tuple[str, ...] = ()
    evaluator: str | None = None

    @property
    def cells(self) -> tuple[str, ...]:
        """Every cell the job trains, its own first."""
        return (self.cell, *self.fused)


@dataclass(frozen=True)
class Progress:
    """An evaluation during training: the step and the mIOU there."""

    step: int
    miou: float
    part: int = 0  # the cell it is about, in a fused job (Job.cells)


@dataclass(frozen=True)
class Scores:
    """What a finished trial measured."""

    miou: float
    params: int
    madds: int
    computed_madds: int  # madds less the atrous taps that read only padding
    per_class_iou: list[float | None]
    evals: list[tuple[int, float]]
    # seconds by phase: parse (the cell's text), then the trainer's (dpcdsl.train.proxy)
    timings: dict[str, float]
    threads: int | None  # the CPU threads it trained with (None: the framework's default)
    # how it was scored: "proxy" (trained), or "supernet" (inherited weights)
    evaluator: str
    final_loss: float  # the last field: the driver stores it last (see driver.py)


@dataclass(frozen=True)
class Outcome:
    """How a trial ended: ``scores`` when it finished, else a ``failure`` reason
    (``pruned`` when the driver's pruner stopped it). ``attempts`` counts the workers
    it took; ``device`` names the GPUs it ran on, where known. A fused job's outcome
    holds each cell's own in ``parts``; the executor hands each trial its part, with
    the trials trained together in ``fused``."""

    wall_s: float
    scores: Scores | None = None
    failure: str | None = None
    pruned: bool = False
    attempts: int = 1
    device: str | None = None
    parts: tuple[Outcome, ...] = ()
    fused: tuple[int, ...] = ()
    traceback: str | None = None  # of a failure: where it happened, for its run folder

    @property
    def ok(self) -> bool:
        return self.scores is not None

    @classmethod
    def failed(cls, reason: str, wall_s: float, **kw: Any) -> Outcome:
        return cls(wall_s=wall_s, failure=reason, **kw)

    def but(self, **changes: Any) -> Outcome:
        """A copy with ``changes`` (the executor adds attempts and the device)."""
        return replace(self, **changes)
