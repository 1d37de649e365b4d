"""The layers that emitted cells are made of.

These classes are real, tested Python. The emitter copies the source of each one a
cell needs into the emitted file (with :func:`inspect.getsource`), so an emitted file
stands alone and imports only torch. Parameter names here are the canonical weight
names below a node: ``conv``, ``bn``, ``depthwise``, ``depthwise_bn``, ``pointwise``,
``pointwise_bn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


def activate(x: torch.Tensor, act: str) -> torch.Tensor:
    """The activation named ``act`` (``none``: the input)."""
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    if act == "hardsigmoid":
        return F.hardsigmoid(x)
    if act == "hardswish":
        return F.hardswish(x)
    if act == "gelu":
        return F.gelu(x)
    return x


def make_norm(norm: str, channels: int, groups: int, bn_momentum: float,
              bn_eps: float) -> nn.Module | None:
    """BatchNorm (``bn``), GroupNorm (``gn``) or nothing (``none``)."""
    if norm == "bn":
        return nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)
    if norm == "gn":
        return nn.GroupNorm(groups, channels, eps=bn_eps)
    return None


def normed(x: torch.Tensor, *norms: nn.Module | None) -> torch.Tensor:
    """``x`` through whichever of ``norms`` exists."""
    for norm in norms:
        if norm is not None:
            x = norm(x)
    return x


class DepthwiseTaps(torch.autograd.Function):
    """A stride-1 depthwise atrous conv, SAME padding, with a backward pass for the CPU.
    PyTorch's CPU backward of a dilated depthwise conv takes several times its forward.
    Here the input's gradient is one more forward conv, of the output's gradient with
    the kernel flipped, and each tap's gradient is a sum of products over the window
    where that tap reads real pixels (taps over padding add nothing). Those products
    stream the whole map once per tap, which pays while the map stays near the caches:
    measured on a 2-core x86 machine, 2.2x faster than PyTorch's backward at 4.5M
    elements (2048 x 33 x 33, batch 2) and 1.3x slower at 9.8M (2048 x 49 x 49), so
    larger maps keep the plain conv (``MAX_ELEMENTS``)."""

    MAX_ELEMENTS = 5_000_000

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
                dilation: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-2, -1), None, 1, ctx.padding, ctx.dilation,
                              x.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight)
            (ph, pw), (rh, rw), (h, w) = ctx.padding, ctx.dilation, x.shape[-2:]
            for i in range(weight.shape[-2]):
                dy = i * rh - ph  # output row y reads input row y + dy
                y0, y1 = max(0, -dy), min(h, h - dy)
                for j in range(weight.shape[-1]):
                    dx = j * rw - pw
                    x0, x1 = max(0, -dx), min(w, w - dx)
                    if y0 < y1 and x0 < x1:
                        grad_w[:, 0, i, j] = (grad[..., y0:y1, x0:x1] * x[
                            ..., y0 + dy:y1 + dy, x0 + dx:x1 + dx]).sum((0, 2, 3))
        return grad_x, grad_w, None, None


def atrous(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (SAME padding) on ``x`` with only the taps that can touch real pixels.
    A tap ``j * rate`` from the centre reads only zero padding once ``j * rate``
    reaches the map's size on that axis, so on a small map those rows (columns) of the
    kernel are skipped: a rate at least the size leaves the centre tap alone. A
    stride-1 depthwise conv on the CPU trains through :class:`DepthwiseTaps` in eager
    mode (under ``torch.compile`` the compiler derives its own backward). The weights
    keep their shape; outputs and gradients equal the full conv's."""
    if torch.compiler.is_exporting():
        return conv(x)  # an exported graph takes any size, so it keeps every tap
    kh, kw = conv.kernel_size
    (rh, rw), (h, w) = conv.dilation, x.shape[-2:]
    mh, mw = min(kh // 2, (h - 1) // rh), min(kw // 2, (w - 1) // rw)
    weight = conv.weight[:, :, kh // 2 - mh:kh // 2 + mh + 1, kw // 2 - mw:kw // 2 + mw + 1]
    padding = (rh * mh, rw * mw)
    # eager mode only (checked first, so a compiler never traces the rest): under
    # torch.compile the compiler derives its own backward
    if not torch.compiler.is_compiling() and torch.is_grad_enabled() \
            and x.device.type == "cpu" and conv.stride == (1, 1) and (mh or mw) \
            and conv.groups == x.shape[1] == weight.shape[0] \
            and x.numel() <= DepthwiseTaps.MAX_ELEMENTS:
        out = DepthwiseTaps.apply(x, weight, padding, conv.dilation)
        return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)
    if mh == kh // 2 and mw == kw // 2:
        return conv(x)
    return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


class ConvBNReLU(nn.Module):
    """A k x k atrous conv with SAME padding (no bias unless ``bias``), then a norm
    (BatchNorm, GroupNorm or none) and an activation (ReLU by default). The norm is the
    attribute ``bn`` or ``gn``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, rate: tuple[int, int] = (1, 1),
                 stride: int = 1, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, bn_momentum: float = 0.0003, bn_eps: float = 1e-5) -> None:
        super().__init__()
        padding = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=rate,
                              bias=bias)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(normed(atrous(x, self.conv), self.bn, self.gn), self.act)


class SepConvBNReLU(nn.Module):
    """A depthwise k x k atrous conv, norm and activation; then a pointwise 1x1 conv,
    norm and activation. There is a norm and an activation between the two convs, as in
    the DPC paper, unless ``inner`` is off (Xception's and smp's separable conv)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, rate: tuple[int, int] = (1, 1),
                 stride: int = 1, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, inner: bool = True, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        padding = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.depthwise = nn.Conv2d(cin, cin, kernel, stride=stride, padding=padding,
                                   dilation=rate, groups=cin, bias=bias)
        self.depthwise_bn = make_norm(norm, cin, groups, bn_momentum, bn_eps) \
            if norm == "bn" and inner else None
        self.depthwise_gn = make_norm(norm, cin, groups, bn_momentum, bn_eps) \
            if norm == "gn" and inner else None
        self.inner = inner
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=bias)
        self.pointwise_bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) \
            if norm == "bn" else None
        self.pointwise_gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) \
            if norm == "gn" else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normed(atrous(x, self.depthwise), self.depthwise_bn, self.depthwise_gn)
        if self.inner:
            x = activate(x, self.act)
        return activate(normed(self.pointwise(x), self.pointwise_bn, self.pointwise_gn),
                        self.act)


