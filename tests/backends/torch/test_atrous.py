"""Atrous convs run only the taps that can touch real pixels: the same outputs and
gradients as the full conv, at map sizes around each rate, with fewer FLOPs."""

from __future__ import annotations

import pytest
import torch
from dpcdsl_torch._layers import atrous
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

CASES = [(k, r, n, groups) for k in (3, 5) for r in (2, 4, 7) for n in (r - 1, r, r + 1, 2 * r)
         for groups in (1, 6) if n >= 1]


@pytest.mark.parametrize(("kernel", "rate", "size", "groups"), CASES)
@pytest.mark.parametrize("stride", [1, 2])
def test_same_outputs_and_gradients_as_the_full_conv(kernel, rate, size, groups, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, kernel, stride=stride, padding=(rate * (kernel - 1) // 2,) * 2,
                     dilation=rate, groups=groups, bias=True).double()
    x = torch.randn(2, 6, size, size + 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(conv(x))
    outs, grads = [], []
    for f in (lambda: atrous(x, conv), lambda: conv(x)):
        x.grad = None
        conv.zero_grad()
        y = f()
        (y * g).sum().backward()
        outs.append(y.detach())
        grads.append((x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("size", "taps"), [((33, 33), 9), ((12, 33), 3), ((12, 12), 1)])
def test_a_rate_at_least_the_map_runs_only_the_centre(size, taps):
    """A 3x3 conv of rate 12: every tap on a 33x33 map, the centre row on 12x33, the
    centre alone on 12x12 (the FLOP counter sees what runs)."""
    conv = nn.Conv2d(8, 8, 3, padding=12, dilation=12, bias=False)
    x = torch.randn(1, 8, *size)
    with FlopCounterMode(display=False) as counted:
        atrous(x, conv)
    assert counted.get_total_flops() == 2 * 8 * 8 * taps * size[0] * size[1]


def test_a_depthwise_conv_trains_through_its_own_backward_on_the_cpu():
    """PyTorch's CPU backward of a dilated depthwise conv is slow; the emitted layers
    take DepthwiseTaps there (its gradients are checked above, in float64), and the
    plain conv where it gains nothing (inference, strides, dense convs, large maps)."""
    depthwise = nn.Conv2d(8, 8, 3, padding=6, dilation=6, groups=8, bias=False)
    x = torch.randn(1, 8, 20, 20, requires_grad=True)
    assert type(atrous(x, depthwise).grad_fn).__name__ == "DepthwiseTapsBackward"
    with torch.no_grad():
        torch.testing.assert_close(atrous(x, depthwise), depthwise(x))
    large = torch.randn(1, 8, 800, 800, requires_grad=True)  # 5.1M elements
    assert "DepthwiseTaps" not in type(atrous(large, depthwise).grad_fn).__name__
    strided = nn.Conv2d(8, 8, 3, stride=2, padding=6, dilation=6, groups=8, bias=False)
    dense = nn.Conv2d(8, 8, 3, padding=6, dilation=6, bias=False)
    for conv in (strided, dense):
        assert "DepthwiseTaps" not in type(atrous(x, conv).grad_fn).__name__
