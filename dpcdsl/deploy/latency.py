"""Measured latency: a head's forward time on a runtime (onnxruntime, PyTorch eager,
torch.compile, JAX jit), as a cost beside the analytic multiply-adds.

Each measurement runs in a process of its own (``python -m dpcdsl.deploy.latency``),
started with the thread settings of the frameworks in its environment and pinned to
that many CPUs, so a measurement sees the threads it asks for and nothing the caller
loaded. It builds the head, runs the warm-up passes (the first compiles, where the
runtime compiles), then times each of the runs; the result is their median and spread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from dpcdsl.errors import Diagnostic, DpcError

Size = tuple[int, int]
#: the longest a measurement may take, in seconds, before it is stopped
TIMEOUT = 900.0


@dataclass(frozen=True)
class Latency:
    """A forward pass's measured time on ``runtime``: the median of ``runs`` timed
    passes and their spread (quartiles and fastest), in milliseconds, after ``warmup``
    untimed ones, on ``threads`` CPU threads, for inputs of ``shapes`` (NCHW)."""

    runtime: str
    backend: str
    median_ms: float
    p25_ms: float
    p75_ms: float
    min_ms: float
    runs: int
    warmup: int
    threads: int
    shapes: dict[str, tuple[int, ...]]

    def summary(self) -> str:
        shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in self.shapes.items())
        return (f"{self.runtime}: {self.median_ms:.3f} ms median of {self.runs} runs "
                f"(quartiles {self.p25_ms:.3f} to {self.p75_ms:.3f}, fastest "
                f"{self.min_ms:.3f}) on {self.threads} thread{'s' * (self.threads != 1)}; "
                f"inputs {shapes}")

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "shapes": {n: list(s) for n, s in self.shapes.items()}}


def runtimes() -> dict[str, str]:
    """Each runtime an installed backend times, with that backend's name (read from
    the backend's package, without importing its framework)."""
    from dpcdsl.backends import declared

    return declared("latency_runtimes")


def backend_of(runtime: str) -> str:
    """The installed backend that times ``runtime``, or an error naming the runtimes."""
    from dpcdsl.backends import provider

    return provider("latency_runtimes", runtime, "runtime", "runtimes")


def check_runtime(runtime: str) -> str:
    """``runtime``'s backend, or an error before any work where the runtime or its
    package is not installed (onnxruntime is an extra)."""
    backend = backend_of(runtime)
    if runtime == "onnxruntime":
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            raise DpcError.at(None, "the runtime 'onnxruntime' is not installed",
                              hint="pip install 'dpcdsl[onnx]'", code="DPC902")
    return backend


def latency(source: Any, runtime: str = "onnxruntime", *, batch: int = 1, threads: int = 1,
            warmup: int = 5, runs: int = 20, seed: int = 0, **inputs: Any) -> Latency:
    """The forward time of a concrete cell on ``runtime``, measured in a process of
    its own on ``threads`` threads: ``warmup`` untimed passes, then ``runs`` timed ones,
    on a batch of ``batch``. ``inputs`` say what it runs on, as
    :func:`dpcdsl.deploy.export.head` takes them: ``in_channels`` (required),
    ``image`` (default 512x512) or ``sizes``, and ``cell``, ``output_stride`` and
    ``params``.

    >>> dpcdsl.latency("examples/aspp.dpc", "torch", in_channels=2048, sizes=(33, 33))
    """
    from dpcdsl.deploy.export import head
    from dpcdsl.lang.printer import print_cell

    for what, value, low in (("threads", threads, 1), ("runs", runs, 1),
                             ("warmup", warmup, 0), ("batch", batch, 1)):
        if value < low:
            raise DpcError.at(None, f"{what} must be at least {low}, got {value}",
                              code="DPC801")
    backend = check_runtime(runtime)
    found = head(source, **inputs)
    shapes = found.shapes(batch)
    job = {"cell": print_cell(found.cell), "in_channels": found.channels, "backend": backend,
           "shapes": shapes, "runtime": runtime, "warmup": warmup, "runs": runs,
           "threads": threads, "seed": seed}
    seconds = _measure(job, threads)
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else seconds * 3
    return Latency(runtime, backend, statistics.median(seconds) * 1e3, q[0] * 1e3, q[2] * 1e3,
                   min(seconds) * 1e3, runs, warmup, threads,
                   {n: tuple(s) for n, s in shapes.items()})


def _environment(threads: int) -> dict[str, str]:
    """The environment of a measuring process: every framework's CPU threads set."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism"))]
    if threads == 1:
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS") or "cpu"
    return env


def _measure(job: dict[str, Any], threads: int) -> list[float]:
    try:
        done = subprocess.run([sys.executable, "-m", "dpcdsl.deploy.latency"],
                              input=json.dumps(job), capture_output=True, text=True,
                              env=_environment(threads), timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DpcError.at(None, f"the latency measurement on {job['runtime']} took over "
                          f"{TIMEOUT:.0f} s and was stopped", hint="time fewer runs",
                          code="DPC907") from None
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise DpcError.at(None, f"the latency measurement on {job['runtime']} failed (exit "
                          f"{done.returncode}): {tail}", code="DPC907")
    if "error" in result:
        raise DpcError([Diagnostic.model_validate(d) for d in result["error"]])
    return [float(s) for s in result["seconds"]]


def _pin(threads: int) -> None:
    """This process on ``threads`` of the CPUs it may use, where the OS allows it."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > threads:
            os.sched_setaffinity(0, cpus[:threads])


def _child() -> None:
    """A measuring process: a job as JSON on stdin, the seconds of each run (or the
    error) as one JSON line on stdout."""
    job = json.loads(sys.stdin.read())
    _pin(int(job["threads"]))
    try:
        import numpy as np

        from dpcdsl.backends import get
        from dpcdsl.lang.space import Space

        backend = get(job["backend"])
        backend.set_threads(int(job["threads"]))
        cell = Space.from_text(job["cell"]).concrete()
        module = backend.build(cell, job["in_channels"], seed=int(job["seed"]))
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(s, dtype=np.float32) for s in job["shapes"].values()]
        seconds = backend.time_forward(module, inputs, job["runtime"], int(job["warmup"]),
                                       int(job["runs"]))
        print(json.dumps({"seconds": seconds}))
    except DpcError as e:
        print(json.dumps({"error": [d.model_dump() for d in e.diagnostics]}))


if __name__ == "__main__":
    _child()


__all__ = ["Latency", "backend_of", "check_runtime", "latency", "runtimes"]
