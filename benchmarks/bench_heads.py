"""The library's heads against the modules they reproduce, at the libraries' defaults.

For each head of ``examples/heads/``: the lines of its ``.dpc`` file against the lines
of the Python that defines the library's module (segmentation_models_pytorch's
``decoder.py``; for torchvision, the head's class), not counting blank lines and
comments; its parameters and multiply-adds at the size below (the cost model's, which
the test suite holds equal to the module's count and to half its FLOPs); and the
forward+backward time of the compiled head against the library's module, in eager mode
on the CPU, interleaved in one run (alternating which goes first), as the ratio of
medians. Both modules get the same weights. Writes benchmarks/results/bench_heads.json.

The smp decoders read a resnet34's features (64, 64, 128, 256 and 512 channels at
strides 2 to 32) of a 256x256 image, PSPNet's its stride-8 features (smp's PSPNet stops
its encoder there), DeepLabV3's its stride-8 features at output stride 8; the
torchvision heads a resnet50's 2048 channels at stride 8 (FCN, DeepLabv3) and a
MobileNetV3-Large's 40 and 960 channels at strides 8 and 16 (LR-ASPP); DPT a
ViT-Base's four blocks (768 channels at stride 16) and their class tokens.

``--only`` measures the heads it names and keeps the other rows of the results file
(each row's ratio comes from its own interleaved run).

    python benchmarks/bench_heads.py [--reps 7] [--batch 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import machine, write_result  # noqa: E402

from dpcdsl import backends  # noqa: E402
from dpcdsl.compiler.rewrite import at_output_stride  # noqa: E402
from dpcdsl.lang import heads  # noqa: E402
from dpcdsl.lang.analysis import cost  # noqa: E402
from tests.heads.references import REFERENCES  # noqa: E402

#: a resnet34's features of a 256x256 image, from the image (stride 1) to stride 32
RESNET34 = [3, 64, 64, 128, 256, 512]
STRIDES = [1, 2, 4, 8, 16, 32]
IMAGE = 256
RESULTS = Path(__file__).resolve().parent / "results" / "bench_heads.json"


def levels(*strides: int) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The channels and sizes of a resnet34's levels at ``strides``, named c<stride>."""
    names = [f"c{s}" for s in strides]
    return ({n: RESNET34[STRIDES.index(s)] for n, s in zip(names, strides)},
            {n: (IMAGE // s, IMAGE // s) for n, s in zip(names, strides)})


@dataclass(frozen=True)
class Case:
    """The library's module at its defaults, the head's options that match them, and
    its inputs (channels and sizes, in the cell's order)."""

    build: Callable[[], nn.Module]
    source: Callable[[], str]
    in_channels: dict[str, int]
    sizes: dict[str, tuple[int, int]]
    options: dict[str, Any] = field(default_factory=dict)
    output_stride: int = 16


def _built(module: str, cls: str, *args: Any, **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return getattr(__import__(module, fromlist=[cls]), cls)(*args, **kwargs)
    return build


def _smp(module: str, cls: str, *args: Any, **kwargs: Any) -> Callable[[], nn.Module]:
    return _built(f"segmentation_models_pytorch.decoders.{module}.decoder", cls, *args,
                  **kwargs)


def _torchvision(module: str, cls: str, *args: Any) -> Callable[[], nn.Module]:
    return _built(f"torchvision.models.segmentation.{module}", cls, *args)


def _smp_file(module: str) -> Callable[[], str]:
    def read() -> str:
        import segmentation_models_pytorch

        root = Path(segmentation_models_pytorch.__file__).parent
        return (root / "decoders" / module / "decoder.py").read_text()
    return read


def _class_source(module: str, *classes: str) -> Callable[[], str]:
    """The source of the classes that make a torchvision head."""
    def read() -> str:
        mod = __import__(module, fromlist=list(classes))
        return "\n".join(inspect.getsource(getattr(mod, c)) for c in classes)
    return read


def _renamed(channels: dict[str, int], sizes: dict[str, tuple[int, int]],
             names: list[str]) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    old = list(channels)
    return ({n: channels[o] for n, o in zip(names, old)},
            {n: sizes[o] for n, o in zip(names, old)})


DECODER_CHANNELS = (256, 128, 64, 32, 16)


def vit_blocks(width: int = 768) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """A ViT's four blocks (f1..f4, stride 16) and their class tokens (t1..t4, 1x1)."""
    blocks = [f"f{i}" for i in range(1, 5)]
    tokens = [f"t{i}" for i in range(1, 5)]
    return ({n: width for n in blocks + tokens},
            {**{n: (IMAGE // 16, IMAGE // 16) for n in blocks}, **{n: (1, 1) for n in tokens}})


def cases() -> dict[str, Case]:
    five, four = levels(2, 4, 8, 16, 32), levels(4, 8, 16, 32)
    tv = "torchvision.models.segmentation"
    return {
        "fcn": Case(_torchvision("fcn", "FCNHead", 2048, 21),
                    _class_source(f"{tv}.fcn", "FCNHead"), {"x": 2048}, {"x": (32, 32)},
                    {"inter": 512, "classes": 21}),
        "deeplabv3": Case(_torchvision("deeplabv3", "DeepLabHead", 2048, 21),
                          _class_source(f"{tv}.deeplabv3", "DeepLabHead", "ASPPConv",
                                        "ASPPPooling", "ASPP"), {"x": 2048},
                          {"x": (32, 32)}, {"classes": 21}, output_stride=8),
        "lraspp": Case(_torchvision("lraspp", "LRASPPHead", 40, 960, 21, 128),
                       _class_source(f"{tv}.lraspp", "LRASPPHead"),
                       {"low": 40, "high": 960}, {"low": (32, 32), "high": (16, 16)},
                       {"classes": 21}),
        "smp_deeplabv3": Case(_smp("deeplabv3", "DeepLabV3Decoder", 512, 256, (12, 24, 36),
                                   aspp_separable=False, aspp_dropout=0.5),
                              _smp_file("deeplabv3"), {"x": 512}, {"x": (32, 32)},
                              output_stride=8),
        "smp_deeplabv3plus": Case(
            _smp("deeplabv3", "DeepLabV3PlusDecoder", RESNET34, 5, 256, (12, 24, 36), 16,
                 aspp_separable=True, aspp_dropout=0.5),
            _smp_file("deeplabv3"), {"high": 512, "low": 64},
            {"high": (16, 16), "low": (64, 64)}),
        "smp_psp": Case(_smp("pspnet", "PSPDecoder", RESNET34[:4], out_channels=512),
                        _smp_file("pspnet"), {"x": 128}, {"x": (32, 32)},
                        {"branch": 32}),
        "smp_fpn": Case(_smp("fpn", "FPNDecoder", RESNET34, 5), _smp_file("fpn"),
                        *_renamed(*four, ["c2", "c3", "c4", "c5"])),
        # smp's SegFormer reads no stride-2 level (MiT encoders have none): 0 channels
        "smp_segformer": Case(_smp("segformer", "SegformerDecoder", [3, 0, *RESNET34[2:]], 5),
                              _smp_file("segformer"), *four),
        "smp_unet": Case(_smp("unet", "UnetDecoder", RESNET34, DECODER_CHANNELS),
                         _smp_file("unet"), *five),
        "smp_unetplusplus": Case(
            _smp("unetplusplus", "UnetPlusPlusDecoder", RESNET34, DECODER_CHANNELS),
            _smp_file("unetplusplus"), *five),
        "smp_linknet": Case(_smp("linknet", "LinknetDecoder", RESNET34), _smp_file("linknet"),
                            *five),
        "smp_manet": Case(_smp("manet", "MAnetDecoder", RESNET34, DECODER_CHANNELS),
                          _smp_file("manet"), *five),
        "smp_pan": Case(_smp("pan", "PANDecoder", RESNET34, 5, 32), _smp_file("pan"), *four),
        "smp_upernet": Case(_smp("upernet", "UPerNetDecoder", RESNET34), _smp_file("upernet"),
                            *four),
        # smp's DPT passes the encoder's widths (a ViT-Base's 768) and strides
        "smp_dpt": Case(_smp("dpt", "DPTDecoder", (768,) * 4, (16,) * 4), _smp_file("dpt"),
                        *vit_blocks()),
    }


def code_lines(text: str, comment: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.strip().startswith(comment))


def pair(name: str, case: Case) -> tuple[nn.Module, nn.Module, Any]:
    """(compiled head, library module with its weights, the head's cell)."""
    ref = REFERENCES[name]
    cell = at_output_stride(heads.load(name, **case.options).concrete(), case.output_stride)
    torch.manual_seed(0)
    library = case.build()
    compiled = backends.get("torch").build(cell, case.in_channels, seed=1,
                                           bn_momentum=ref.bn_momentum)
    ours = dict(ref.in_library_order(compiled.state_dict().items()))
    theirs = library.state_dict()
    assert len(ours) == len(theirs), name
    library.load_state_dict({k: v.reshape(t.shape)
                             for (k, t), v in zip(theirs.items(), ours.values())})
    return compiled, library, cell


def step_time(run: Callable[[], torch.Tensor]) -> float:
    t = time.perf_counter()
    run().square().mean().backward()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated head names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, case in cases().items():
        if args.only and name not in args.only.split(","):
            continue
        compiled, library, cell = pair(name, case)
        ref = REFERENCES[name]
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(args.batch, case.in_channels[i], *case.sizes[i], generator=g)
              for i in case.in_channels]
        report = cost(cell, case.in_channels, case.sizes)
        runs = {"compiled": lambda: compiled(*xs), "library": lambda: ref.call(library, xs)}
        times: dict[str, list[float]] = {"compiled": [], "library": []}
        for k in ("compiled", "library"):  # warm-up
            step_time(runs[k])
        for rep in range(args.reps):
            for k in (("compiled", "library") if rep % 2 == 0 else ("library", "compiled")):
                times[k].append(step_time(runs[k]))
        median = {k: statistics.median(v) for k, v in times.items()}
        row = {"head": name, "dpc_lines": code_lines(heads.path(name).read_text(), "#"),
               "library_lines": code_lines(case.source(), "#"),
               "params": report.params, "madds": report.madds,
               "compiled_ms": round(median["compiled"] * 1e3, 2),
               "library_ms": round(median["library"] * 1e3, 2),
               "ratio": round(median["compiled"] / median["library"], 3),
               "inputs": {i: [case.in_channels[i], *case.sizes[i]] for i in case.in_channels}}
        rows.append(row)
        print(f"{name:18s} {row['dpc_lines']:4d} vs {row['library_lines']:4d} lines  "
              f"{row['params']:>11,} params  {row['madds'] / 1e9:7.2f}G madds  "
              f"{row['compiled_ms']:9.1f} vs {row['library_ms']:9.1f} ms  x{row['ratio']}",
              flush=True)
    if args.only:  # the other heads keep their rows
        previous = RESULTS.read_text() if RESULTS.is_file() else ""
        kept = [r for r in (json.loads(previous)["heads"] if previous else [])
                if r["head"] not in {row["head"] for row in rows}]
        order = list(cases())
        rows = sorted(kept + rows, key=lambda r: order.index(r["head"]))
    out = write_result("bench_heads", {
        "machine": machine(torch=torch.__version__, threads=args.threads),
        "settings": {"reps": args.reps, "batch": args.batch, "image": IMAGE,
                     "mode": "eager, forward + backward, interleaved, median"},
        "heads": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
