"""The Flax NNX layers that emitted cells are made of, with PyTorch's semantics.

Arrays are NHWC inside. As for the PyTorch backend, the emitter copies the source of
what a cell needs into the emitted file, so it stands alone and imports only jax
and flax. ``BatchNorm`` follows PyTorch exactly (momentum as PyTorch counts it,
an unbiased running variance); the resizes and the grid pooling reproduce
``F.interpolate(mode="bilinear")`` (both ``align_corners`` settings) and
``F.adaptive_avg_pool2d``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def drawn(key: jax.Array, shape: tuple[int, ...], draw: Callable[..., jax.Array],
          scale: float = 1.0) -> jax.Array:
    """``draw(key, (n,))`` times ``scale``, cut to ``shape``: drawn at a length of at
    least 2**16, a power of two, and cut and scaled on the host. XLA compiles each op
    anew for each shape it meets (a fifth of a second for a random draw on a CPU), and
    a head's many weight shapes made building it take seconds; this way one length
    serves every weight of up to 65,536 values, and a few more the largest, each
    compiled once per process."""
    n = 1
    for d in shape:
        n *= d
    values = jax.device_get(draw(key, (1 << max(n - 1, 0xFFFF).bit_length(),)))
    return jnp.asarray(values[:n].reshape(shape) * scale, jnp.float32)


def lecun_normal(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32
                 ) -> jax.Array:
    """Flax's default conv kernel (variance 1 / fan-in, truncated at two deviations)."""
    fan_in = 1
    for d in shape[:-1]:
        fan_in *= d
    std = fan_in ** -0.5 / 0.87962566103423978  # the truncation's variance made up
    return drawn(key, shape, _truncated, std).astype(dtype)


