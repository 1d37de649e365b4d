"""Speed of the language core: parse+check of the paper space, uniform sampling of
full cells (each drawn and dropped, and all kept in a list), and counting a recursive
space of more than 10^500 cells. Writes
benchmarks/results/bench_dsl.json with the machine described.

    python benchmarks/bench_dsl.py
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

from dpcdsl.lang.checker import check  # noqa: E402
from dpcdsl.lang.program import load_text  # noqa: E402
from dpcdsl.lang.space import Space  # noqa: E402

PAPER = (ROOT / "examples" / "dpc_paper.dpc").read_text()
# depth 10: its largest architectures (1,024 sepconvs summed) stay within
# dpcdsl.limits.MAX_NODES, which refuses depth 11 and more; 10^554 cells
HUGE = ("cell t(x) depth 10 { return one_of(sepconv(x, rate = {1, 2, 3}), "
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

    def stream() -> None:  # each sample used and dropped, as a search loop does
        for _ in range(n):
            space.sample(rng)

    sample_s = best_of(stream, repeat=5)
    # every sample kept alive in a list: the garbage collector then scans a growing
    # heap of IR objects, which costs a third more
    kept_s = best_of(lambda: [space.sample(rng) for _ in range(n)], repeat=5)
    # loading checks the text once, sampling up to 64 architectures for shapes (here of
    # up to 2,047 nodes each); counting is what a search's start and `dpcc count` add
    load_s = best_of(lambda: Space.from_text(HUGE), repeat=3)
    program = Space.from_text(HUGE).program  # checked: a new Space reuses the check
    count_s = best_of(lambda: Space(program).count())
    huge = Space(program).count()
    result = {
        "machine": machine(),
        "parse_and_check_paper_space_ms": round(parse_check * 1e3, 3),
        "uniform_samples_per_second": round(n / sample_s),
        "uniform_samples_per_second_all_kept": round(n / kept_s),
        "count_recursive_space_ms": round(count_s * 1e3, 3),
        "load_and_check_recursive_space_ms": round(load_s * 1e3, 3),
        "recursive_space_digits": len(str(huge)),
        "targets": {"parse_and_check_paper_space_ms": "< 20",
                    "uniform_samples_per_second": ">= 20000",
                    "count_recursive_space_ms": "< 100"},
    }
    write_result("bench_dsl", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
