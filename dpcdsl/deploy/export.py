"""Exporting a head, or a trained run's whole model, to a deployment format.

A format is written by the installed backend that declares it (``export_formats``:
ONNX from PyTorch, StableHLO from JAX). Every export is checked by default: the file
is loaded back, run on random inputs at two shapes, and compared with the module it
came from, so a file that computes something else is an error, not a silent result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpcdsl.errors import DpcError, ExportFailure
from dpcdsl.lang import ir
from dpcdsl.lang.checker._sizes import ImageSize, for_cell

Size = tuple[int, int]
#: the image a head is exported for when no size is given (each input's follows)
DEFAULT_IMAGE: Size = (512, 512)
#: the largest difference a checked export may show from its module, relative to the
#: module's largest output where that is above 1
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the file, its format and backend, what it holds, its
    inputs (name, NCHW shape traced, which axes stay dynamic) and the checks run on it
    (the input shapes and the largest absolute difference from the module)."""

    path: Path
    format: str
    backend: str
    what: str
    inputs: dict[str, tuple[int, ...]]
    dynamic: tuple[str, ...]
    checks: list[tuple[dict[str, tuple[int, ...]], float]] = field(default_factory=list)

    @property
    def max_error(self) -> float | None:
        return max((e for _, e in self.checks), default=None)

    def summary(self) -> str:
        shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in self.inputs.items())
        line = (f"wrote {self.path} ({self.format}, {self.backend} backend): {self.what}; "
                f"inputs {shapes}; dynamic: {', '.join(self.dynamic) or 'none'}")
        if self.checks:
            line += (f"; checked at {len(self.checks)} shapes against the module: largest "
                     f"difference {self.max_error:.1e}")
        return line


def formats() -> dict[str, str]:
    """Each export format an installed backend writes, with that backend's name (read
    from the backend's package, without importing its framework)."""
    from dpcdsl.backends import declared

    return declared("export_formats")


def writer_of(format: str) -> str:
    """The installed backend that writes ``format``, or an error naming the formats."""
    from dpcdsl.backends import provider

    return provider("export_formats", format, "export format", "formats")


def input_shapes(cell: ir.Cell, in_channels: Mapping[str, int], batch: int,
                 image: Size | None = None,
                 sizes: Size | Mapping[str, Size] | None = None,
                 output_stride: int = 16) -> dict[str, tuple[int, int, int, int]]:
    """The NCHW shape of each input of ``cell``: from ``sizes`` (one for all, or one
    per input), or from the image's size and each input's declared stride."""
    if sizes is not None and image is not None:
        raise DpcError.at(None, "give the image's size or the inputs' sizes, not both",
                          code="DPC605")
    if sizes is None:
        found = for_cell(ImageSize(image or DEFAULT_IMAGE, output_stride), cell)
        if found is None:
            raise DpcError.at(cell.span, f"the sizes of the inputs of cell '{cell.name}' do "
                              "not follow from the image's: not every input declares its "
                              "stride (input @ 16)", hint="give each input's size",
                              code="DPC605")
        per = found if isinstance(found, dict) else dict.fromkeys(cell.inputs, found)
    elif isinstance(sizes, tuple):
        per = dict.fromkeys(cell.inputs, sizes)
    else:
        missing = [i for i in cell.inputs if i not in sizes]
        if missing:
            raise DpcError.at(cell.span, f"no size for input{'s' * (len(missing) > 1)} "
                              f"{', '.join(missing)} of cell '{cell.name}'", code="DPC605")
        per = {i: (int(sizes[i][0]), int(sizes[i][1])) for i in cell.inputs}
    return {i: (batch, in_channels[i], *per[i]) for i in cell.inputs}


@dataclass(frozen=True)
class Head:
    """A concrete cell at the backbone's output stride, the channels of its inputs, and
    how its inputs' sizes were given: ``image`` (each input's follows from its stride)
    or ``sizes``."""

    cell: ir.Cell
    channels: dict[str, int]
    image: Size | None
    sizes: Size | Mapping[str, Size] | None
    output_stride: int

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Each input's NCHW shape for a batch of ``batch``."""
        return dict(input_shapes(self.cell, self.channels, batch, self.image, self.sizes,
                                 self.output_stride))

    def other_shapes(self, batch: int, sizes: Size | Mapping[str, Size] | None = None
                     ) -> dict[str, tuple[int, ...]]:
        """Shapes to check a second time at: ``sizes``, or those of an image larger by
        the largest input stride down and three times it across (ratios between inputs
        hold, and pooling bins stop dividing), or twice the sizes given."""
        if sizes is not None:
            return dict(input_shapes(self.cell, self.channels, batch, None, sizes))
        if self.sizes is None:
            h, w = self.image or DEFAULT_IMAGE
            step = max([s for s in self.cell.strides if s is not None] or [self.output_stride])
            return dict(input_shapes(self.cell, self.channels, batch, (h + step, w + 3 * step),
                                     None, self.output_stride))
        return {n: (batch, s[1], 2 * s[2], 2 * s[3]) for n, s in self.shapes(batch).items()}


