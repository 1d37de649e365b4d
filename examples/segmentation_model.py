"""The Python API: compile a head, check it against the cost model, build a full
segmentation model around it, and save its weights.

    python examples/segmentation_model.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from dpcdsl_torch import SegmentationModel, TinyBackbone, export_weights, save_weights

import dpcdsl
from dpcdsl.lang.space import Space

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # 1. a head, compiled for Xception's 2048 channels, next to the cost model
    head = dpcdsl.compile(HERE / "dpc_cityscapes.dpc", backend="torch", in_channels=2048)
    report = dpcdsl.cost(Space.from_file(HERE / "dpc_cityscapes.dpc").concrete(), 2048,
                         (65, 129))
    params = sum(p.numel() for p in head.parameters())
    print(f"top-1 DPC at 2048 channels: {params:,} parameters in the module, "
          f"{report.params:,} in the cost model")

    # 2. a full model: tiny backbone at output stride 8, top-1 DPC, DeepLabv3+ decoder
    cell = Space.from_file(HERE / "dpc_cityscapes.dpc").concrete()
    decoder = Space.from_file(HERE / "deeplabv3plus.dpc").concrete()
    model = SegmentationModel(TinyBackbone(output_stride=8), cell, num_classes=19,
                              decoder=decoder)
    image = torch.randn(2, 3, 129, 129)
    logits = model(image)
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 19, (2, 129, 129)))
    loss.backward()
    print(f"segmentation model: logits {tuple(logits.shape)}, loss {loss.item():.3f}, "
          f"head rates at output stride 8: b1 {model.head.b1.depthwise.dilation}")

    # 3. weights under canonical names, in a safetensors file
    path = out / "segmentation_model.safetensors"
    save_weights(model, path)
    print(f"wrote {len(export_weights(model))} tensors to {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/demo"))
