"""How many compilations a JAX supernet makes for many candidates, and what a candidate
costs once they are made: the paper's space at the demo task's feature size (320 input
channels, 16x16 features, batch 8), uniform candidates, eval mode.

Writes benchmarks/results/bench_oneshot_jax.json.

    python benchmarks/bench_oneshot_jax.py [--candidates 1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import ROOT, machine, write_result  # noqa: E402

import dpcdsl  # noqa: E402
from dpcdsl.lang.space import Space  # noqa: E402


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=320)
    args = ap.parse_args()
    space = Space.from_file(ROOT / "examples" / "dpc_paper.dpc")
    net = dpcdsl.compile_space(space, in_channels=args.channels, backend="jax")
    x = np.random.default_rng(0).standard_normal((8, 16, 16, args.channels)).astype(np.float32)
    rng = random.Random(0)
    compiled, seconds, distinct = [], [], set()
    start = time.perf_counter()
    for i in range(args.candidates):
        cell, decisions = space.sample(rng)
        distinct.add(cell.hash)
        t = time.perf_counter()
        np.asarray(net(x, decisions=decisions))  # waits for the result
        seconds.append(time.perf_counter() - t)
        compiled.append(net.compiled)
        if (i + 1) % 100 == 0:
            print(f"{i + 1} candidates: {compiled[-1]} compilations, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    last = seconds[-100:]
    out = {"machine": machine(), "space": "dpc_paper", "in_channels": args.channels,
           "features": [8, 16, 16], "candidates": args.candidates,
           "distinct_candidates": len(distinct),
           "compilations": compiled[-1],
           "compilations_after": {str(n): compiled[n - 1] for n in (1, 10, 100, 300, 500)
                                  if n <= args.candidates},
           "seconds": round(time.perf_counter() - start, 1),
           "median_s_per_candidate_last_100": round(float(np.median(last)), 4)}
    print(out, flush=True)
    write_result("bench_oneshot_jax", out)
    return out


if __name__ == "__main__":
    main()
