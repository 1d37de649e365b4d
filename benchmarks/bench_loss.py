"""The cheaper proxy loss: how much time it saves and how far it keeps the ranking.

Uniform samples of the paper's space (``examples/dpc_paper.dpc``), each trained twice on
the demo's synthetic task (``examples/demo_task.toml``) from the same weights and
batches: with the loss at the crop (the default, ``train.proxy_loss_stride = 1``) and
at the features' size (``proxy_loss_stride = 16``, the output stride). Reports the
Spearman rank correlation of the two mIOUs over the cells (evaluation is at full size
in both), how many of the top 5 by the default objective the cheap one also ranks in
its top 5, and the median time of a training step each way. Writes
benchmarks/results/bench_loss.json.

    python benchmarks/bench_loss.py [--cells 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.search.rerank import spearman  # noqa: E402
from dpcdsl.train.data.task import load_task  # noqa: E402
from dpcdsl.train.proxy import train  # noqa: E402

STRIDES = (1, 16)


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=24, help="sampled cells (>= 20)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    space = Space.from_file(ROOT / "examples" / "dpc_paper.dpc")
    cells, seen = [], set()
    for i in range(10 * args.cells):  # distinct cells, drawn uniformly
        cell, _ = space.sample(args.seed * 100_000 + i)
        if cell.hash not in seen:
            seen.add(cell.hash)
            cells.append(cell)
        if len(cells) == args.cells:
            break
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = load_task(ROOT / "examples" / "demo_task.toml")
        base = base.model_copy(update={"cache_dir": Path(tmp)})
        tasks = {s: base.model_copy(update={"train": base.train.model_copy(
            update={"proxy_loss_stride": s})}) for s in STRIDES}
        for n, cell in enumerate(cells):
            row: dict = {"cell": cell.hash}
            for s in STRIDES:
                r = train(cell, tasks[s])
                row[f"miou_{s}"] = round(r.miou, 3)
                row[f"step_ms_{s}"] = round(1000 * r.timings["steps"] / r.steps, 2)
            rows.append(row)
            print(n, json.dumps(row), flush=True)
    full, cheap = ([r[f"miou_{s}"] for r in rows] for s in STRIDES)

    def top(values: list[float], k: int = 5) -> set[int]:
        return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])

    step = {s: statistics.median(r[f"step_ms_{s}"] for r in rows) for s in STRIDES}
    result = {"machine": machine(), "space": "dpc_paper",
              "task": "examples/demo_task.toml (crop 256, output stride 16, 120 steps)",
              "cells": len(rows), "strides": list(STRIDES),
              "spearman": round(spearman(full, cheap), 4),
              "top5_kept": len(top(full) & top(cheap)),
              "median_step_ms": {str(s): round(v, 2) for s, v in step.items()},
              "step_speedup": round(step[1] / step[16], 3),
              "rows": rows}
    write_result("bench_loss", result)
    return result


if __name__ == "__main__":
    print(json.dumps({k: v for k, v in main().items() if k != "rows"}, indent=1))
