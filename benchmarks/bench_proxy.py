"""The proxy task's speed and memory, in one run:

- a training step on cached features against an end-to-end step (backbone + cell +
  classifier), same backbone, cell, batch and crop;
- the paper's proxy setting (MobileNet-v2 features, cached) against its real setting
  (Xception-71 end to end), per step, with timm backbones without pretrained weights;
  reported as not measured where timm cannot be imported;
- peak memory (RSS) while the feature cache grows 10x: it must stay flat.

Writes benchmarks/results/bench_proxy.json.

    python benchmarks/bench_proxy.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dpcdsl_torch  # noqa: E402
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.space import Space  # noqa: E402

BATCH, CROP, REPS = 8, 256, 7


def timed(fn, reps: int = REPS) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_times(backbone: torch.nn.Module, cell, classes: int = 5) -> dict[str, float]:
    """(cached, end-to-end) step seconds for one backbone and cell, interleaved."""
    channels = backbone.channels[-1]
    head = dpcdsl_torch.ProxyHead(dpcdsl_torch.build(cell, channels), 256, classes)
    images = torch.randn(BATCH, 3, CROP, CROP)
    labels = torch.randint(0, classes, (BATCH, CROP, CROP))
    with torch.no_grad():
        cached = backbone.eval()(images)[-1].half()
    params = list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    full_opt = torch.optim.SGD(params + list(backbone.parameters()), lr=0.01, momentum=0.9)

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.interpolate(logits, size=(CROP, CROP), mode="bilinear"),
                               labels)

    def on_cache() -> None:
        opt.zero_grad()
        loss(head(cached.float())).backward()
        opt.step()

    def end_to_end() -> None:
        backbone.train()
        full_opt.zero_grad()
        loss(head(backbone(images)[-1])).backward()
        full_opt.step()

    a, b = [], []
    on_cache()
    end_to_end()
    for i in range(REPS):
        for fn, out in ((on_cache, a), (end_to_end, b)) if i % 2 else \
                ((end_to_end, b), (on_cache, a)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return {"cached_ms": statistics.median(a) * 1e3, "end_to_end_ms": statistics.median(b) * 1e3}


RSS = textwrap.dedent("""
    import os, sys, threading, time
    from dpcdsl.data.cache import build_cache
    from dpcdsl.data.task import task_from_text
    from dpcdsl_torch import feature_extractor
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page
    task = task_from_text(f'cache_dir = "{sys.argv[1]}"\\n[dataset]\\ntrain_size = '
                          f'{sys.argv[2]}\\nval_size = 8\\n')
    extract = feature_extractor(task)
    extract(__import__("numpy").zeros((1, 3, 256, 256), "float32"))  # warm up
    base, peak, done = rss(), [0], [False]
    def watch():
        while not done[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)
    t = threading.Thread(target=watch)
    t.start()
    build_cache(task, extract, progress=False)
    done[0] = True
    t.join()
    print(base, peak[0])
""")


def cache_rss(n: int) -> tuple[int, int]:
    """(RSS before the build, peak RSS during it) in KiB, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", RSS, tmp, str(n)], capture_output=True,
                             text=True, check=True)
        base, peak = out.stdout.split()
        return int(base), int(peak)


def main() -> dict:
    cell = Space.from_file(ROOT / "examples" / "dpc_cityscapes.dpc").concrete()
    tiny = step_times(dpcdsl_torch.TinyBackbone(16), cell)
    rows: dict = {"tiny_backbone": {**{k: round(v, 1) for k, v in tiny.items()},
                                    "end_to_end_over_cached":
                                        round(tiny["end_to_end_ms"] / tiny["cached_ms"], 2)}}
    try:
        mobilenet = dpcdsl_torch.TimmBackbone("mobilenetv2_100", 16, pretrained=False)
        xception = dpcdsl_torch.TimmBackbone("xception71", 16, pretrained=False)
        proxy = step_times(mobilenet, cell)["cached_ms"]
        real = step_times(xception, cell)["end_to_end_ms"]
        rows["paper_setting"] = {"mobilenet_v2_cached_ms": round(proxy, 1),
                                 "xception71_end_to_end_ms": round(real, 1),
                                 "real_over_proxy": round(real / proxy, 1)}
    except Exception as e:  # timm missing or not importable beside this torch
        rows["paper_setting"] = {"not_measured": str(e).splitlines()[0]}
    (b1, p1), (b2, p2) = cache_rss(32), cache_rss(320)
    rows["cache_build_rss_kib"] = {
        "32_scenes": {"before": b1, "peak": p1, "added": p1 - b1},
        "320_scenes": {"before": b2, "peak": p2, "added": p2 - b2},
        "peak_growth": round(p2 / p1, 3)}
    result = {"machine": machine(torch=torch.__version__, threads=torch.get_num_threads()),
              "batch": BATCH, "crop": CROP, "cell": "dpc_cityscapes", "results": rows,
              "target": "peak RSS flat (growth ~1.0) while the cache grows 10x"}
    write_result("bench_proxy", result)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    print(json.dumps(main(), indent=1))
