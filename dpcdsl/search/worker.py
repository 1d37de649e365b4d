"""One trial's work, as a worker runs it: no search state, just a cell and a task in,
a result or a failure reason out."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

Report = Callable[[int, float], None]


def run_job(job: dict[str, Any], report: Report | None = None) -> dict[str, Any]:
    """Train ``job["cell"]`` (``.dpc`` text) on ``job["task"]`` with the proxy trainer.
    Every failure comes back as ``{"ok": False, "failure": reason}``; only a prune
    request from ``report`` (``optuna.TrialPruned``) propagates."""
    import optuna

    from dpcdsl.data.task import Task
    from dpcdsl.errors import DpcError
    from dpcdsl.proxy import Diverged, train
    from dpcdsl.space import Space

    start = time.perf_counter()

    def failed(reason: str) -> dict[str, Any]:
        return {"ok": False, "failure": reason, "wall_s": time.perf_counter() - start}

    try:
        cell = Space.from_text(job["cell"], file="<trial>").concrete()
        task = Task.model_validate(job["task"])
        result = train(cell, task, backend=job.get("backend"), callback=report)
        return {"ok": True, **result.model_dump(exclude={"losses"}),
                "final_loss": result.losses[-1]}
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
