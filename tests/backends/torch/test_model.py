"""Full segmentation models: backbones, rate scaling, the DeepLabv3+ decoder."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from dpcdsl_torch import SegmentationModel, TimmBackbone, TinyBackbone, backbone, export_weights

from dpcdsl.errors import DpcError
from dpcdsl.space import Space
from tests.backends.torch.conftest import load_example
from tests.conftest import EXAMPLES


def timm_imports() -> bool:
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("output_stride", [8, 16])
def test_tiny_backbone_strides(output_stride: int) -> None:
    net = TinyBackbone(output_stride)
    feats = net(torch.randn(2, 3, 64, 96))
    assert [f.shape[1] for f in feats] == net.channels
    assert [64 // f.shape[2] for f in feats] == net.reductions == [4, 8, output_stride]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_model_forward_backward(output_stride: int) -> None:
    cell = load_example("dpc_cityscapes").cell
    model = SegmentationModel(TinyBackbone(output_stride), cell, num_classes=5)
    image = torch.randn(2, 3, 65, 97)
    logits = model(image)
    assert logits.shape == (2, 5, 65, 97)
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_rates_scale_with_output_stride() -> None:
    cell = load_example("dpc_cityscapes").cell
    at16 = SegmentationModel(TinyBackbone(16), cell, num_classes=3)
    at8 = SegmentationModel(TinyBackbone(8), cell, num_classes=3)
    assert at16.head.b1.depthwise.dilation == (18, 15)
    assert at8.head.b1.depthwise.dilation == (36, 30)


def test_deeplabv3plus_decoder() -> None:
    head = load_example("aspp").cell
    decoder = Space.from_file(EXAMPLES / "deeplabv3plus.dpc").concrete()
    model = SegmentationModel(TinyBackbone(16), head, num_classes=4, decoder=decoder)
    assert model.decoder is not None
    assert model.decoder.reduced.conv.in_channels == model.backbone.channels[0]
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4, 64, 64)
    names = export_weights(model)
    assert "decoder.refine.depthwise.weight" in names
    assert "head.project.conv.weight" in names


def test_decoder_needs_two_inputs() -> None:
    head = load_example("aspp").cell
    with pytest.raises(DpcError, match="has 1 inputs; it needs two"):
        SegmentationModel(TinyBackbone(16), head, num_classes=4, decoder=head)


def test_bad_output_stride_and_classes() -> None:
    with pytest.raises(DpcError, match="output stride 32 is not supported"):
        TinyBackbone(32)
    with pytest.raises(DpcError, match="num_classes must be positive"):
        SegmentationModel(TinyBackbone(16), load_example("aspp").cell, num_classes=0)


def test_backbone_factory() -> None:
    assert isinstance(backbone("tiny", 8), TinyBackbone)


@pytest.mark.skipif(timm_imports(), reason="timm imports here; its error path cannot be seen")
def test_timm_missing_is_a_clear_error() -> None:
    with pytest.raises(DpcError, match="needs timm, which does not import here") as e:
        backbone("resnet18", 16, pretrained=False)
    assert "pip install 'dpcdsl[timm]'" in str(e.value)


@pytest.mark.skipif(not timm_imports(), reason="timm does not import beside this torch build")
@pytest.mark.parametrize("output_stride", [8, 16])
def test_timm_backbone(output_stride: int) -> None:
    net = TimmBackbone("resnet18", output_stride, pretrained=False)
    assert net.reductions[-1] == output_stride
    model = SegmentationModel(net, load_example("dpc_cityscapes").cell, num_classes=3)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


@pytest.mark.skipif(not timm_imports(), reason="timm does not import beside this torch build")
def test_timm_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(DpcError, match="timm has no model named 'resnet_18'"):
        TimmBackbone("resnet_18", 16, pretrained=False)
