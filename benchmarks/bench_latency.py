"""Measured latency of heads, through :func:`dpcdsl.latency` (each measurement in a
process of its own, pinned to its threads; median of the timed runs after warm-up).

``--part runtimes``: the example heads (ASPP, ASPP as DeepLab writes it, the DPC found
on Cityscapes) at 33x33 and 65x129 features of 2048 channels (a ResNet's or Xception's
last stage) and 320 (a MobileNet-v2's), batch 1, on 1 and 2 threads, on every runtime
(onnxruntime, PyTorch eager, torch.compile, JAX jit). Each row gives the runtimes' times
side by side, measured in one run, and their ratios to eager PyTorch.

``--part madds``: latency against multiply-adds over ``--cells`` uniform samples of the
paper's space (320 channels at 65x129, batch 1, 1 thread): the Spearman rank
correlation between the cost model's multiply-adds and the measured median, per
runtime. It says how far the paper's cost stands in for time.

Writes benchmarks/results/bench_latency.json (each part keeps the other's rows).

    python benchmarks/bench_latency.py --part runtimes|madds [--cells 100] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine, write_result  # noqa: E402

from dpcdsl.deploy import latency  # noqa: E402
from dpcdsl.lang.analysis import cost  # noqa: E402
from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.search.rerank import spearman  # noqa: E402

RUNTIMES = ("torch", "onnxruntime", "torch.compile", "jax")
HEADS = ("aspp.dpc", "aspp_deeplab.dpc", "dpc_cityscapes.dpc")
SIZES = ((33, 33), (65, 129))


def runtimes_part(runs: int, names: tuple[str, ...]) -> list[dict]:
    rows = []
    for file in HEADS:
        cell = Space.from_file(ROOT / "examples" / file).concrete()
        for channels in (2048, 320):
            for size in SIZES:
                madds = cost(cell, channels, size).madds
                for threads in (1, 2):
                    row = {"head": file, "channels": channels, "size": list(size),
                           "threads": threads, "madds": madds, "ms": {}}
                    for runtime in names:
                        row["ms"][runtime] = latency(cell, runtime, in_channels=channels,
                                                     sizes=size, threads=threads, warmup=3,
                                                     runs=runs).median_ms
                    row["vs_torch"] = {r: row["ms"][r] / row["ms"]["torch"] for r in names}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    return rows


def madds_part(cells: int, runs: int, names: tuple[str, ...]) -> dict:
    space = Space.from_file(ROOT / "examples" / "dpc_paper.dpc")
    samples = [space.sample(seed)[0] for seed in range(cells)]
    madds = [cost(c, 320, (65, 129)).madds for c in samples]
    out: dict = {"cells": cells, "channels": 320, "size": [65, 129], "madds": madds}
    for runtime in names:
        start = time.perf_counter()
        ms = [latency(c, runtime, in_channels=320, sizes=(65, 129), warmup=3,
                      runs=runs).median_ms for c in samples]
        out[runtime] = {"ms": ms, "spearman": spearman(madds, ms),
                        "wall_s": time.perf_counter() - start}
        print(runtime, "spearman", round(out[runtime]["spearman"], 3), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("runtimes", "madds"), required=True)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--runtime", action="append", choices=RUNTIMES,
                        help="a runtime to measure (default: all; once per runtime)")
    args = parser.parse_args()
    names = tuple(args.runtime or RUNTIMES)
    path = RESULTS / "bench_latency.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = machine()
    if args.part == "runtimes":
        result["runtimes"] = {"runs": args.runs, "rows": runtimes_part(args.runs, names)}
    else:
        result["madds"] = {"runs": args.runs, **madds_part(args.cells, args.runs, names)}
    print(f"wrote {write_result('bench_latency', result)}")


if __name__ == "__main__":
    main()
