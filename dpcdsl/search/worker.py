"""One trial's work, as a worker runs it: no search state, just a :class:`Job` in and an
:class:`Outcome` out."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from dpcdsl.search.messages import Job, Outcome, Scores

#: called at every evaluation; raises ``optuna.TrialPruned`` to stop the trial
Report = Callable[[int, float], None]


def run_job(job: Job, report: Report | None = None,
            on_step: Callable[[int], None] | None = None) -> Outcome:
    """Train the job's cell on its task with the proxy trainer. Every failure comes
    back as an :class:`Outcome` with a reason; only a prune request from ``report``
    (``optuna.TrialPruned``) propagates. ``on_step(k)`` follows the training (in
    process: the search's progress bar moves inside a trial)."""
    import optuna

    from dpcdsl import backends
    from dpcdsl.data.task import Task
    from dpcdsl.errors import DpcError
    from dpcdsl.proxy import train
    from dpcdsl.space import Space
    from dpcdsl.training import Diverged

    start = time.perf_counter()

    def failed(reason: str) -> Outcome:
        return Outcome.failed(reason, time.perf_counter() - start)

    try:
        if job.threads:  # explicit, so that nothing depends on what ran before
            backends.resolve(job.backend or job.task.get("backend"),
                             "proxy_steps").set_threads(job.threads)
        cell = Space.from_text(job.cell, file="<trial>").concrete()
        task = Task.model_validate(job.task)
        parsed = time.perf_counter() - start
        result = train(cell, task, backend=job.backend, callback=report, on_step=on_step)
        return Outcome(wall_s=result.wall_s, scores=Scores(
            miou=result.miou, params=result.params, madds=result.madds,
            computed_madds=result.computed_madds,
            per_class_iou=result.per_class_iou, evals=result.evals,
            timings={"parse": round(parsed, 6), **result.timings}, threads=job.threads,
            final_loss=result.losses[-1]))
    except optuna.TrialPruned:
        raise
    except Diverged as e:
        return failed(f"diverged: {e.diagnostics[0].message}")
    except DpcError as e:
        return failed(f"error: {e.diagnostics[0].message}")
    except MemoryError:
        return failed("out of memory")
    except RuntimeError as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "out of memory" in str(e).lower():
            return failed(f"out of memory: {text}")
        return failed(f"RuntimeError: {text}")
    except Exception as e:
        last = traceback.extract_tb(e.__traceback__)[-1]
        return failed(f"{type(e).__name__}: {e} ({last.filename}:{last.lineno})")
