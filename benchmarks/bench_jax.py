"""Jitted JAX forward+backward of the compiled ASPP and top-1 DPC beside the PyTorch
backend's eager numbers, same cells, same weights, same shapes, interleaved in one run.
Writes benchmarks/results/bench_jax_<device>.json.

    python benchmarks/bench_jax.py [--reps 11]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import torch
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dpcdsl_jax  # noqa: E402
import dpcdsl_torch  # noqa: E402
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.space import Space  # noqa: E402

CASES = {"aspp": "aspp.dpc", "dpc_top1": "dpc_cityscapes.dpc"}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=11)
    args = ap.parse_args()
    device = jax.devices()[0].platform
    tdev = "cuda" if device == "gpu" and torch.cuda.is_available() else "cpu"
    batch, size, cin = (2, 33, 2048) if device == "cpu" else (8, 65, 2048)
    rows = {}
    for name, file in CASES.items():
        cell = Space.from_file(ROOT / "examples" / file).concrete()
        tm = dpcdsl_torch.build(cell, cin).to(tdev).train()
        jm = dpcdsl_jax.build(cell, cin)
        dpcdsl_jax.import_weights(jm, dpcdsl_torch.export_weights(tm))
        jm.train()

        @nnx.jit
        def fwd_bwd(model: nnx.Module, x: jax.Array) -> nnx.State:
            return nnx.grad(lambda m: jnp.mean(jnp.square(m(x))))(model)

        xt = torch.randn(batch, cin, size, size, device=tdev)
        xj = jnp.asarray(xt.cpu().numpy().transpose(0, 2, 3, 1))

        def run_jax() -> float:
            t = time.perf_counter()
            jax.block_until_ready(fwd_bwd(jm, xj))
            return time.perf_counter() - t

        def run_torch() -> float:
            if tdev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            tm(xt).square().mean().backward()
            if tdev == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t

        t0 = time.perf_counter()
        run_jax()
        compile_s = time.perf_counter() - t0
        run_torch()
        tj, tt = [], []
        for i in range(args.reps):
            order = (run_jax, run_torch) if i % 2 else (run_torch, run_jax)
            for fn in order:
                (tj if fn is run_jax else tt).append(fn())
        rows[name] = {"jax_jit_ms": round(statistics.median(tj) * 1e3, 2),
                      "torch_eager_ms": round(statistics.median(tt) * 1e3, 2),
                      "jax_over_torch": round(statistics.median(tj) / statistics.median(tt), 3),
                      "jax_first_call_s": round(compile_s, 2)}
        print(name, rows[name], flush=True)
    result = {
        "machine": machine(device=device, jax=jax.__version__, torch=torch.__version__),
        "shape": {"batch": batch, "in_channels": cin, "size": [size, size]},
        "reps": args.reps,
        "results": rows,
    }
    write_result(f"bench_jax_{device}", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
