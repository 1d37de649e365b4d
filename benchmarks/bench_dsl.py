"""Speed of the language core: parse+check of the paper space, uniform sampling, and
counting a recursive space of more than 10^100 cells. Writes
benchmarks/results/bench_dsl.json with the machine described.

    python benchmarks/bench_dsl.py
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path

from dpcdsl.check import check
from dpcdsl.program import load_text
from dpcdsl.space import Space

ROOT = Path(__file__).resolve().parent.parent
PAPER = (ROOT / "examples" / "dpc_paper.dpc").read_text()
HUGE = ("cell t(x) depth 12 { return one_of(sepconv(x, rate = {1, 2, 3}), "
        "sum(t(x), t(x))) }\n")


def best_of(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> dict:
    parse_check = best_of(lambda: check(load_text(PAPER, "dpc_paper.dpc")))
    space = Space.from_text(PAPER)
    rng = random.Random(0)
    n = 5000
    sample_s = best_of(lambda: [space.sample(rng) for _ in range(n)], repeat=3)
    count_s = best_of(lambda: Space.from_text(HUGE).count())
    huge = Space.from_text(HUGE).count()
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "parse_and_check_paper_space_ms": round(parse_check * 1e3, 3),
        "uniform_samples_per_second": round(n / sample_s),
        "count_recursive_space_ms": round(count_s * 1e3, 3),
        "recursive_space_digits": len(str(huge)),
        "targets": {"parse_and_check_paper_space_ms": "< 20",
                    "uniform_samples_per_second": ">= 20000",
                    "count_recursive_space_ms": "< 100"},
    }
    out = ROOT / "benchmarks" / "results" / "bench_dsl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
