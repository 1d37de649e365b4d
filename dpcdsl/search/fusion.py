"""Fused trials (``dpcc search --fuse K``): up to K trials trained in one job, their
heads in one step on the same cached batch (:func:`dpcdsl.train.proxy.train_fused`).

One small head leaves most of a GPU idle; K heads in one step fill it, share the
batch's transfer and the host's per-step work. Each trial's result equals its training
alone (same weights, batches and random streams), so fusion is a matter of throughput
and not part of the search's identity. On a CPU the convolutions already fill the
cores, so it is off by default (benchmarks/bench_fuse.py).

:class:`FusingExecutor` wraps any executor: the driver submits trials one by one as
before; the wrapper groups them into fused jobs and hands each trial its own part of
the job's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna

from dpcdsl.search.contract import Executor
from dpcdsl.search.messages import Job, Outcome
from dpcdsl.search.worker import Report


@dataclass
class _Trial:
    number: int
    job: Job
    report: Report | None
    on_step: Callable[[int], None] | None


class FusingExecutor(Executor):
    """Up to ``fuse`` trials per job of ``inner``: its slots times ``fuse`` trials at
    once. A group starts when it is full and the inner executor has a free slot, or,
    part full, when the driver waits for results (the end of a budget)."""

    def __init__(self, inner: Executor, fuse: int) -> None:
        self.inner, self.fuse = inner, fuse
        self.name = inner.name
        self.slots = inner.slots * fuse
        self.waiting: list[_Trial] = []
        self.groups: dict[int, list[_Trial]] = {}  # the job's number -> its trials
        self.done: list[tuple[int, Outcome]] = []  # ended without an inner job

    @property
    def busy(self) -> int:
        return len(self.waiting) + sum(map(len, self.groups.values())) + len(self.done)

    def submit(self, number: int, job: Job, report: Report | None = None,
               on_step: Callable[[int], None] | None = None) -> None:
        self.waiting.append(_Trial(number, job, report, on_step))
        if len(self.waiting) >= self.fuse:
            self._start()

    def _start(self) -> None:
        """Start groups while the inner executor has room."""
        while self.waiting and self.inner.busy < self.inner.slots:
            group, self.waiting = self.waiting[:self.fuse], self.waiting[self.fuse:]
            first = group[0]
            job = replace(first.job, fused=tuple(t.job.cell for t in group[1:]))
            report = None
            if any(t.report is not None for t in group):
                def report(step: int, miou: float, part: int = 0,
                           group: list[_Trial] = group) -> None:
                    if group[part].report is not None:
                        group[part].report(step, miou, 0)  # type: ignore[misc]
            self.groups[first.number] = group
            try:
                self.inner.submit(first.number, job, report, on_step=first.on_step)
            except optuna.TrialPruned as e:  # a group of one, stopped in this process
                del self.groups[first.number]
                self.done.append((first.number, Outcome.failed(str(e), 0.0, pruned=True)))

    def collect(self) -> list[tuple[int, Outcome]]:
        """Start what waits (part-full groups too), then wait until a job ends: each of
        its trials with its own outcome."""
        self._start()
        done, self.done = self.done, []
        if done:
            return done
        for number, outcome in self.inner.collect():
            group = self.groups.pop(number)
            numbers = tuple(t.number for t in group)
            if len(group) == 1:
                done.append((number, outcome))
            elif outcome.parts:
                done += [(t.number, part.but(attempts=outcome.attempts, device=outcome.device,
                                             fused=numbers))
                         for t, part in zip(group, outcome.parts, strict=True)]
            else:  # the job as a whole failed: a timeout, a worker that died
                done += [(t.number, outcome.but(fused=numbers)) for t in group]
        return done

    def close(self) -> None:
        self.waiting.clear()
        self.inner.close()
