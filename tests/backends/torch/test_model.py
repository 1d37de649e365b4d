"""Full segmentation models: backbones, rate scaling, the DeepLabv3+ decoder."""

from __future__ import annotations

import sys

import pytest
import torch
from dpcdsl_torch import (
    SegmentationModel,
    TimmBackbone,
    TinyBackbone,
    backbone,
    export_weights,
    source_of,
)

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.backends.torch.conftest import load_example
from tests.conftest import EXAMPLES


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


def test_timm_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # any import of timm now fails
    with pytest.raises(DpcError, match="needs timm, which does not import here") as e:
        backbone("resnet18", 16, pretrained=False)
    assert "pip install 'dpcdsl[timm]'" in str(e.value)


#: timm models and the channels of their last feature level, as timm reports them
TIMM = {"mobilenetv2_100": 320, "xception71": 2048, "resnet50": 2048}


@pytest.mark.slow
@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm_backbones_at_both_strides(name: str, output_stride: int) -> None:
    import timm

    torch.manual_seed(0)
    net = backbone(name, output_stride, pretrained=False)
    reference = timm.create_model(name, features_only=True, pretrained=False,
                                  output_stride=output_stride)
    assert net.channels == reference.feature_info.channels()
    assert net.channels[-1] == TIMM[name]
    assert net.reductions[-1] == output_stride
    cell = Space.from_text("cell h(x, channels = 16) { return sepconv(x, rate = (3, 6)) }"
                           ).concrete()
    model = SegmentationModel(net, cell, num_classes=3).eval()
    rate = (3 * 16 // output_stride, 6 * 16 // output_stride)
    assert f"rate={rate}" in source_of(model.head)
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 64, 64))
        assert feats[-1].shape[1:] == (TIMM[name], 64 // output_stride, 64 // output_stride)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_timm_tagged_names_are_accepted() -> None:
    net = TimmBackbone("xception71.tf_in1k", 16, pretrained=False)
    assert net.channels[-1] == 2048
    assert net.normalisation == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # tf weights' own


def test_timm_pretrained_offline_names_the_local_file_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # the hub reads HF_HUB_OFFLINE once, on import, and an earlier test may have imported
    # it: set the constant too, or this waits out the network's timeouts (46 s) instead
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DpcError, match="cannot fetch the pretrained weights") as e:
        TimmBackbone("resnet18", 16, pretrained=True)
    assert "pretrained_file" in str(e.value)


def test_timm_pretrained_file_loads_local_weights(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    net = TimmBackbone("resnet18", 16, pretrained=True, pretrained_file=path)
    assert torch.equal(net.body.conv1.weight, source.conv1.weight)
    assert torch.equal(net.body.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    with pytest.raises(DpcError, match="does not exist"):
        TimmBackbone("resnet18", 16, pretrained=True, pretrained_file=tmp_path / "none.pth")


def test_timm_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(DpcError, match="timm has no model named 'resnet_18'"):
        TimmBackbone("resnet_18", 16, pretrained=False)


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path) -> None:
    import subprocess

    script = EXAMPLES / "segmentation_model.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "parameters in the module" in out.stdout
    assert (tmp_path / "segmentation_model.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.slow
def test_a_cuda_task_on_a_machine_without_a_gpu_is_a_clear_error(tmp_path) -> None:
    import subprocess

    from dpcdsl_torch import feature_extractor

    from dpcdsl.train.data.task import task_from_text

    task = task_from_text(f"device = 'cuda'\ncache_dir = '{tmp_path}'\n[dataset]\n"
                          "kind = 'synthetic'\n", "t.toml")
    with pytest.raises(DpcError, match='t.toml: device = "cuda", but this machine has no '
                                       "CUDA GPU") as e:
        feature_extractor(task)
    assert 'set device = "cpu"' in e.value.render()
    (tmp_path / "t.toml").write_text(f"device = 'cuda'\ncache_dir = '{tmp_path}'\n"
                                     "[dataset]\nkind = 'synthetic'\n")
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy",
                        str(EXAMPLES / "aspp.dpc"), "--task", str(tmp_path / "t.toml")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no CUDA GPU" in r.stderr and "Traceback" not in r.stderr
