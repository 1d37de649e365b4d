"""The proxy task's speed and memory, in one run:

- a training step on cached features against an end-to-end step (backbone + cell +
  classifier), same backbone, cell, batch and crop, with the tiny backbone;
- the paper's cost ratio: one proxy step (the top-1 DPC head on cached MobileNet-v2
  features, batch 8, 769x769 crop, output stride 16) against one end-to-end step
  (Xception-71 + the same head at 2048 channels + classifier, same crop; batch 1,
  scaled by 8 per image), interleaved, plus the one-off cost of caching the features
  of Cityscapes' 2975 training images; the ratio per step and per finished candidate at
  the iteration counts of ``examples/tasks/cityscapes{,_end_to_end}.toml`` (random
  weights: speed does not depend on them);
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

from dpcdsl.lang.space import Space  # noqa: E402
from dpcdsl.train.data.task import load_task  # noqa: E402

BATCH, CROP, REPS = 8, 256, 7
#: the paper's Cityscapes setting
PAPER_CROP, PAPER_BATCH, CITYSCAPES_TRAIN, CANDIDATES = 769, 8, 2975, 28_000


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


def paper_ratio(cell, reps: int = 3) -> dict:
    """The paper's proxy step against its end-to-end step, interleaved, and the cache."""
    classes = 19
    mobilenet = dpcdsl_torch.TimmBackbone("mobilenetv2_100", 16, pretrained=False).eval()
    xception = dpcdsl_torch.TimmBackbone("xception71", 16, pretrained=False)
    proxy_task = load_task(ROOT / "examples/tasks/cityscapes.toml")
    e2e_task = load_task(ROOT / "examples/tasks/cityscapes_end_to_end.toml")
    images = torch.randn(PAPER_BATCH, 3, PAPER_CROP, PAPER_CROP)
    labels = torch.randint(0, classes, (PAPER_BATCH, PAPER_CROP, PAPER_CROP))
    with torch.no_grad():
        cached = mobilenet(images)[-1].half()  # what the cache holds: (8, 320, 49, 49)

    head = dpcdsl_torch.ProxyHead(dpcdsl_torch.build(cell, mobilenet.channels[-1]), 256,
                                  classes)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

    def proxy_step() -> None:  # as dpcdsl_torch.proxy_steps does it
        head.train()
        logits = F.interpolate(head(cached.float()), size=labels.shape[-2:], mode="bilinear",
                               align_corners=True)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model = dpcdsl_torch.SegmentationModel(xception, cell, classes).train()
    full_opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

    def e2e_step() -> None:  # batch 1 of 8, as the end-to-end trainer does it
        loss = F.cross_entropy(model(images[:1]), labels[:1])
        full_opt.zero_grad(set_to_none=True)
        loss.backward()
        full_opt.step()

    @torch.no_grad()
    def cache_one() -> None:  # the backbone over one image, for the cache
        mobilenet(images[:1])

    logits = torch.randn(PAPER_BATCH, classes, *cached.shape[-2:], requires_grad=True)

    def loss_only() -> None:  # the part of a proxy step at the crop's resolution
        F.cross_entropy(F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                      align_corners=True), labels).backward()

    times: dict[str, list[float]] = {"proxy": [], "e2e": [], "cache": [], "loss": []}
    for fn in (proxy_step, e2e_step, cache_one, loss_only):  # warm up
        fn()
    for i in range(reps):
        order = [("proxy", proxy_step), ("e2e", e2e_step), ("cache", cache_one),
                 ("loss", loss_only)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    proxy_s = statistics.median(times["proxy"])
    e2e_s = statistics.median(times["e2e"]) * PAPER_BATCH  # per image, scaled to batch 8
    cache_s = statistics.median(times["cache"]) * CITYSCAPES_TRAIN
    proxy_steps, e2e_steps = proxy_task.train.steps, e2e_task.train.steps
    candidate = proxy_s * proxy_steps
    return {
        "proxy_step_s": round(proxy_s, 3),
        "proxy_step_share_of_logits_resize_and_loss":
            round(statistics.median(times["loss"]) / proxy_s, 2),
        "end_to_end_step_s": round(e2e_s, 2),
        "end_to_end_batch": "1, scaled by 8 per image",
        "per_step_ratio": round(e2e_s / proxy_s, 1),
        "cache_once_s": round(cache_s, 1),
        "proxy_steps": proxy_steps,
        "end_to_end_steps": e2e_steps,
        "per_candidate_ratio": round(e2e_s * e2e_steps / (candidate + cache_s / CANDIDATES), 1),
        "per_candidate_ratio_equal_steps": round(e2e_s * proxy_steps / candidate, 1),
        "per_candidate_ratio_one_candidate_pays_the_cache":
            round(e2e_s * e2e_steps / (candidate + cache_s), 1),
    }


RSS = textwrap.dedent("""
    import os, sys, threading, time
    from dpcdsl.train.data.cache import build_cache
    from dpcdsl.train.data.task import task_from_text
    from dpcdsl_torch import feature_extractor
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page
    task = task_from_text(f'cache_dir = "{sys.argv[1]}"\\n[dataset]\\ntrain_size = '
                          f'{sys.argv[2]}\\nval_size = 8\\n')
    extract = feature_extractor(task)
    extract.run(__import__("numpy").zeros((1, 3, 256, 256), "float32"))  # warm up
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
    rows["paper_cost_ratio"] = paper_ratio(cell)
    (b1, p1), (b2, p2) = cache_rss(32), cache_rss(320)
    rows["cache_build_rss_kib"] = {
        "32_scenes": {"before": b1, "peak": p1, "added": p1 - b1},
        "320_scenes": {"before": b2, "peak": p2, "added": p2 - b2},
        "peak_growth": round(p2 / p1, 3)}
    result = {"machine": machine(torch=torch.__version__, threads=torch.get_num_threads()),
              "batch": BATCH, "crop": CROP, "cell": "dpc_cityscapes", "results": rows,
              "paper_crop": PAPER_CROP, "paper_batch": PAPER_BATCH,
              "targets": ["per-candidate cost ratio >= 100x (the paper: 'over 100x cheaper "
                          "than full training')",
                          "peak RSS flat (growth ~1.0) while the cache grows 10x"]}
    write_result("bench_proxy", result)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    print(json.dumps(main(), indent=1))
