"""The search's throughput on a machine that other work shares.

Trials an hour of a search at the demo's budget (``examples/demo_task.toml``, the
paper's space), idle and with two background processes that burn a CPU each (at the
same priority as the search), for each placement:

- ``local``: one trial at a time in the driver's process with all the usable CPUs'
  threads (the default before the thread policy);
- ``auto``: what ``dpcc search`` now does by default (on a multi-core CPU, a pool of one
  single-threaded worker per CPU).

A multi-threaded trial stalls at every parallel region whose threads the scheduler has
taken away, and the backward pass of dilated depthwise convolutions has many of them;
one thread per process leaves the scheduler nothing to stall. Every run draws the same
architectures (same seed). Writes benchmarks/results/bench_load.json.

    python benchmarks/bench_load.py [--trials 8] [--burners 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402
from bench_trials import run  # noqa: E402

from dpcdsl.search.executors import place, usable_cpus  # noqa: E402

BURN = "while True:\n    pass\n"
PLACEMENTS = {"local": {"executor": "local"}, "auto": {"executor": "auto"}}


def burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8, help="trials per run")
    ap.add_argument("--burners", type=int, default=2, help="background CPU burners")
    ap.add_argument("--steps", type=int, default=120, help="training steps per trial")
    args = ap.parse_args()
    space = ROOT / "examples" / "dpc_paper.dpc"
    rates: dict[str, dict[str, float]] = {name: {} for name in PLACEMENTS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        task = work / "demo.toml"
        task.write_text((ROOT / "examples" / "demo_task.toml").read_text()
                        .replace('cache_dir = "../.dpcdsl-cache"',
                                 f'cache_dir = "{work / "cache"}"')
                        .replace("steps = 120", f"steps = {args.steps}")
                        .replace("eval_every = 60", f"eval_every = {args.steps}"))
        run(space, task, work / "warm", 1, "local", 0)  # builds the cache
        for condition in ("idle", "loaded"):
            load = burners(args.burners) if condition == "loaded" else []
            try:
                for name, how in PLACEMENTS.items():
                    executor = how["executor"]
                    wall, study = run(space, task, work / f"{condition}-{name}",
                                      args.trials, executor, 1, workers=None)
                    finished = sum(1 for t in study.trials if "miou" in t.user_attrs
                                   and "duplicate_of" not in t.user_attrs)
                    rates[name][condition] = round(finished / wall * 3600, 1)
                    print(condition, name, rates[name][condition], "trials/hour",
                          flush=True)
            finally:
                for p in load:
                    p.kill()
                    p.wait()
    for name in rates:
        rates[name]["loaded_over_idle"] = round(rates[name]["loaded"] / rates[name]["idle"],
                                                3)
    placed = {name: vars(place(how["executor"])) for name, how in PLACEMENTS.items()}
    result = {"machine": machine(usable_cpus=usable_cpus()),
              "task": f"examples/demo_task.toml, {args.steps} steps",
              "space": "dpc_paper", "trials": args.trials, "burners": args.burners,
              "placements": placed, "trials_per_hour": rates,
              "auto_loaded_over_local_idle": round(rates["auto"]["loaded"]
                                                   / rates["local"]["idle"], 3),
              "target": "auto loaded >= 0.5x its idle throughput (0.09x before, local)"}
    write_result("bench_load", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