def head(source: Any, *, cell: str | None = None,
         in_channels: int | Mapping[str, int] | None = None, image: Size | None = None,
         sizes: Size | Mapping[str, Size] | None = None, output_stride: int = 16,
         params: Mapping[str, Any] | None = None) -> Head:
    """The :class:`Head` of a path, ``.dpc`` text, program or cell, as
    :func:`dpcdsl.compile` takes it; its inputs at the sizes that follow from
    ``image`` (default 512x512) or at ``sizes`` (one for all, or one per input)."""
    from dpcdsl.backends import _channels, concrete_cell

    concrete = concrete_cell(source, cell, output_stride, params)
    channels = _channels(concrete, in_channels)
    per_input = dict(channels) if isinstance(channels, Mapping) else \
        dict.fromkeys(concrete.inputs, int(channels))
    found = Head(concrete, per_input, image, sizes, output_stride)
    found.shapes(1)  # sizes that do not fit the inputs are an error here
    return found


def export(source: Any, path: str | Path | None = None, format: str = "onnx", *,
           seed: int = 0, weights: str | Path | None = None, check: bool = True,
           check_sizes: Size | Mapping[str, Size] | None = None, **inputs: Any) -> Exported:
    """Export a concrete cell as ``format`` to ``path`` (default: the cell's name with
    the format as suffix). ``inputs`` say what it runs on, as :func:`head` takes them:
    ``in_channels`` (required), ``image`` or ``sizes``, and ``cell``,
    ``output_stride`` and ``params``. Its weights are initialised from ``seed``, or
    read from a safetensors file of canonical weights (``weights``). It is traced with
    a batch of 2; ``check`` runs the file against the module at that shape and at
    another, one more in the batch and, where the format leaves them dynamic, at
    ``check_sizes`` (default: :meth:`Head.other_shapes`).

    >>> dpcdsl.export("examples/aspp.dpc", "aspp.onnx", in_channels=2048)
    """
    from dpcdsl.backends import get

    backend = get(writer_of(format))
    found = head(source, **inputs)
    module = backend.build(found.cell, found.channels, seed=seed)
    if weights is not None:
        backend.load_weights(module, weights)
    out = Path(path) if path is not None else Path(f"{found.cell.name}.{format}")
    shapes = found.shapes(2)
    result = _write(backend, module, shapes, out, format, f"cell '{found.cell.name}'",
                    found.cell)
    if check:
        _check(backend, module, result, found.other_shapes(3, check_sizes), found.cell)
    return result


def export_run(run_dir: str | Path, path: str | Path | None = None, format: str = "onnx",
               *, image: Size | None = None, check: bool = True) -> Exported:
    """Export the whole model of a run folder (backbone, head, classifier, with their
    trained weights): a ``dpcc train`` run, or a search whose best cells were re-ranked
    end to end (``dpcc rerank --end-to-end``), whose best re-ranked model is taken.
    Its input is the image, NCHW with 3 channels, at ``image`` (default 512x512)."""
    from dpcdsl.backends import resolve

    run = _trained_run(Path(run_dir))
    backend = resolve(writer_of(format), "export")
    loader = getattr(backend, "load_run", None)
    if loader is None:
        raise DpcError.at(None, f"the {backend.name} backend, which writes {format}, trains "
                          "no full models, so it cannot load the run in " + str(run),
                          hint="export the run with a format of its own backend (onnx), or "
                               "export its cell: dpcc export CELL.dpc", code="DPC907")
    model, task, record = loader(run)
    h, w = image or DEFAULT_IMAGE
    out = Path(path) if path is not None else run / f"model.{format}"
    what = f"the model of {run} ({task.backbone.name} backbone, step {record.get('step')})"
    result = _write(backend, model, {"image": (2, 3, h, w)}, out, format, what, None)
    if check:
        _check(backend, model, result, {"image": (3, 3, h + 32, w + 96)}, None)
    return result