def _truncated(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.truncated_normal(key, -2.0, 2.0, shape)


def _symmetric(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)


def resize_bilinear(x: jax.Array, size: tuple[int, ...], align_corners: bool) -> jax.Array:
    """Bilinear resize of an NHWC array to ``size`` (h, w), as PyTorch computes it."""
    for axis, n_out in ((1, size[0]), (2, size[1])):
        n_in = x.shape[axis]
        if n_in == n_out:
            continue
        if align_corners:
            scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            src = [d * scale for d in range(n_out)]
        else:
            src = [max((d + 0.5) * n_in / n_out - 0.5, 0.0) for d in range(n_out)]
        lo = [min(int(s), n_in - 1) for s in src]
        hi = [min(i + 1, n_in - 1) for i in lo]
        shape = [-1 if a == axis else 1 for a in range(x.ndim)]
        frac = jnp.asarray([s - i for s, i in zip(src, lo)], x.dtype).reshape(shape)
        x = (jnp.take(x, jnp.asarray(lo), axis=axis) * (1 - frac)
             + jnp.take(x, jnp.asarray(hi), axis=axis) * frac)
    return x


def resize_nearest(x: jax.Array, size: tuple[int, ...]) -> jax.Array:
    """Nearest resize of an NHWC array to ``size`` (h, w), as PyTorch's ``nearest``:
    output pixel d reads input pixel floor(d * s), s = n_in / n_out in float32 as
    PyTorch computes it (its rounding included)."""
    for axis, n_out in ((1, size[0]), (2, size[1])):
        n_in = x.shape[axis]
        if n_in != n_out:
            scale = jnp.float32(n_in) / jnp.float32(n_out)
            src = jnp.minimum(jnp.floor(jnp.arange(n_out, dtype=jnp.float32) * scale)
                              .astype(jnp.int32), n_in - 1)
            x = jnp.take(x, src, axis=axis)
    return x


def grid_pool(x: jax.Array, grid: tuple[int, int], reduce: str) -> jax.Array:
    """Reduce an NHWC array over each cell of a g_h x g_w grid (``reduce``: mean or
    max), with PyTorch's cell bounds floor(i * n / g) to ceil((i + 1) * n / g)."""
    for axis, g in ((1, grid[0]), (2, grid[1])):
        n = x.shape[axis]
        cells = [getattr(jax.lax.slice_in_dim(x, i * n // g, -(-(i + 1) * n // g), axis=axis),
                         reduce)(axis=axis, keepdims=True) for i in range(g)]
        x = jnp.concatenate(cells, axis=axis)
    return x


def adaptive_avg_pool(x: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """The average over each cell of a grid: ``F.adaptive_avg_pool2d``."""
    return grid_pool(x, grid, "mean")


class BatchNorm(nnx.Module):
    """BatchNorm over the last axis with PyTorch's semantics: in training the batch
    statistics normalise, and the running variance takes the unbiased batch variance;
    ``momentum`` is PyTorch's (the weight of the new batch)."""

    def __init__(self, num_features: int, momentum: float = 0.0003, eps: float = 1e-5) -> None:
        self.weight = nnx.Param(jnp.ones(num_features, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(num_features, jnp.float32))
        self.running_mean = nnx.BatchStat(jnp.zeros(num_features, jnp.float32))
        self.running_var = nnx.BatchStat(jnp.ones(num_features, jnp.float32))
        self.momentum = momentum
        self.eps = eps
        self.use_running_average = False

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.running_mean[...], self.running_var[...]
        else:
            mean = x.mean(axis=(0, 1, 2))
            var = jnp.square(x - mean).mean(axis=(0, 1, 2))
            n = x.size // x.shape[-1]
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean[...] + m * mean
            self.running_var[...] = (1 - m) * self.running_var[...] + m * var * n / max(n - 1, 1)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.weight[...] + self.bias[...]


class GroupNorm(nnx.Module):
    """GroupNorm over the last axis with PyTorch's semantics: the channels split into
    ``groups``, each normalised over its channels and all positions (biased variance),
    then a per-channel scale and shift."""

    def __init__(self, groups: int, num_features: int, eps: float = 1e-5) -> None:
        self.weight = nnx.Param(jnp.ones(num_features, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(num_features, jnp.float32))
        self.groups = groups
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        g = x.reshape(n, h, w, self.groups, c // self.groups)
        mean = g.mean(axis=(1, 2, 4), keepdims=True)
        var = jnp.square(g - mean).mean(axis=(1, 2, 4), keepdims=True)
        y = ((g - mean) * jax.lax.rsqrt(var + self.eps)).reshape(n, h, w, c)
        return y * self.weight[...] + self.bias[...]


def activate(x: jax.Array, act: str) -> jax.Array:
    """The activation named ``act`` (``none``: the input), as PyTorch computes it."""
    if act == "relu":
        return jax.nn.relu(x)
    if act == "relu6":
        return jax.nn.relu6(x)
    if act == "sigmoid":
        return jax.nn.sigmoid(x)
    if act == "hardsigmoid":
        return jax.nn.hard_sigmoid(x)
    if act == "hardswish":
        return jax.nn.hard_swish(x)
    if act == "gelu":
        return jax.nn.gelu(x, approximate=False)
    return x


def make_norm(norm: str, channels: int, groups: int, bn_momentum: float,
              bn_eps: float) -> BatchNorm | GroupNorm | None:
    """BatchNorm (``bn``), GroupNorm (``gn``) or nothing (``none``)."""
    if norm == "bn":
        return BatchNorm(channels, bn_momentum, bn_eps)
    if norm == "gn":
        return GroupNorm(groups, channels, bn_eps)
    return None


def normed(x: jax.Array, *norms: BatchNorm | GroupNorm | None) -> jax.Array:
    """``x`` through whichever of ``norms`` exists."""
    for norm in norms:
        if norm is not None:
            x = norm(x)
    return x


def atrous(x: jax.Array, conv: nnx.Conv) -> jax.Array:
    """``conv`` (SAME padding) on the NHWC ``x`` with only the taps that can touch real
    pixels: a tap ``j * rate`` from the centre reads only zero padding once ``j * rate``
    reaches the map's size on that axis, so on a small map those rows (columns) of the
    kernel are skipped. The kernel keeps its shape; outputs and gradients equal the
    full conv's. Shapes are static under ``jit``, so the choice is made when tracing.

    On the CPU, where XLA's conv kernels are slow for these shapes (a dilated depthwise
    conv several times, a dense one about 1.5x, a 1x1 conv too, forward and backward), a
    conv is a sum of shifted slices: of the padded input times each tap (depthwise), or
    of one matrix product of the input with all taps at once (dense, stride 1; a 1x1
    conv is that product alone). Other platforms keep XLA's conv."""
    kh, kw = conv.kernel_size
    dilation, step = conv.kernel_dilation or 1, conv.strides or 1
    rh, rw = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    sh, sw = (step, step) if isinstance(step, int) else tuple(step)
    mh, mw = min(kh // 2, (x.shape[1] - 1) // rh), min(kw // 2, (x.shape[2] - 1) // rw)
    kernel = conv.kernel[...][kh // 2 - mh:kh // 2 + mh + 1, kw // 2 - mw:kw // 2 + mw + 1]
    n, h, w, c = x.shape
    th, tw, cout = 2 * mh + 1, 2 * mw + 1, kernel.shape[-1]
    oh, ow = (h - 1) // sh + 1, (w - 1) // sw + 1
    pads = ((0, 0), (rh * mh, rh * mh), (rw * mw, rw * mw), (0, 0))

    def shifted(a: jax.Array, i: int, j: int, channels: int = 0) -> jax.Array:
        """The padded ``a`` as the output pixels see it through tap (i, j); with
        ``channels``, only the tap's own block of them."""
        lo, hi = (0, a.shape[-1]) if not channels else \
            ((i * tw + j) * channels, (i * tw + j + 1) * channels)
        return jax.lax.slice(a, (0, i * rh, j * rw, lo),
                             (n, i * rh + (oh - 1) * sh + 1, j * rw + (ow - 1) * sw + 1, hi),
                             (1, sh, sw, 1))

    cpu = jax.default_backend() == "cpu"
    if cpu and conv.feature_group_count == c == cout:  # depthwise
        xp = jnp.pad(x, pads)
        taps = [shifted(xp, i, j) * kernel[i, j, 0] for i in range(th) for j in range(tw)]
    elif cpu and conv.feature_group_count == 1 and (sh, sw) == (1, 1):
        z = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, th * tw * cout)
        zp = jnp.pad(z.reshape(n, h, w, th * tw * cout), pads)
        taps = [shifted(zp, i, j, cout) for i in range(th) for j in range(tw)]
    elif mh == kh // 2 and mw == kw // 2:
        return conv(x)
    else:
        taps = [jax.lax.conv_general_dilated(
            x, kernel, (sh, sw), pads[1:3], rhs_dilation=(rh, rw),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=conv.feature_group_count)]
    y = taps[0]
    for tap in taps[1:]:
        y = y + tap
    return y if conv.bias is None else y + conv.bias[...]


class ConvBNReLU(nnx.Module):
    """A k x k atrous conv with SAME padding (no bias unless ``bias``), then a norm
    (BatchNorm, GroupNorm or none) and an activation (ReLU by default)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, rate: tuple[int, int] = (1, 1),
                 stride: int = 1, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, bn_momentum: float = 0.0003, bn_eps: float = 1e-5, *,
                 rngs: nnx.Rngs) -> None:
        pad = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride,
                             padding=((pad[0], pad[0]), (pad[1], pad[1])),
                             kernel_dilation=rate, use_bias=bias, kernel_init=lecun_normal,
                             rngs=rngs)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        return activate(normed(atrous(x, self.conv), self.bn, self.gn), self.act)


class SepConvBNReLU(nnx.Module):
    """A depthwise k x k atrous conv (``feature_group_count``), norm and activation
    (unless ``inner`` is off); then a pointwise 1x1 conv, norm and activation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, rate: tuple[int, int] = (1, 1),
                 stride: int = 1, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, inner: bool = True, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5, *, rngs: nnx.Rngs) -> None:
        pad = (rate[0] * (kernel - 1) // 2, rate[1] * (kernel - 1) // 2)
        self.depthwise = nnx.Conv(cin, cin, (kernel, kernel), strides=stride,
                                  padding=((pad[0], pad[0]), (pad[1], pad[1])),
                                  kernel_dilation=rate, feature_group_count=cin,
                                  use_bias=bias, kernel_init=lecun_normal, rngs=rngs)
        self.depthwise_bn = make_norm(norm, cin, groups, bn_momentum, bn_eps) \
            if norm == "bn" and inner else None
        self.depthwise_gn = make_norm(norm, cin, groups, bn_momentum, bn_eps) \
            if norm == "gn" and inner else None
        self.inner = inner
        self.pointwise = nnx.Conv(cin, cout, (1, 1), use_bias=bias, kernel_init=lecun_normal,
                                  rngs=rngs)
        self.pointwise_bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) \
            if norm == "bn" else None
        self.pointwise_gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) \
            if norm == "gn" else None
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = normed(atrous(x, self.depthwise), self.depthwise_bn, self.depthwise_gn)
        x = activate(x, self.act) if self.inner else x
        return activate(normed(atrous(x, self.pointwise), self.pointwise_bn,
                               self.pointwise_gn), self.act)


class GridPool(nnx.Module):
    """The paper's pyramid pooling: average over a grid, a 1x1 conv, norm and
    activation, then bilinear upsampling back to the input's size."""

    def __init__(self, cin: int, cout: int, grid: tuple[int, int] = (1, 1), norm: str = "bn",
                 groups: int = 32, act: str = "relu", bias: bool = False,
                 align_corners: bool = False, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5, *, rngs: nnx.Rngs) -> None:
        self.grid = grid
        self.align_corners = align_corners
        self.conv = nnx.Conv(cin, cout, (1, 1), use_bias=bias, kernel_init=lecun_normal,
                                  rngs=rngs)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        y = atrous(adaptive_avg_pool(x, self.grid), self.conv)
        y = activate(normed(y, self.bn, self.gn), self.act)
        return resize_bilinear(y, x.shape[1:3], align_corners=self.align_corners)


class WindowPool(nnx.Module):
    """Pooling over a fixed window: an average with stride ``step`` (VALID), a 1x1 conv,
    norm and activation, then a bilinear resize back (corners aligned unless told): the
    DeepLab reference's pyramid pooling with stride 1, the original LR-ASPP's with a
    49x49 window and stride (16, 20)."""

    def __init__(self, cin: int, cout: int, window: tuple[int, int] = (1, 1),
                 step: tuple[int, int] = (1, 1), norm: str = "bn", groups: int = 32,
                 act: str = "relu", bias: bool = False, align_corners: bool = True,
                 bn_momentum: float = 0.0003, bn_eps: float = 1e-5, *,
                 rngs: nnx.Rngs) -> None:
        self.window = window
        self.step = step
        self.align_corners = align_corners
        self.conv = nnx.Conv(cin, cout, (1, 1), use_bias=bias, kernel_init=lecun_normal,
                                  rngs=rngs)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        (kh, kw), (sh, sw) = self.window, self.step
        y = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, kh, kw, 1), (1, sh, sw, 1), "VALID")
        y = activate(normed(atrous(y / (kh * kw), self.conv), self.bn, self.gn), self.act)
        return resize_bilinear(y, x.shape[1:3], align_corners=self.align_corners)


class TransposedConv(nnx.Module):
    """PyTorch's ConvTranspose2d on NHWC arrays: the input dilated by the stride, padded
    by kernel - 1 - pad (plus out_pad after), then convolved with the flipped kernel.
    ``kernel`` is (k, k, out, in), so that the weights' export (HWIO to OIHW) gives
    PyTorch's (in, out, k, k)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, pad: int,
                 out_pad: int, bias: bool, *, rngs: nnx.Rngs) -> None:
        bound = 1.0 / (cout * kernel * kernel) ** 0.5
        self.kernel = nnx.Param(drawn(rngs.params(), (kernel, kernel, cout, cin),
                                      _symmetric, bound))
        self.bias = nnx.Param(jnp.zeros(cout, jnp.float32)) if bias else None
        self.stride, self.pad, self.out_pad = stride, pad, out_pad

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        k = kernel.shape[0]
        lo = k - 1 - self.pad
        y = jax.lax.conv_general_dilated(
            x, kernel[::-1, ::-1].transpose(0, 1, 3, 2), (1, 1),
            ((lo, lo + self.out_pad), (lo, lo + self.out_pad)),
            lhs_dilation=(self.stride, self.stride),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y if self.bias is None else y + self.bias[...]


class UpConvBNReLU(nnx.Module):
    """A transposed conv (no bias unless ``bias``), then a norm and an activation."""

    def __init__(self, cin: int, cout: int, kernel: int = 4, stride: int = 2, pad: int = 1,
                 out_pad: int = 0, norm: str = "bn", groups: int = 32, act: str = "relu",
                 bias: bool = False, bn_momentum: float = 0.0003, bn_eps: float = 1e-5, *,
                 rngs: nnx.Rngs) -> None:
        self.conv = TransposedConv(cin, cout, kernel, stride, pad, out_pad, bias, rngs=rngs)
        self.bn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "bn" else None
        self.gn = make_norm(norm, cout, groups, bn_momentum, bn_eps) if norm == "gn" else None
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        return activate(normed(self.conv(x), self.bn, self.gn), self.act)


def max_pool(x: jax.Array, window: tuple[int, int], step: tuple[int, int]) -> jax.Array:
    """The maximum over each window of an NHWC array, windows ``step`` apart, no
    padding."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *step, 1),
                                 "VALID")


def adaptive_max_pool(x: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """The maximum over each cell of a grid: ``F.adaptive_max_pool2d``."""
    return grid_pool(x, grid, "max")


def avg_pool(x: jax.Array, window: tuple[int, int], step: tuple[int, int]) -> jax.Array:
    """The average over each window of an NHWC array, windows ``step`` apart, no
    padding."""
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, *window, 1), (1, *step, 1),
                                  "VALID")
    return total / (window[0] * window[1])


class LayerNorm2d(nnx.Module):
    """Layer norm over the channels (the last axis) at each position, with a scale and
    shift per channel: PyTorch's layer_norm, with its biased variance."""

    def __init__(self, channels: int, eps: float = 1e-6, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5, *, rngs: nnx.Rngs) -> None:
        self.weight = nnx.Param(jnp.ones(channels, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(channels, jnp.float32))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + self.eps) * self.weight[...] + self.bias[...]


class PositionAttention(nnx.Module):
    """MAnet's position attention, as segmentation_models_pytorch's PABBlock computes it
    without its output conv: a softmax over the whole n x n map of query-key products
    (n = h * w) weights the values, and the (positions, channels) result is read as
    (channels, h, w), as smp's NCHW reshape reads it, then added to the input."""

    def __init__(self, channels: int, inner: int = 64, bn_momentum: float = 0.0003,
                 bn_eps: float = 1e-5, *, rngs: nnx.Rngs) -> None:
        self.top = nnx.Conv(channels, inner, (1, 1), kernel_init=lecun_normal, rngs=rngs)
        self.center = nnx.Conv(channels, inner, (1, 1), kernel_init=lecun_normal, rngs=rngs)
        self.bottom = nnx.Conv(channels, channels, (3, 3), padding=((1, 1), (1, 1)),
                               kernel_init=lecun_normal, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        keys = self.top(x).reshape(n, h * w, -1)
        queries = self.center(x).reshape(n, h * w, -1)
        values = self.bottom(x).reshape(n, h * w, c)
        weights = jax.nn.softmax((queries @ keys.transpose(0, 2, 1)).reshape(n, -1), axis=1)
        out = (weights.reshape(n, h * w, h * w) @ values).reshape(n, c, h, w)
        return x + out.transpose(0, 2, 3, 1)


#: what the emitter may copy into a file, in order (functions before the classes that
#: call them)
LAYERS: dict[str, Callable[..., object]] = {
    "drawn": drawn,
    "lecun_normal": lecun_normal,
    "_truncated": _truncated,
    "_symmetric": _symmetric,
    "resize_bilinear": resize_bilinear,
    "resize_nearest": resize_nearest,
    "grid_pool": grid_pool,
    "adaptive_avg_pool": adaptive_avg_pool,
    "BatchNorm": BatchNorm,
    "GroupNorm": GroupNorm,
    "activate": activate,
    "make_norm": make_norm,
    "normed": normed,
    "atrous": atrous,
    "ConvBNReLU": ConvBNReLU,
    "SepConvBNReLU": SepConvBNReLU,
    "GridPool": GridPool,
    "WindowPool": WindowPool,
    "TransposedConv": TransposedConv,
    "UpConvBNReLU": UpConvBNReLU,
    "max_pool": max_pool,
    "adaptive_max_pool": adaptive_max_pool,
    "avg_pool": avg_pool,
    "LayerNorm2d": LayerNorm2d,
    "PositionAttention": PositionAttention,
}
