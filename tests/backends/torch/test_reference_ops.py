"""Ops that claim a library's module are compared with that module:
``position_attention`` with MAnet's PABBlock, ``layernorm`` with
segmentation_models_pytorch's LayerNorm2d (UPerNet's), ``maxpool`` and ``avgpool`` with
PyTorch's MaxPool2d, AvgPool2d and their adaptive forms. The conformance suite then
holds the JAX backend to the PyTorch one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segmentation_models_pytorch.decoders.upernet.decoder import LayerNorm2d
from torch import nn

import dpcdsl


def head(text: str, channels: int = 5) -> nn.Module:
    return dpcdsl.compile(f"cell h(x) {{ return {text} }}", in_channels=channels,
                          backend="torch").eval()


def test_layernorm_is_smps_layernorm2d() -> None:
    torch.manual_seed(0)
    ours, theirs = head("layernorm(x)"), LayerNorm2d(5, eps=1e-6)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours.load_state_dict({f"out.{k}": v for k, v in theirs.state_dict().items()})
    x = torch.randn(2, 5, 7, 9)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("text, module", [
    ("maxpool(x)", nn.MaxPool2d(2)),
    ("maxpool(x, window = 3, step = (1, 2))", nn.MaxPool2d(3, stride=(1, 2))),
    ("maxpool(x, window = (2, 3), step = 2)", nn.MaxPool2d((2, 3), stride=2)),
    ("maxpool(x, grid = (4, 3))", nn.AdaptiveMaxPool2d((4, 3))),
    ("maxpool(x, grid = 1)", nn.AdaptiveMaxPool2d(1)),
    ("avgpool(x)", nn.AvgPool2d(2)),
    ("avgpool(x, window = 3, step = (1, 2))", nn.AvgPool2d(3, stride=(1, 2))),
    ("avgpool(x, grid = (4, 3))", nn.AdaptiveAvgPool2d((4, 3))),
    ("avgpool(x, grid = 1)", nn.AdaptiveAvgPool2d(1)),
    # a grid finer than the map: cells share pixels, as PyTorch's bounds make them
    ("avgpool(x, grid = (13, 20))", nn.AdaptiveAvgPool2d((13, 20))),
    ("maxpool(x, grid = 17)", nn.AdaptiveMaxPool2d(17)),
])
def test_pooling_is_pytorchs(text: str, module: nn.Module) -> None:
    x = torch.randn(2, 5, 11, 14)
    torch.testing.assert_close(head(text)(x), module(x), rtol=0, atol=0)


def test_a_window_larger_than_the_map_is_refused_at_check() -> None:
    diags = dpcdsl.check(dpcdsl.load_text("cell h(x) { return maxpool(x, window = 9) }"),
                         size=(5, 5))
    assert [d.code for d in diags] == ["DPC601"]
    assert "a 9x9 pooling window is larger than the 5x5 map" in diags[0].message


def test_upconv_makes_linknets_decoder_block() -> None:
    """smp's Linknet DecoderBlock: a 1x1 conv to a quarter of the channels, its
    TransposeX2 (a biased transposed conv of kernel 4, stride 2, pad 1, then BN and
    ReLU), a 1x1 conv to the output channels, and the skip added."""
    from segmentation_models_pytorch.decoders.linknet.decoder import DecoderBlock

    torch.manual_seed(0)
    theirs = DecoderBlock(16, 8)
    ours = dpcdsl.compile("cell block(x, skip) { a = conv(x, kernel = 1, channels = 4) "
                          "b = upconv(a, channels = 4, bias = true) "
                          "c = conv(b, kernel = 1, channels = 8) return sum(c, skip) }",
                          in_channels={"x": 16, "skip": 8}, backend="torch")
    state = ours.state_dict()
    assert [tuple(v.shape) for v in state.values()] == \
        [tuple(v.shape) for v in theirs.state_dict().values()]
    with torch.no_grad():
        for k, v in state.items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 2.0)
            elif k.endswith("running_mean") or k.endswith("bias"):
                v.normal_()
    theirs.load_state_dict(dict(zip(theirs.state_dict(), state.values())))
    x, skip = torch.randn(2, 16, 5, 7), torch.randn(2, 8, 10, 14)
    torch.testing.assert_close(ours.eval()(x, skip), theirs.eval()(x, skip))


@pytest.mark.parametrize("size", [(1, 1), (5, 7)])
def test_position_attention_makes_manets_pab_block(size: tuple[int, int]) -> None:
    """smp's PABBlock: position_attention, then its biased 3x3 output conv; the same
    weights in the same order and the same outputs (the reshape that reads the
    (positions, channels) product as (channels, h, w) included)."""
    from segmentation_models_pytorch.decoders.manet.decoder import PABBlock

    torch.manual_seed(0)
    theirs = PABBlock(6, pab_channels=3)
    ours = head("conv(position_attention(x, inner = 3), kernel = 3, norm = none, act = none, "
                "bias = true, atrous = false, channels = 6)", channels=6)
    assert [tuple(v.shape) for v in ours.state_dict().values()] == \
        [tuple(v.shape) for v in theirs.state_dict().values()]
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    x = torch.randn(2, 6, *size)
    torch.testing.assert_close(ours(x), theirs.eval()(x))


@pytest.mark.parametrize("size", [(4, 4), (3, 5)])
def test_a_pool_grid_finer_than_the_map_is_smps_psp_block(size: tuple[int, int]) -> None:
    """PSPNet's 6-bin pyramid level on a map smaller than 6x6 (UPerNet's at a small
    input): adaptive pooling, the 1x1 conv on every cell, resized back."""
    from segmentation_models_pytorch.decoders.pspnet.decoder import PSPBlock

    torch.manual_seed(0)
    theirs = PSPBlock(5, 4, 6)
    ours = head("pool(x, grid = 6, channels = 4, align_corners = true)")
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    x = torch.randn(2, 5, *size)
    torch.testing.assert_close(ours(x), theirs.eval()(x))


def test_sum_and_mul_broadcast_an_image_level_value_on_both_backends() -> None:
    """A 1x1 result of global pooling meets the map it came from: added (sum) or as a
    gate (mul), as PyTorch broadcasts ``+`` and ``*``; the JAX build agrees."""
    from dpcdsl import backends

    text = ("cell h(x) { g = conv(avgpool(x, grid = 1), kernel = 1, channels = 5, "
            "norm = none, act = none, bias = true) "
            "return mul(sum(x, g), sigmoid(g)) }")
    cell = dpcdsl.Space.from_text(text).concrete()
    ours = dpcdsl.compile(cell, in_channels=5, backend="torch").eval()
    x = torch.randn(2, 5, 7, 9)
    w, b = ours.g.conv.weight, ours.g.conv.bias
    g = torch.nn.functional.conv2d(x.mean((2, 3), keepdim=True), w, b)
    torch.testing.assert_close(ours(x), (x + g) * torch.sigmoid(g))
    jax_backend = backends.get("jax")
    module = jax_backend.build(cell, 5)
    jax_backend.import_weights(module, backends.get("torch").export_weights(ours))
    np.testing.assert_allclose(jax_backend.forward(module, [x.numpy()]),
                               ours(x).detach().numpy(), rtol=1e-5, atol=1e-6)
