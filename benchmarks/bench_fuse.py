"""Fused candidates (``dpcc search --fuse K``) against training them one after another.

K DPC heads drawn uniformly from the paper's space train on the same cached
MobileNet-v2 features (320 channels at 33x33: a 513 crop at output stride 16, batch
8; the synthetic scenes' 5 classes), through the real proxy loop: once each alone
(:func:`dpcdsl.train.proxy.train`), once fused (:func:`dpcdsl.train.proxy.train_fused`), from the
same weights and batches. Runs are interleaved (alone, fused, fused, alone), so the
ratio holds on a noisy machine. The benchmark also checks that each head's losses
fused equal its losses alone.

Writes benchmarks/results/bench_fuse_{device}.json (``_jax`` added for JAX).

    python benchmarks/bench_fuse.py [--device cuda] [--backend jax] [--k 8] [--steps 10]
                                    [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.train.data.task import task_from_text, task_toml  # noqa: E402
from dpcdsl.train.proxy import ensure_cache, train, train_fused  # noqa: E402

TASK = {
    "dataset": {"kind": "synthetic", "num_classes": 5, "train_size": 32, "val_size": 8,
                "image_size": 513},
    "backbone": {"name": "mobilenetv2_100", "output_stride": 16},
    "train": {"crop": 513, "batch": 8},
}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--backend", default="torch", help="torch or jax (the cache: torch)")
    ap.add_argument("--k", type=int, default=8, help="candidates fused")
    ap.add_argument("--steps", type=int, default=10, help="training steps per candidate")
    ap.add_argument("--repeats", type=int, default=3, help="runs each way (interleaved)")
    args = ap.parse_args()
    space = Space.from_file(ROOT / "examples" / "dpc_paper.dpc")
    cells = [space.sample(seed=s)[0] for s in range(args.k)]
    with tempfile.TemporaryDirectory() as tmp:
        task = task_from_text(task_toml({
            **TASK, "cache_dir": tmp, "device": args.device, "backend": args.backend,
            "train": {**TASK["train"], "steps": args.steps, "eval_every": args.steps}}))
        cache = ensure_cache(task, progress=False)
        shape = cache.inputs(cells[0], task, "train")[0].shape
        warm = task.model_copy(update={"train": task.train.model_copy(
            update={"steps": 1, "eval_every": 1})})
        train_fused(cells, warm)  # the framework's first-call costs, both ways
        for c in cells:
            train(c, warm)
        times: dict[str, list[float]] = {"alone": [], "fused": []}
        alone, fused = [], []
        for i in range(args.repeats):
            for how in ("alone", "fused") if i % 2 == 0 else ("fused", "alone"):
                t = time.perf_counter()
                if how == "alone":
                    alone = [train(c, task) for c in cells]
                else:
                    fused = train_fused(cells, task)
                times[how].append(time.perf_counter() - t)
                print(how, round(times[how][-1], 2), "s", flush=True)
    worst = max(abs(a - f) / max(abs(a), 1e-12)
                for x, y in zip(alone, fused, strict=True)
                for a, f in zip(x.losses, y.losses, strict=True))  # type: ignore[union-attr]
    alone_s, fused_s = statistics.median(times["alone"]), statistics.median(times["fused"])
    result = {
        "machine": machine(device=args.device, **_gpu(args.device)),
        "backend": args.backend,
        "what": f"{args.k} DPC heads from the paper's space, {args.steps} steps each and "
                "one evaluation, on cached MobileNet-v2 features",
        "features": [task.train.batch, *shape[1:]], "crop": 513, "classes": 5, "k": args.k,
        "steps": args.steps, "repeats": args.repeats,
        "cells": [c.hash for c in cells],
        "alone_s": [round(t, 3) for t in times["alone"]],
        "fused_s": [round(t, 3) for t in times["fused"]],
        "candidate_steps_per_s_alone": round(args.k * args.steps / alone_s, 2),
        "candidate_steps_per_s_fused": round(args.k * args.steps / fused_s, 2),
        "fused_speedup": round(alone_s / fused_s, 3),
        "max_relative_loss_difference": float(f"{worst:.3g}"),
    }
    print(result)
    suffix = "" if args.backend == "torch" else f"_{args.backend}"
    write_result(f"bench_fuse_{args.device.split(':')[0]}{suffix}", result)
    return result


def _gpu(device: str) -> dict:
    if not device.startswith("cuda"):
        return {}
    import torch

    return {"gpu": torch.cuda.get_device_name(0)}


if __name__ == "__main__":
    main()
