"""How the report scales: a study of the paper's size (the DPC search ran 28K
candidates) written as report.html, leaderboard.csv and best/, timed, with the page's
size. The trials are synthetic but shaped like a real search's: cells of the paper's
space with their readable parameters, 19 per-class IoUs, learning curves, duplicates,
failures and prunes, and two runs with an idle gap between them.

    python benchmarks/bench_report.py [--trials 30000] [--storage memory|journal]

Writes benchmarks/results/bench_report.json. Goal: under 10 s to write the report of
30,000 trials, and a page under 5 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.search.objectives import directions, values_of  # noqa: E402
from dpcdsl.search.report import write_outputs  # noqa: E402

CLASSES = 19


def synthetic_study(trials: int, storage: str | optuna.storages.BaseStorage | None = None,
                    seed: int = 0,
                    space_file: Path = ROOT / "examples" / "dpc_paper.dpc",
                    objectives: tuple[str, ...] = ("miou",)) -> optuna.Study:
    """A study of ``trials`` trials of the paper's space as a search would leave it: 90%
    finished (a tenth of them duplicates), 6% failed, 4% pruned; trained 40 s each, in
    two runs four hours apart. With several ``objectives``, a multi-objective study
    whose trials also record a latency (about 1 ms per 0.1B multiply-adds)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    space = Space.from_file(space_file)
    study = optuna.create_study(study_name="dpcdsl", storage=storage,
                                directions=directions(objectives))
    if len(objectives) > 1:
        study.set_user_attr("objectives", list(objectives))
    for key, value in (("cell", space.name), ("strategy", "ers"),
                       ("space_file", str(space_file)), ("task_file", "task.toml"),
                       ("class_names", [f"class {c}" for c in range(CLASSES)]),
                       ("settings", {"strategy": {"warmup": 10}, "pruner": {},
                                     "trials": trials}),
                       ("baseline", {"name": "aspp", "miou": 55.0, "madds": 3 * 10**9,
                                     "params": 800_000, "key": "k", "cell": "cell aspp"})):
        study.set_user_attr(key, value)
    start = dt.datetime(2026, 1, 1, 9)
    made: list[optuna.trial.FrozenTrial] = []
    seen: list[tuple[int, float, dict]] = []
    for n in range(trials):
        params, dists = {}, {}

        def choose(path: str, counts: list[int], labels: list[str]) -> int:
            i = rng.randrange(len(counts))
            if len(counts) > 1:
                params[path], dists[path] = labels[i], CategoricalDistribution(labels)
            return i

        cell = space.decide(choose, labelled=True)[0]
        t0 = start + dt.timedelta(seconds=40 * n) + (dt.timedelta(hours=4)
                                                    if n >= trials // 2 else dt.timedelta())
        attrs = {"cell": cell.canonical_text(), "hash": cell.hash, "same_as": cell.hash,
                 "wall_s": 40.0, "params": rng.randrange(200_000, 900_000),
                 "madds": rng.randrange(1, 8) * 10**9 + rng.randrange(10**9)}
        if len(objectives) > 1:
            attrs["latency_ms"] = attrs["madds"] / 1e8 * rng.uniform(0.7, 1.3)
        roll = rng.random()
        state, value, steps = TrialState.COMPLETE, None, {}
        if roll < 0.06:
            state = TrialState.FAIL
            attrs["failure"] = rng.choice(["diverged: the loss is NaN at step 120",
                                           "timeout: over 600 s", "worker died"])
        elif roll < 0.10:
            state = TrialState.PRUNED
            attrs["pruned"] = "pruned at step 100 (mIOU 31.2)"
            steps = {60: 20.5, 100: 31.2}
        elif roll < 0.19 and seen:
            number, value, original = rng.choice(seen)
            attrs.update(original, duplicate_of=number)
        else:
            value = min(90.0, max(5.0, rng.gauss(60, 10)))
            attrs["miou"] = value
            attrs["per_class_iou"] = [min(100.0, max(0.0, rng.gauss(value, 15)))
                                      for _ in range(CLASSES)]
            attrs["evals"] = [[s, value * s / 300 + rng.random()] for s in range(60, 301, 60)]
            attrs["final_loss"] = 0.3
            seen.append((n, value, {k: attrs[k] for k in (
                "cell", "hash", "same_as", "params", "madds", "latency_ms", "miou",
                "per_class_iou") if k in attrs}))
        values = None if value is None else values_of({**attrs, "miou": value}, objectives)
        made.append(create_trial(state=state, values=values, params=params, distributions=dists,
                                 user_attrs=attrs, intermediate_values=steps))
        made[-1].datetime_start = t0
        made[-1].datetime_complete = t0 + dt.timedelta(seconds=40)
    study.add_trials(made)
    return study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30_000)
    # memory: the report's own cost; journal: also reading the trials back from a file
    # storage (Optuna writes SQLite one transaction per trial, which takes far longer to
    # fill with 30,000 synthetic trials than the search it stands for)
    ap.add_argument("--storage", choices=("memory", "journal"), default="memory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        storage = None
        if args.storage == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            storage = JournalStorage(JournalFileBackend(str(run / "study.log")))
        t = time.perf_counter()
        study = synthetic_study(args.trials, storage)
        built = time.perf_counter() - t
        t = time.perf_counter()
        if storage is not None:  # as `dpcc report` finds it: a cold study, read back
            storage = JournalStorage(JournalFileBackend(str(run / "study.log")))
            study = optuna.load_study(study_name="dpcdsl", storage=storage)
        loaded = len(study.get_trials(deepcopy=False))
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        write_outputs(study, run)
        write_s = time.perf_counter() - t
        page = (run / "report.html").stat().st_size
        csv_size = (run / "leaderboard.csv").stat().st_size
    result = {
        "machine": machine(), "trials": loaded, "storage": args.storage,
        "build_study_s": round(built, 1),
        "load_trials_s": round(load_s, 2),
        "write_report_s": round(write_s, 2),
        "report_mb": round(page / 1e6, 2), "leaderboard_csv_mb": round(csv_size / 1e6, 2),
        "goal": "write_report_s < 10 and report_mb < 5",
    }
    print(result)
    print(f"wrote {write_result('bench_report', result)}")


if __name__ == "__main__":
    main()