class GridPool(nn.Module):
    """The paper's pyramid pooling: average over a grid of g_h x g_w cells (adaptive
    average pooling), a 1x1 conv, norm and activation, then bilinear upsampling back to
    the input's size. A 1x1 grid is image-level pooling."""

    def __init__(self, cin: int, cout: int, grid: tuple[int, int] = (1, 1), norm: str = "bn",
                 groups: int = 32, act: str = "relu", bias: bool = False,
                 align_corners: bool = False, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.grid = grid
        self.align_corners = align_corners
        self.conv = nn.Conv2d(cin, cout, 1, bias=bias)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(adaptive_avg_pool(x, self.grid))
        y = activate(normed(y, self.bn, self.gn), self.act)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear",
                             align_corners=self.align_corners)


class WindowPool(nn.Module):
    """Pooling over a fixed window: an average with stride ``step`` (VALID padding), a
    1x1 conv, norm and activation, then a bilinear resize back to the input's size.
    With stride 1 and aligned corners it is the DeepLab reference's pyramid pooling;
    with a 49x49 window and stride (16, 20), the original LR-ASPP's."""

    def __init__(self, cin: int, cout: int, window: tuple[int, int] = (1, 1),
                 step: tuple[int, int] = (1, 1), norm: str = "bn", groups: int = 32,
                 act: str = "relu", bias: bool = False, align_corners: bool = True,
                 bn_momentum: float = 0.0003, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.window = window
        self.step = step
        self.align_corners = align_corners
        self.conv = nn.Conv2d(cin, cout, 1, bias=bias)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.avg_pool2d(x, self.window, stride=self.step))
        y = activate(normed(y, self.bn, self.gn), self.act)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear",
                             align_corners=self.align_corners)


class UpConvBNReLU(nn.Module):
    """A transposed conv (nn.ConvTranspose2d; no bias unless ``bias``), then a norm and
    an activation: Linknet's TransposeX2 with kernel 4, stride 2, pad 1 and a bias."""

    def __init__(self, cin: int, cout: int, kernel: int = 4, stride: int = 2, pad: int = 1,
                 out_pad: int = 0, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, bn_momentum: float = 0.0003, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=pad,
                                       output_padding=out_pad, bias=bias)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(normed(self.conv(x), self.bn, self.gn), self.act)


