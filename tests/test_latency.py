"""Measured latency: each runtime times a real forward pass in a process of its own,
pinned to the threads asked for; bad input is refused before anything runs; and the
command line exports and measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpcdsl.deploy import latency, runtimes
from dpcdsl.deploy.latency import _environment
from dpcdsl.errors import DpcError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = "cell small(x, channels = 8) { return conv(x, kernel = 1) }"
LARGE = "cell large(x, channels = 256) {\n  a = conv(x, kernel = 3)\n  b = conv(a, kernel = 3)\n" \
        "  return conv(concat(a, b), kernel = 3)\n}"


def dpcc(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def test_the_installed_backends_time_four_runtimes() -> None:
    assert runtimes() == {"onnxruntime": "torch", "torch": "torch",
                          "torch.compile": "torch", "jax": "jax"}


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch", "torch.compile", "jax"])
def test_every_runtime_times_a_forward_pass(runtime: str) -> None:
    result = latency(SMALL, runtime, in_channels=16, sizes=(9, 11), batch=2, threads=1,
                     warmup=2, runs=5)
    assert result.runtime == runtime and result.runs == 5 and result.threads == 1
    assert result.shapes == {"x": (2, 16, 9, 11)}
    assert 0 < result.min_ms <= result.p25_ms <= result.median_ms <= result.p75_ms
    if runtime == "torch":  # it times the head asked for: 30,000 times the multiply-adds
        large = latency(LARGE, runtime, in_channels=256, sizes=(9, 11), batch=2, runs=5)
        assert large.median_ms > 5 * result.median_ms


def test_the_measuring_process_gets_the_threads_asked_for() -> None:
    env = _environment(1)
    assert env["OMP_NUM_THREADS"] == "1" and "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert _environment(2)["MKL_NUM_THREADS"] == "2"
    code = ("import os, sys; from dpcdsl.deploy.latency import _pin; _pin(1); "
            "print(len(os.sched_getaffinity(0)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "1"


@pytest.mark.parametrize("kwargs, message", [
    ({"runtime": "onnxrt"}, "unknown runtime 'onnxrt'. Did you mean 'onnxruntime'?"),
    ({"threads": 0}, "threads must be at least 1, got 0"),
    ({"runs": 0}, "runs must be at least 1, got 0"),
])
def test_bad_settings_are_refused_before_anything_runs(kwargs: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(DpcError, match=message.replace("?", r"\?").replace(".", r"\.")):
        latency(SMALL, **{"in_channels": 8, **kwargs})  # type: ignore[arg-type]


@pytest.mark.slow
def test_dpcc_export_and_latency(tmp_path: Path) -> None:
    r = dpcc("export", "lraspp", "--in-channels", "low=16", "--in-channels", "high=24",
             "--image", "64x64", "-o", tmp_path / "lraspp.onnx")
    assert r.returncode == 0, r.stderr
    assert "lraspp.onnx (onnx, torch backend): cell 'lraspp'; inputs low 2x16x8x8, " \
           "high 2x24x4x4; dynamic: batch, height, width; checked at 2 shapes" in r.stderr
    r = dpcc("export", "lraspp", "--in-channels", "16", "-f", "tflite", cwd=tmp_path)
    assert r.returncode == 1 and "unknown export format 'tflite'" in r.stderr
    assert "formats installed: onnx, stablehlo" in r.stderr and "Traceback" not in r.stderr
    r = dpcc("export", "lraspp", cwd=tmp_path)
    assert r.returncode == 2 and "--in-channels is needed" in r.stderr

    r = dpcc("latency", "aspp", "--in-channels", "16", "--size", "9x9", "-r", "torch",
             "--runs", "3", "--warmup", "1", "--param", "channels=8", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["runtime"] for row in rows] == ["torch"]
    assert all(row["runs"] == 3 and row["shapes"] == {"x": [1, 16, 9, 9]} for row in rows)
    r = dpcc("latency", "aspp", "--in-channels", "16", "-r", "torch", "-r", "tvm")
    assert r.returncode == 1 and "unknown runtime 'tvm'" in r.stderr and r.stdout == ""


def test_a_runtime_that_is_not_installed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(DpcError, match="the runtime 'onnxruntime' is not installed") as e:
        latency(SMALL, "onnxruntime", in_channels=8)
    assert e.value.diagnostics[0].code == "DPC902"
    assert "pip install 'dpcdsl[onnx]'" in str(e.value)
