"""One-shot search against the proxy task, on the demo task and the paper's space.

* **Fidelity:** the Spearman correlation between each of ``--candidates`` uniform
  candidates' mIOU with weights inherited from the supernet (BatchNorm recalibrated)
  and its mIOU trained stand-alone on the proxy task, with the supernet's budget.
* **Cost:** seconds per candidate scored with the supernet against seconds per
  candidate trained on the proxy task, and the wall time of scoring ``--evaluate``
  candidates.
* **Outcome:** a one-shot search (the supernet trained, an evolution search scored by
  it, its top 5 re-ranked stand-alone) against a proxy ERS search given the same wall
  time, both judged by the best stand-alone proxy mIOU they found.
* **Memory:** the peak RSS of the supernet's training against one candidate's, each in
  a process of its own.

Writes benchmarks/results/bench_oneshot.json.

    python benchmarks/bench_oneshot.py [--supernet-steps 2400] [--candidates 30]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.search.driver import SearchConfig, search  # noqa: E402
from dpcdsl.search.objectives import score  # noqa: E402
from dpcdsl.search.report import ranked  # noqa: E402
from dpcdsl.search.rerank import rerank, spearman  # noqa: E402
from dpcdsl.train.data.task import load_task  # noqa: E402
from dpcdsl.train.oneshot import open_supernet  # noqa: E402
from dpcdsl.train.proxy import train  # noqa: E402

SPACE, TASK = ROOT / "examples" / "dpc_paper.dpc", ROOT / "examples" / "demo_task.toml"
#: runs a dpcc command and prints its peak RSS (KiB) as its last stderr line
PEAK = ("import resource, sys\nfrom dpcdsl.cli import main\nsys.argv = ['dpcc', *sys.argv[1:]]\n"
        "try:\n    main()\nfinally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def dpcc_peak(*args: object) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of a dpcc command in a process of its own."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return time.perf_counter() - t, int(r.stderr.strip().splitlines()[-1])


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--supernet-steps", type=int, default=2400)
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--evaluate", type=int, default=1000)
    ap.add_argument("--search-trials", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    task = load_task(TASK)
    space = Space.from_file(SPACE)
    out: dict = {"machine": machine(), "space": "dpc_paper", "task": "examples/demo_task.toml",
                 "proxy_steps_per_candidate": task.train.steps, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        net = Path(tmp) / "net"
        # memory and the supernet's training, each in a process of its own
        one, _ = space.sample(random.Random("memory"))
        (Path(tmp) / "one.dpc").write_text(one.canonical_text())
        s_one, rss_one = dpcc_peak("proxy", Path(tmp) / "one.dpc", "--task", TASK, "--quiet",
                                   "--threads", args.threads)
        s_net, rss_net = dpcc_peak("supernet", "train", SPACE, "--task", TASK, "--run-dir", net,
                                   "--steps", args.supernet_steps, "--quiet",
                                   "--threads", args.threads)
        record = json.loads((net / "supernet.json").read_text())
        out["supernet"] = {"steps": args.supernet_steps, "seconds": round(s_net, 1),
                           "shared_params": record["bank"]["params"],
                           "calibration_batches": record["calibration_batches"],
                           "final_loss": record["losses"][-1]}
        out["memory"] = {"one_candidate_peak_rss_mib": round(rss_one / 1024),
                         "supernet_peak_rss_mib": round(rss_net / 1024),
                         "ratio": round(rss_net / rss_one, 2),
                         "one_candidate_seconds_with_startup": round(s_one, 1)}
        print("supernet", out["supernet"], out["memory"], flush=True)

        # fidelity and cost on the same uniform candidates
        import torch
        torch.set_num_threads(args.threads)
        shot = open_supernet(space, task, net)
        rng = random.Random(0)
        drawn = [space.sample(rng) for _ in range(args.candidates)]
        inherited, alone, t_in, t_alone = [], [], 0.0, 0.0
        for i, (cell, decisions) in enumerate(drawn):
            t = time.perf_counter()
            inherited.append(shot.score(decisions))
            t_in += time.perf_counter() - t
            t = time.perf_counter()
            alone.append(train(cell, task).miou)
            t_alone += time.perf_counter() - t
            print(f"candidate {i}: inherited {inherited[-1]:.2f} alone {alone[-1]:.2f}",
                  flush=True)
        out["fidelity"] = {"candidates": args.candidates,
                           "spearman": round(spearman(inherited, alone), 3),
                           "inherited_miou": [round(v, 2) for v in inherited],
                           "standalone_miou": [round(v, 2) for v in alone]}
        t = time.perf_counter()
        for _ in range(args.evaluate):
            shot.score(space.sample(rng)[1])
        t_many = time.perf_counter() - t
        out["cost"] = {"supernet_s_per_candidate": round(t_in / args.candidates, 3),
                       "proxy_s_per_candidate": round(t_alone / args.candidates, 2),
                       "ratio": round(t_alone / t_in, 1),
                       f"seconds_to_score_{args.evaluate}": round(t_many, 1)}
        print("fidelity", out["fidelity"]["spearman"], "cost", out["cost"], flush=True)

        # outcome: a one-shot search and its re-ranking, against proxy ERS in as much time
        t = time.perf_counter()
        run = Path(tmp) / "oneshot"
        search(SearchConfig(SPACE, TASK, strategy="evolution", trials=args.search_trials,
                            settings={"population": 50}, executor="local",
                            threads=args.threads, run_dir=run, progress="log",
                            evaluator=f"supernet:{net}"))
        t_search = time.perf_counter() - t
        reranked = rerank(run, top=5, steps=task.train.steps, progress="log")
        t_rerank = time.perf_counter() - t - t_search
        budget = s_net + t_search + t_rerank
        best_oneshot = max(r["rerank_miou"] for r in reranked["rows"])
        t = time.perf_counter()
        proxy_run = Path(tmp) / "proxy"
        trials, best_proxy, found = 0, float("nan"), 0
        while time.perf_counter() - t < budget:  # as many ERS trials as the time allows
            trials += 4
            study = search(SearchConfig(SPACE, TASK, strategy="ers", trials=trials,
                                        executor="auto", run_dir=proxy_run, progress="log",
                                        resume=trials > 4))
            rows = ranked(study)
            found, best_proxy = len(rows), float(score(rows[0]) or 0)
        out["outcome"] = {
            "oneshot": {"supernet_s": round(s_net, 1), "search_s": round(t_search, 1),
                        "trials": args.search_trials, "rerank_s": round(t_rerank, 1),
                        "reranked": 5, "best_standalone_miou": round(best_oneshot, 2),
                        "rerank_spearman": round(reranked["spearman"], 3)},
            "proxy_ers": {"seconds": round(time.perf_counter() - t, 1), "trials": found,
                          "best_standalone_miou": round(best_proxy, 2)}}
        print("outcome", out["outcome"], flush=True)
    write_result("bench_oneshot", out)
    return out


if __name__ == "__main__":
    main()
