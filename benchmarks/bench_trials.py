"""Where a trial's time goes, and the executors' throughput on short trials.

- **Throughput:** trials an hour of the local executor against a pool of 2 persistent
  workers, on short trials of the paper's space (the synthetic task, 20 steps), in one
  run, each executor twice, interleaved.
- **Profile:** trials at the demo's budget (``examples/demo_task.toml``), split by the
  phases the trainer records (parse, cache, build, data, steps, eval, cost) against
  the trial's time as the study records it (start-up, storage and the driver are the
  rest), and the search's wall time per trial.

Writes benchmarks/results/bench_trials.json.

    python benchmarks/bench_trials.py [--short 48] [--profile 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.search.driver import SearchConfig, search  # noqa: E402
from dpcdsl.train.data.task import task_toml  # noqa: E402

SHORT = {
    "dataset": {"train_size": 32, "val_size": 8, "image_size": 128},
    "train": {"crop": 128, "batch": 4, "steps": 20, "lr": 0.05, "eval_every": 20},
}

PHASES = ("parse", "cache", "build", "data", "steps", "eval", "cost")


def run(space: Path, task: Path, run_dir: Path, trials: int, executor: str,
        seed: int, **placement: Any) -> tuple[float, Any]:
    """Seconds for a search of ``trials`` random draws, and its study (``placement``:
    workers and threads, by default a pool of 2)."""
    placement = {"workers": 2, **placement}
    t = time.perf_counter()
    study = search(SearchConfig(space, task, strategy="random", trials=trials, seed=seed,
                                executor=executor, run_dir=run_dir, progress=False,
                                **placement))
    return time.perf_counter() - t, study


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", type=int, default=48, help="trials per throughput run")
    ap.add_argument("--profile", type=int, default=3, help="trials at the demo budget")
    args = ap.parse_args()
    space = ROOT / "examples" / "dpc_paper.dpc"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        task = work / "short.toml"
        task.write_text(task_toml({**SHORT, "cache_dir": work / "cache"}))
        run(space, task, work / "warm", 1, "local", 0)  # builds the cache
        rates: dict[str, list[float]] = {"local": [], "pool": []}
        for i, executor in enumerate(("local", "pool", "pool", "local")):
            wall, _ = run(space, task, work / f"short-{i}", args.short, executor, 10 + i)
            rates[executor].append(args.short / wall * 3600)
            print(executor, round(rates[executor][-1], 1), "trials/hour", flush=True)
        throughput = {k: round(statistics.mean(v), 1) for k, v in rates.items()}
        throughput["pool_over_local"] = round(throughput["pool"] / throughput["local"], 3)

        demo = work / "demo.toml"
        demo.write_text((ROOT / "examples" / "demo_task.toml").read_text().replace(
            'cache_dir = "../.dpcdsl-cache"', f'cache_dir = "{work / "cache"}"'))
        run(space, demo, work / "warm-demo", 1, "local", 0)  # builds the demo's cache
        wall, study = run(space, demo, work / "profile", args.profile, "local", 1)
    done = [t for t in study.trials if "timings" in t.user_attrs]
    phases = {p: statistics.mean(t.user_attrs["timings"].get(p, 0.0) for t in done)
              for p in PHASES}
    recorded = statistics.mean((t.datetime_complete - t.datetime_start).total_seconds()
                               for t in done)
    per_trial = wall / args.profile
    profile = {"phases_s": {p: round(v, 4) for p, v in phases.items()},
               "trial_as_recorded_s": round(recorded, 3),
               "search_wall_per_trial_s": round(per_trial, 3),
               "other_s": round(per_trial - sum(phases.values()), 3),
               "training_share": round(phases["steps"] / per_trial, 4)}
    print(json.dumps(profile), flush=True)
    result = {"machine": machine(), "space": "dpc_paper",
              "short_task": "synthetic scenes 128x128, 20 steps, batch 4",
              "short_trials": args.short, "trials_per_hour": throughput,
              "profile_task": "examples/demo_task.toml", "profile_trials": len(done),
              "profile": profile}
    write_result("bench_trials", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