def _trained_run(run: Path) -> Path:
    """``run``, or for a search re-ranked end to end its best re-ranked run folder."""
    if not run.is_dir():
        raise DpcError.at(None, f"no run folder {run}", code="DPC802")
    rerank = run / "rerank.json"
    if rerank.is_file():
        try:
            result = json.loads(rerank.read_text())
            rows = result["rows"] if result.get("end_to_end") else []
            best = max(rows, key=lambda r: r["rerank_miou"]) if rows else None
        except (ValueError, KeyError, TypeError) as e:
            raise DpcError.at(None, f"{rerank} is damaged: {e}", code="DPC802") from None
        if best is not None:
            return run / "rerank" / f"trial-{best['trial']}"
    if (run / "study.db").exists() or rerank.is_file():
        raise DpcError.at(None, f"{run} is a search, and none of its cells was trained as "
                          "a whole model", hint=f"train its best cells end to end: dpcc "
                          f"rerank {run} --end-to-end, then export again; or export a cell "
                          f"of {run}/best", code="DPC802")
    return run


def _inputs(shapes: Mapping[str, tuple[int, ...]]) -> list[Any]:
    """Random NCHW inputs of ``shapes`` (numpy arrays), the same for the same shapes."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes.values()]


def _write(backend: Any, module: Any, shapes: dict[str, tuple[int, ...]], out: Path,
           format: str, what: str, cell: ir.Cell | None) -> Exported:
    """``module`` traced at ``shapes`` and written to ``out`` (whole, or not at all)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        backend.export(module, _inputs(shapes), partial, format, list(shapes))
    except ExportFailure as e:
        partial.unlink(missing_ok=True)
        raise DpcError.at(cell.span if cell else None, f"cannot export {_node(e, cell)} to "
                          f"{format}: {e.reason}", code="DPC907",
                          hint="an op whose layer branches on tensor values, or calls "
                               "outside its framework, cannot be traced; export another "
                               "cell, or give the op a layer that traces") from None
    partial.replace(out)
    return Exported(out, format, backend.name, what, dict(shapes),
                    tuple(backend.export_formats[format]))


def _check(backend: Any, module: Any, result: Exported,
           other: Mapping[str, tuple[int, ...]], cell: ir.Cell | None) -> None:
    """Run the written file against ``module`` at the traced shapes and at ``other``
    (its axes the format fixes kept as traced), recording each largest difference; a
    difference beyond :data:`TOLERANCE` is an error. A format that fixes height and
    width is checked at the other batch alone: it was traced with a symbolic batch,
    so one other batch shows that it holds."""
    axes = ("batch", "channels", "height", "width")
    second = {n: tuple(b if ax in result.dynamic else a
                       for ax, a, b in zip(axes, result.inputs[n], s))
              for n, s in other.items()}
    import numpy as np

    fixed = "height" not in result.dynamic and "width" not in result.dynamic
    run = backend.load_exported(result.path, result.format)
    for shapes in ((second,) if fixed else (result.inputs, second)):
        xs = _inputs(shapes)
        want = np.asarray(backend.forward(module, xs))
        got = run(xs)
        error = float(np.max(np.abs(got - want))) if got.shape == want.shape else math.inf
        result.checks.append((dict(shapes), error))
        if not error <= TOLERANCE * max(1.0, float(np.max(np.abs(want)))):
            raise DpcError.at(cell.span if cell else None, f"the exported {result.format} "
                              f"file {result.path} differs from its module at input shapes "
                              f"{_shapes(shapes)}: largest difference {error:.3g} (output "
                              f"{got.shape}, module {want.shape})", code="DPC907",
                              hint="this is a bug of the exporter or of a layer: please "
                                   "report it with the cell")


def _shapes(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())


def _node(error: ExportFailure, cell: ir.Cell | None) -> str:
    if error.node is None:
        return "the module"
    ops = {n.name: n.op for n in cell.nodes} if cell else {}
    op = ops.get(error.node)
    return f"node '{error.node}'" + (f" (op {op})" if op else "")


__all__ = ["DEFAULT_IMAGE", "Exported", "Head", "export", "head", "export_run", "formats",
           "input_shapes", "writer_of"]
