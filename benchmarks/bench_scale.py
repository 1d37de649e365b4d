"""The driver at the paper's scale: 30,000 trials of the paper's space through the real
search engine (sampler, storage, de-duplication, budget, report) with an instant
stand-in trainer, for each Optuna storage: SQLite, the journal file and PostgreSQL
(a server this benchmark starts, see ``dpcdsl.search.postgres``).

The driver's time per trial is measured between successive trial starts and reported
as a median over windows (around the 100th trial, ..., the last 1,000).

Writes benchmarks/results/bench_scale.json (a storage's row replaces its last one, the
others are kept).

    python benchmarks/bench_scale.py [--trials 30000] [--storages sqlite journal postgresql]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine, write_result  # noqa: E402

from dpcdsl.search.driver import SearchConfig, search  # noqa: E402
from dpcdsl.search.messages import Job, Outcome, Scores  # noqa: E402
from dpcdsl.train.data.task import task_toml  # noqa: E402

TASK = {
    "dataset": {"train_size": 8, "val_size": 4, "image_size": 64},
    "train": {"crop": 64, "batch": 4, "steps": 1, "eval_every": 1},
}


class Instant:
    """An executor whose trials end at once, scored by a hash of their cell (so the
    strategies see a fixed, deterministic landscape); it notes when each trial starts."""

    name = "instant"
    slots = 1

    def __init__(self) -> None:
        self.done: list[tuple[int, Outcome]] = []
        self.starts: list[float] = []

    def submit(self, number: int, job: Job, report: Any = None,
               on_step: Callable[[int], None] | None = None) -> None:
        self.starts.append(time.perf_counter())
        h = int(hashlib.sha256(job.cell.encode()).hexdigest()[:8], 16)
        miou = h % 10_000 / 100
        self.done.append((number, Outcome(wall_s=0.0, scores=Scores(
            miou=miou, params=h % 1_000_000, madds=h % 100_000_000,
            computed_madds=h % 100_000_000, per_class_iou=[miou] * 5, evals=[(1, miou)],
            timings={}, threads=None, final_loss=1.0))))

    @property
    def busy(self) -> int:
        return len(self.done)

    def collect(self) -> list[tuple[int, Outcome]]:
        done, self.done = self.done, []
        return done

    def close(self) -> None:
        pass


def windows(starts: list[float], trials: int) -> dict[str, float]:
    """Median ms per trial around the 100th, 1,000th, 10,000th and over the last 1,000."""
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    out = {}
    for at in (100, 1_000, 10_000):
        if at + 50 <= len(gaps):
            out[f"trial_{at}"] = statistics.median(gaps[at - 50:at + 50]) * 1e3
    out["last_1000"] = statistics.median(gaps[-1000:]) * 1e3
    return {k: round(v, 3) for k, v in out.items()}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30_000)
    ap.add_argument("--storages", nargs="+", default=["sqlite", "journal", "postgresql"])
    args = ap.parse_args()
    space = ROOT / "examples" / "dpc_paper.dpc"
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        task = work / "task.toml"
        task.write_text(task_toml({**TASK, "cache_dir": work / "cache"}))
        for name in args.storages:
            with storage_for(name, work) as url:
                executor = Instant()
                t = time.perf_counter()
                search(SearchConfig(space, task, strategy="ers", trials=args.trials, seed=0,
                                    executor=executor, run_dir=work / name, storage=url,
                                    progress=False))
                wall = time.perf_counter() - t
            per = windows(executor.starts, args.trials)
            rows[name] = {"trials": args.trials, "wall_s": round(wall, 1), "ms_per_trial": per,
                          "last_over_100th": round(per["last_1000"] / per["trial_100"], 3)}
            print(name, rows[name], flush=True)
            # after each storage (a long run), beside the other storages' last results
            done = RESULTS / "bench_scale.json"
            earlier = json.loads(done.read_text())["storages"] if done.exists() else {}
            result = {"machine": machine(), "space": "dpc_paper", "strategy": "ers",
                      "trainer": "instant stand-in", "storages": {**earlier, **rows}}
            write_result("bench_scale", result)
    return result


def storage_for(name: str, work: Path) -> Any:
    from contextlib import nullcontext

    if name == "sqlite":
        return nullcontext(None)  # the run folder's study.db
    if name == "journal":
        return nullcontext(f"journal:{work / 'journal.log'}")
    if name == "postgresql":
        from dpcdsl.search.postgres import local_server

        return local_server(work / "pg")
    raise SystemExit(f"unknown storage {name}")


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
