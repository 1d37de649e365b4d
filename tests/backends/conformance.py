"""What the conformance tests share: a one-op probe cell for every op of the registry,
its inputs, and weights to load into every backend."""

from __future__ import annotations

import numpy as np

from dpcdsl.compiler.canonical import weights_of
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS

#: the probe cell's inputs: ``x``, and ``small``, a map half its size
IN_CHANNELS = {"x": 4, "small": 4}
SIZES = {"x": (6, 8), "small": (3, 4)}


#: what a variant needs beside the value it probes
NEEDS = {"gn": "groups = 2", "reference": "crop = 33", "window": "window = (3, 2), step = (2, 3)"}


def probe_cell(op: str, extra: str = "") -> ir.Cell:
    """A cell made of the op's registry example (over ``x`` and ``small``), with
    ``extra`` arguments added to its call."""
    example = OPS[op].example
    if extra:
        example = f"{example[:-1]}, {extra})"
    return Space.from_text(f"cell probe_{op}(x, small, channels = 6) {{ return {example} }}",
                           file=f"<{op}>").concrete()


#: variants the registry's words and booleans do not give: numbers that change shapes
NUMERIC = [("conv", "stride = 2"), ("sepconv", "stride = 2"),
           ("maxpool", "window = 3, step = (1, 2)"), ("maxpool", "grid = (4, 3)"),
           ("maxpool", "grid = 1"), ("maxpool", "grid = (7, 10)"), ("avgpool", "grid = 9"), ("avgpool", "window = 3, step = (1, 2)"),
           ("avgpool", "grid = (4, 3)"), ("avgpool", "window = (2, 3)"),
           ("layernorm", "eps = 0.001"),
           ("upconv", "kernel = 3, stride = 2, pad = 1, out_pad = 1"),
           ("upconv", "kernel = 2, pad = 0, stride = 3")]


def variants() -> list[tuple[str, str]]:
    """(op, extra arguments): every word and every non-default boolean of every op's
    arguments, one at a time, read from the registry; and NUMERIC."""
    out = list(NUMERIC)
    for op, spec in sorted(OPS.items()):
        for arg in spec.value_args:
            values = [w for w in arg.words if w != arg.default] if arg.kind == "word" else \
                [not arg.default] if arg.kind == "bool" else []
            for v in values:
                text = str(v).lower() if isinstance(v, bool) else v
                extra = f"{arg.name} = {text}"
                out.append((op, f"{extra}, {NEEDS[v]}" if v in NEEDS else extra))
    return out


def probe_inputs(cell: ir.Cell, batch: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, IN_CHANNELS[i], *SIZES[i])).astype(np.float32)
            for i in cell.inputs]


def probe_weights(cell: ir.Cell, seed: int = 0) -> dict[str, np.ndarray]:
    """Random canonical weights, running statistics included, so that eval-mode norms
    do real work."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, w in weights_of(cell, IN_CHANNELS).items():
        value = rng.normal(size=w.shape).astype(np.float32)
        if name.endswith("running_var"):
            value = np.abs(value) + 0.5
        out[name] = value
    return out


def expected_shape(cell: ir.Cell, batch: int = 2) -> tuple[int, ...]:
    t = infer(cell, IN_CHANNELS, SIZES)[cell.output]
    assert t.size is not None
    return (batch, t.channels, *t.size)
