"""Export to ONNX, through ``torch.export`` and PyTorch's ONNX exporter (``dynamo=True``).

Every input's batch, height and width stay dynamic: the batch is one axis shared by all
inputs, and each map's height and width become symbols the exporter relates where the
cell relates them (an FPN's stride-8 map is twice its stride-16 map). The layers take
the export's path where eager mode would fix a size: an atrous conv keeps all its taps,
and adaptive pooling computes its cell bounds from the traced size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dpcdsl.compiler import codegen
from dpcdsl.errors import DpcError, ExportFailure
from dpcdsl_torch import export_formats

#: the loggers the exporter writes its progress and shape notes to
_LOGGERS = ("torch.export", "torch._export", "torch.onnx", "torch._dynamo",
            "torch.fx.experimental.symbolic_shapes", "onnxscript")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and log notes held back: a caller sees
    the result or one error."""
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR + 10)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export(module: nn.Module, inputs: Sequence[np.ndarray], path: str | Path,
           format: str = "onnx", names: Sequence[str] | None = None,
           output: str = "out") -> None:
    """Write ``module`` (in eval mode) as an ONNX model at ``path``, traced on the NCHW
    ``inputs`` (a batch of at least 2, so the batch axis is not taken for a constant),
    with dynamic batch, height and width. ``names`` name the graph's inputs."""
    if format not in export_formats:
        raise DpcError.at(None, f"the torch backend does not write {format!r}",
                          hint=f"it writes {', '.join(export_formats)}", code="DPC907")
    module.eval()
    xs = tuple(torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs)
    names = list(names) if names is not None else [f"input{i}" for i in range(len(xs))]
    batch = torch.export.Dim("batch")
    dynamic = {n: {0: batch, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
               for n in names}
    forward_names = list(_forward_parameters(module))
    with _quiet():
        try:
            program = torch.export.export(
                module, xs, dynamic_shapes=dict(zip(forward_names, dynamic.values())))
            onnx_program = torch.onnx.export(program, dynamo=True, input_names=names,
                                             output_names=[output], verbose=False)
        except Exception as e:  # noqa: BLE001  (any exporter failure is reported by node)
            node = codegen.node_at(e, getattr(module, "node_names", {}))
            raise ExportFailure(_reason(e), node) from None
    assert onnx_program is not None
    onnx_program.save(str(path), external_data=False)


def _forward_parameters(module: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p != "self"]


def load_exported(path: str | Path, format: str = "onnx") -> Callable[[list[np.ndarray]],
                                                                       np.ndarray]:
    """A written ONNX model, run in onnxruntime on NCHW float arrays: NCHW out."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DpcError.at(None, "onnxruntime is not installed, so the ONNX model cannot be "
                          "run", hint="pip install 'dpcdsl[onnx]'", code="DPC902") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(inputs: list[np.ndarray]) -> np.ndarray:
        feed = {n: np.ascontiguousarray(x, np.float32) for n, x in zip(names, inputs)}
        return np.asarray(session.run(None, feed)[0])

    return run


def _reason(error: BaseException) -> str:
    """The innermost cause's first line, without the exporter's advice."""
    e = error
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith(("Failed to", "[", "-"))),
                 lines[0] if lines else "")
    return f"{type(e).__name__}: {first[:300]}".rstrip(": ")


__all__ = ["export", "export_formats", "load_exported"]


def time_forward(module: nn.Module, inputs: Sequence[np.ndarray], runtime: str, warmup: int,
                 runs: int) -> list[float]:
    """Seconds of each of ``runs`` forward passes of ``module`` in eval mode on the NCHW
    ``inputs``, after ``warmup`` untimed ones, on ``runtime``: ``torch`` (eager, in
    inference mode), ``torch.compile`` (compiled before the warm-up) or
    ``onnxruntime`` (the module exported to ONNX first, run on the CPU with the
    threads PyTorch was given)."""
    import tempfile
    import time

    module.eval()
    if runtime == "onnxruntime":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "head.onnx"
            export(module, [np.concatenate([x, x]) if x.shape[0] < 2 else x for x in inputs],
                   path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
        feed = {i.name: np.ascontiguousarray(x, np.float32)
                for i, x in zip(session.get_inputs(), inputs)}

        def step() -> None:
            session.run(None, feed)
    else:
        xs = [torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs]
        run = torch.compile(module, dynamic=False) if runtime == "torch.compile" else module

        def step() -> None:
            with torch.inference_mode():
                run(*xs)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times