def max_pool(x: torch.Tensor, window: tuple[int, int], step: tuple[int, int]) -> torch.Tensor:
    """The maximum over each window, windows ``step`` apart, no padding."""
    return F.max_pool2d(x, window, stride=step)


def cell_masks(x: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which rows and which columns of ``x`` each cell of a g_h x g_w grid covers, as
    (g_h, H) and (g_w, W) masks: cell i spans floor(i * n / g) to ceil((i + 1) * n / g),
    PyTorch's adaptive pooling bounds. Written with the size as a tensor, so an exported
    graph pools right at every size (an exporter that unrolls adaptive pooling fixes the
    bounds of the size it traced)."""

    def axis(n: int, g: int) -> torch.Tensor:
        i = torch.arange(g, device=x.device).unsqueeze(1)
        j = torch.arange(n, device=x.device).unsqueeze(0)
        return (j * g >= i * n - (g - 1)) & (j * g < (i + 1) * n)

    return axis(x.shape[-2], grid[0]), axis(x.shape[-1], grid[1])


def adaptive_max_pool(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The maximum over each cell of a g_h x g_w grid (PyTorch's cell bounds)."""
    if not torch.compiler.is_exporting():
        return F.adaptive_max_pool2d(x, grid)
    rows, cols = cell_masks(x, grid)
    low = torch.finfo(x.dtype).min
    y = torch.where(rows[:, :, None], x.unsqueeze(-3), low).amax(-2)  # N, C, g_h, W
    return torch.where(cols[:, :, None], y.unsqueeze(-2), low).amax(-1)


def avg_pool(x: torch.Tensor, window: tuple[int, int], step: tuple[int, int]) -> torch.Tensor:
    """The average over each window, windows ``step`` apart, no padding."""
    return F.avg_pool2d(x, window, stride=step)


def adaptive_avg_pool(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The average over each cell of a g_h x g_w grid (PyTorch's cell bounds)."""
    if not torch.compiler.is_exporting():
        return F.adaptive_avg_pool2d(x, grid)
    rows, cols = (m.to(x.dtype) for m in cell_masks(x, grid))
    rows, cols = rows / rows.sum(1, keepdim=True), cols / cols.sum(1, keepdim=True)
    return rows @ x @ cols.t()


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position of an NCHW map, with a scale and
    shift per channel: segmentation_models_pytorch's LayerNorm2d."""

    def __init__(self, channels: int, eps: float = 1e-6, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
                         self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class PositionAttention(nn.Module):
    """MAnet's position attention: segmentation_models_pytorch's PABBlock without its
    output conv. Queries and keys (biased 1x1 convs to ``inner`` channels) make an
    n x n map of products over the n = h * w positions, softmaxed over the whole map
    (smp's softmax over ``view(batch, -1)``); it weights the values (a biased 3x3 conv)
    and the (positions, channels) result is read as (channels, h, w), as smp reads it,
    and added to the input."""

    def __init__(self, channels: int, inner: int = 64, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.top = nn.Conv2d(channels, inner, 1)
        self.center = nn.Conv2d(channels, inner, 1)
        self.bottom = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        keys = self.top(x).flatten(2)
        queries = self.center(x).flatten(2).transpose(1, 2)
        values = self.bottom(x).flatten(2).transpose(1, 2)
        weights = torch.softmax((queries @ keys).reshape(n, -1), dim=1)
        return x + (weights.reshape(n, h * w, h * w) @ values).reshape(n, c, h, w)


#: every layer class, by the op that uses it
LAYERS: dict[str, Callable[..., object]] = {
    "activate": activate,
    "make_norm": make_norm,
    "normed": normed,
    "DepthwiseTaps": DepthwiseTaps,
    "atrous": atrous,
    "ConvBNReLU": ConvBNReLU,
    "SepConvBNReLU": SepConvBNReLU,
    "GridPool": GridPool,
    "WindowPool": WindowPool,
    "UpConvBNReLU": UpConvBNReLU,
    "max_pool": max_pool,
    "cell_masks": cell_masks,
    "adaptive_max_pool": adaptive_max_pool,
    "avg_pool": avg_pool,
    "adaptive_avg_pool": adaptive_avg_pool,
    "LayerNorm2d": LayerNorm2d,
    "PositionAttention": PositionAttention,
}
