"""Export of random cells: 20 uniform samples of every example space (seeds 0-19, 16
channels, inputs of 24, 32, ... channels, a 97x129 image), written as ONNX and as
StableHLO through :func:`dpcdsl.deploy.export`, each checked against its module (ONNX
at two sizes, StableHLO at another batch). Records, per space and format, how many
exported, the largest difference from the module, and the median seconds of an export
with its check. The test suite exports two cells of each space; this exports twenty.
Writes benchmarks/results/bench_export.json.

    python benchmarks/bench_export.py [--cells 20]
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

from dpcdsl.deploy import export  # noqa: E402
from dpcdsl.errors import DpcError  # noqa: E402
from dpcdsl.lang.space import as_space  # noqa: E402

SPACES = ("dpc_paper.dpc", "hierarchical.dpc", "spaces/decoders.dpc",
          "spaces/mobile_heads.dpc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for file in SPACES:
            space = as_space(ROOT / "examples" / file, None, {"channels": 16})
            for fmt in ("onnx", "stablehlo"):
                seconds, errors, failed = [], [], []
                for seed in range(args.cells):
                    cell = space.sample(seed)[0]
                    channels = {i: 24 + 8 * k for k, i in enumerate(cell.inputs)}
                    start = time.perf_counter()
                    try:
                        result = export(cell, Path(tmp) / f"c.{fmt}", fmt, in_channels=channels,
                                        image=(97, 129), seed=seed)
                    except DpcError as e:
                        failed.append({"seed": seed, "error": str(e)})
                        continue
                    seconds.append(time.perf_counter() - start)
                    errors.append(result.max_error)
                row = {"space": file, "format": fmt, "cells": args.cells,
                       "exported": len(seconds), "failed": failed,
                       "max_error": max(errors, default=None),
                       "median_s": statistics.median(seconds) if seconds else None}
                print(row, flush=True)
                rows.append(row)
    out = write_result("bench_export", {"machine": machine(), "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
