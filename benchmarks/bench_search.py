"""Search strategies and executors on the synthetic proxy task.

- the best mIOU against trials for random, ers, evolution and tpe at equal budget,
  averaged over a few seeds, on the paper's space;
- trials per hour for the local executor against a pool of 2 workers.

Writes benchmarks/results/bench_search.json.

    python benchmarks/bench_search.py [--trials 30] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.search.driver import SearchConfig, search  # noqa: E402
from dpcdsl.search.report import ranked  # noqa: E402
from dpcdsl.train.data.task import task_toml  # noqa: E402

TASK = {
    "dataset": {"train_size": 64, "val_size": 16, "image_size": 128},
    "train": {"crop": 128, "batch": 8, "steps": 60, "lr": 0.05, "eval_every": 60},
}


def best_curve(study, trials: int) -> list[float]:
    done = sorted(ranked(study), key=lambda t: t.number)
    curve, best = [], 0.0
    for t in done[:trials]:
        best = max(best, float(t.value or 0))
        curve.append(best)
    return curve + [best] * (trials - len(curve))


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    space = ROOT / "examples" / "dpc_paper.dpc"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        task = work / "task.toml"
        task.write_text(task_toml({**TASK, "cache_dir": work / "cache"}))
        strategies = {}
        for strategy in ("random", "ers", "evolution", "tpe"):
            curves = []
            for seed in range(args.seeds):
                study = search(SearchConfig(space, task, strategy=strategy, trials=args.trials,
                                            seed=seed, run_dir=work / f"{strategy}-{seed}",
                                            progress=False))
                curves.append(best_curve(study, args.trials))
            mean = [statistics.mean(c[i] for c in curves) for i in range(args.trials)]
            strategies[strategy] = {"mean_best_miou_by_trial": [round(v, 2) for v in mean],
                                    "final": round(mean[-1], 2)}
            print(strategy, strategies[strategy]["final"], flush=True)
        throughput = {}
        for executor in ("local", "pool"):
            t = time.perf_counter()
            search(SearchConfig(space, task, strategy="random", trials=8, seed=99,
                                executor=executor, workers=2,
                                run_dir=work / f"speed-{executor}", progress=False))
            throughput[executor] = round(8 / (time.perf_counter() - t) * 3600, 1)
            print(executor, throughput[executor], "trials/hour", flush=True)
    result = {"machine": machine(), "space": "dpc_paper", "trials": args.trials,
              "seeds": args.seeds, "task": "synthetic scenes 128x128, 60 steps",
              "strategies": strategies, "trials_per_hour": throughput}
    write_result("bench_search", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
