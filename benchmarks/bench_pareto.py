"""A multi-objective search against a single-objective one with the same trial budget,
on the demo task (the synthetic scenes, the paper's space).

Each search runs for real (the proxy task, a pool of workers). For each: the best mIOU,
the hypervolume of mIOU against multiply-adds that its finished cells dominate
(normalised, against one reference point for all: mIOU 0 and 1.1 times the costliest
cell any search trained), that hypervolume as the trials came, the number of distinct
cells on its own Pareto front, and how many of its cells are on the front of all the
searches' cells together.

Writes benchmarks/results/bench_pareto.json.

    python benchmarks/bench_pareto.py [--trials 48] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.search.driver import SearchConfig, search  # noqa: E402
from dpcdsl.search.objectives import fronts, normalised_hypervolume  # noqa: E402
from dpcdsl.search.report import ranked  # noqa: E402

OBJECTIVES = ("miou", "madds")
#: (label, strategy, objectives, settings)
RUNS = (
    ("ers, mIOU alone", "ers", ("miou",), {}),
    ("ers, mIOU and MAdds", "ers", OBJECTIVES, {}),
    ("evolution, mIOU alone", "evolution", ("miou",), {"population": 12}),
    ("evolution, mIOU and MAdds", "evolution", OBJECTIVES, {"population": 12}),
    ("nsga2, mIOU and MAdds", "nsga2", OBJECTIVES, {"population": 12}),
)


def points(study) -> dict[str, tuple[float, float]]:
    """Each distinct finished cell (by the computation it trained) and its (mIOU,
    multiply-adds), in the order the trials finished."""
    done = sorted(ranked(study), key=lambda t: (t.datetime_complete, t.number))
    out: dict[str, tuple[float, float]] = {}
    for t in done:
        out.setdefault(str(t.user_attrs.get("same_as")),
                       (float(t.user_attrs["miou"]), float(t.user_attrs["madds"])))
    return out


def front_of(values: list[tuple[float, float]]) -> list[int]:
    return fronts([(-m, c) for m, c in values], 1)[0] if values else []


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    space, task = ROOT / "examples" / "dpc_paper.dpc", ROOT / "examples" / "demo_task.toml"
    found, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, strategy, objectives, settings in RUNS:
            t = time.perf_counter()
            study = search(SearchConfig(space, task, strategy=strategy, trials=args.trials,
                                        seed=args.seed, objectives=list(objectives),
                                        settings=settings, executor="auto",
                                        run_dir=Path(tmp) / label.replace(" ", "_"),
                                        progress="log"))
            seconds[label] = round(time.perf_counter() - t, 1)
            found[label] = points(study)
            print(label, len(found[label]), "distinct cells", seconds[label], "s", flush=True)
    everything = [(label, key, v) for label, cells in found.items() for key, v in cells.items()]
    reference = [0.0, 1.1 * max(v[1] for _, _, v in everything)]
    joint = {(everything[i][0], everything[i][1])
             for i in front_of([v for _, _, v in everything])}
    searches = {}
    for label, cells in found.items():
        values = list(cells.values())
        curve = [round(normalised_hypervolume(values[:n], OBJECTIVES, reference), 4)
                 for n in range(1, len(values) + 1)]
        searches[label] = {
            "best_miou": round(max(v[0] for v in values), 2),
            "hypervolume": curve[-1],
            "hypervolume_by_distinct_cell": curve,
            "distinct_cells": len(values),
            "pareto_cells": len(front_of(values)),
            "on_the_joint_front": sum((label, key) in joint for key in cells),
            "seconds": seconds[label],
        }
        print(label, searches[label]["hypervolume"], searches[label]["pareto_cells"],
              flush=True)
    result = {"machine": machine(), "space": "dpc_paper", "task": "examples/demo_task.toml",
              "trials": args.trials, "seed": args.seed,
              "reference": {"miou": 0.0, "madds": round(reference[1])},
              "joint_front_size": len(joint), "searches": searches}
    write_result("bench_pareto", result)
    return result


if __name__ == "__main__":
    main()
