"""One job's work, as a worker runs it: no search state, just a :class:`Job` in and an
:class:`Outcome` out."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from dpcdsl.search.messages import Job, Outcome, Scores

#: called as ``report(step, miou, part)`` at every evaluation of the job's cell ``part``
#: (0 but in a fused job); raises ``optuna.TrialPruned`` to stop that cell
Report = Callable[[int, float, int], None]


def run_job(job: Job, report: Report | None = None,
            on_step: Callable[[int], None] | None = None) -> Outcome:
    """Train the job's cell on its task with the proxy trainer (its cells fused, for a
    fused job: one part each). Every failure comes back as an :class:`Outcome` with a
    reason; only a prune request from ``report`` for a job of one cell
    (``optuna.TrialPruned``) propagates. ``on_step(k)`` follows the training (in
    process: the search's progress bar moves inside a trial).

    A fused job whose fused training fails as a whole (out of memory, a cell that
    cannot be built) trains its cells one by one, so that each gets its own outcome."""
    import optuna

    from dpcdsl import backends
    from dpcdsl.lang.space import Space
    from dpcdsl.train.data.task import Task
    from dpcdsl.train.proxy import train, train_fused

    start = time.perf_counter()
    try:
        if job.threads:  # explicit, so that nothing depends on what ran before
            trainer = backends.resolve(job.backend or job.task.get("backend"), "proxy_steps")
            backends.hook(trainer, "set_threads")(job.threads)
        cells = [Space.from_text(text, file="<trial>").concrete() for text in job.cells]
        task = Task.model_validate(job.task)
        parsed = time.perf_counter() - start
        if job.evaluator is not None:
            return _inherited(job, cells, task, parsed, on_step)
        callbacks = [None if report is None else partial(_as_part, report, i)
                     for i in range(len(cells))]
        if not job.fused:
            return _outcome(train(cells[0], task, backend=job.backend, callback=callbacks[0],
                                  on_step=on_step), parsed, job.threads)
        results = train_fused(cells, task, job.backend, callbacks, on_step=on_step)
        return Outcome(wall_s=time.perf_counter() - start, parts=tuple(
            _outcome(r, parsed, job.threads) if not isinstance(r, Exception)
            else Outcome.failed(_reason(r), time.perf_counter() - start,
                                pruned=isinstance(r, optuna.TrialPruned),
                                traceback=_traceback(r))
            for r in results))
    except optuna.TrialPruned:
        raise
    except Exception as e:
        if job.fused:
            return _one_by_one(job, report, on_step)
        return Outcome.failed(_reason(e), time.perf_counter() - start,
                              traceback=_traceback(e))


def _inherited(job: Job, cells: list[Any], task: Any, parsed: float,
               on_step: Callable[[int], None] | None) -> Outcome:
    """The job's cells scored with the weights they inherit from the supernet in
    ``job.evaluator`` (one part each, for a fused job)."""
    from dpcdsl.lang.analysis import cost
    from dpcdsl.train.oneshot import scorer
    from dpcdsl.train.proxy import head_cell

    parts = []
    for cell in cells:
        start = time.perf_counter()
        shot = scorer(str(job.evaluator), task)
        opened = time.perf_counter() - start
        matrix = shot.matrix(cell)
        scored = time.perf_counter() - start - opened
        head = head_cell(cell, shot.task)
        report = cost(head, shot.cache.in_channels(head, shot.task),
                      shot.cache.sizes(head, shot.task))
        miou = matrix.miou()
        if on_step is not None:
            on_step(1)
        parts.append(Outcome(wall_s=time.perf_counter() - start, scores=Scores(
            miou=miou, params=report.params, madds=report.madds,
            computed_madds=report.computed_madds,
            per_class_iou=[None if v != v else float(v) * 100 for v in matrix.iou()],
            evals=[(shot.trained_steps, miou)],
            timings={"parse": round(parsed, 6), "open": round(opened, 6),
                     "inherit": round(scored, 6)}, threads=job.threads,
            evaluator="supernet", final_loss=shot.final_loss)))
    if not job.fused:
        return parts[0]
    return Outcome(wall_s=sum(p.wall_s for p in parts), parts=tuple(parts))


def _traceback(e: BaseException) -> str | None:
    """What a failed trial's traceback file holds: the error as the project renders it
    (with its carets) and Python's traceback. A pruned trial has none."""
    import optuna

    from dpcdsl.errors import DpcError

    if isinstance(e, optuna.TrialPruned):
        return None
    head = e.render() + "\n\n" if isinstance(e, DpcError) else ""
    return head + "".join(traceback.format_exception(type(e), e, e.__traceback__))


def _as_part(report: Report, i: int, step: int, miou: float, _: int = 0) -> None:
    """Part ``i``'s report: it carries the part's place in the fused job (a job of
    one cell, trained alone, reports as part 0 of itself)."""
    report(step, miou, i)


def _one_by_one(job: Job, report: Report | None,
                on_step: Callable[[int], None] | None) -> Outcome:
    """A fused job's outcome, its cells trained alone."""
    import optuna

    start = time.perf_counter()
    parts = []
    for i, text in enumerate(job.cells):
        try:
            parts.append(run_job(replace(job, cell=text, fused=()),
                                 None if report is None else partial(_as_part, report, i),
                                 on_step))
        except optuna.TrialPruned as e:
            parts.append(Outcome.failed(str(e), time.perf_counter() - start, pruned=True))
    return Outcome(wall_s=time.perf_counter() - start, parts=tuple(parts))


def _outcome(result: Any, parsed: float, threads: int | None) -> Outcome:
    """A finished trial's outcome from the trainer's result."""
    return Outcome(wall_s=result.wall_s, scores=Scores(
        miou=result.miou, params=result.params, madds=result.madds,
        computed_madds=result.computed_madds,
        per_class_iou=result.per_class_iou, evals=result.evals,
        timings={"parse": round(parsed, 6), **result.timings}, threads=threads,
        evaluator="proxy", final_loss=result.losses[-1]))


def _reason(e: BaseException) -> str:
    """The failure reason a trial records for the exception that stopped it."""
    import optuna

    from dpcdsl.errors import DpcError
    from dpcdsl.train.training import Diverged

    if isinstance(e, optuna.TrialPruned):
        return str(e)
    if isinstance(e, Diverged):
        return f"diverged: {e.diagnostics[0].message}"
    if isinstance(e, DpcError):
        return f"error: {e.diagnostics[0].message}"
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, RuntimeError):
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "out of memory" in str(e).lower():
            return f"out of memory: {text}"
        return f"RuntimeError: {text}"
    tb = traceback.extract_tb(e.__traceback__)
    return f"{type(e).__name__}: {e}" + (f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else "")
