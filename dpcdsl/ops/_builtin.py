"""The built-in ops: each one entry, every fact about it here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from dpcdsl.ops._spec import (
    CELL_CHANNELS,
    Arg,
    Attrs,
    DeeplabForm,
    OpError,
    OpSpec,
    Problem,
    Size,
    Tensor,
    Weight,
)


# --------------------------------------------------------------------------- helpers
def _odd(kernel: int) -> str | None:
    return None if kernel % 2 else f"kernel must be odd for SAME padding, got {kernel}"


def _drop_rate(p: float) -> str | None:
    return None if 0 <= p < 1 else f"expected a number in [0, 1), got {p:g}"


#: the element-wise activations: each is an op (``sigmoid(x)``) and a value of the
#: ``act`` argument of conv-like ops; "none" is the identity
ACTIVATIONS = ("relu", "relu6", "sigmoid", "hardsigmoid", "hardswish", "gelu", "none")
#: the normalisations of conv-like ops: BatchNorm, GroupNorm (``groups``), none
NORMS = ("bn", "gn", "none")


def _positive(n: int) -> str | None:
    return None if n >= 1 else f"expected a positive integer, got {n}"


def _channels(n: int) -> str | None:
    from dpcdsl.limits import MAX_CHANNELS

    if n < 1 or n > MAX_CHANNELS:
        return f"expected 1 to {MAX_CHANNELS:,} channels, got {n:,}"
    return None


CONV_COMMON = (
    Arg("channels", "int", CELL_CHANNELS, check=_channels, doc="output channels"),
    Arg("norm", "word", "bn", words=NORMS,
        doc="after each conv: BatchNorm (bn), GroupNorm (gn, with `groups`) or none"),
    Arg("groups", "int", 32, check=_positive, doc="GroupNorm's groups (norm = gn)"),
    Arg("act", "word", "relu", words=ACTIVATIONS, doc="the activation after each norm"),
    Arg("bias", "bool", False, doc="a bias on each conv"),
)
#: the conv-like arguments of old, now spelled with `norm` and `act`
RENAMED = {"bn": "norm = bn | gn | none (bn = false is norm = none)",
           "relu": "act = relu | relu6 | sigmoid | hardsigmoid | hardswish | gelu | none "
                   "(relu = false is act = none)"}


def norm(prefix: str, channels: int, attrs: Attrs) -> dict[str, Weight]:
    """The canonical weights of the norm after a conv, under ``prefix`` + ``_bn`` or
    ``_gn`` (``bn``/``gn`` alone for an empty prefix); none without a norm."""
    kind = attrs.get("norm", "bn")
    if kind == "none":
        return {}
    name = f"{prefix}_{kind}" if prefix else kind
    out = {f"{name}.weight": Weight((channels,), "norm"),
           f"{name}.bias": Weight((channels,), "norm")}
    if kind == "bn":
        out |= {f"{name}.running_mean": Weight((channels,), "stat"),
                f"{name}.running_var": Weight((channels,), "stat")}
    return out


def _conv(name: str, cout: int, cin: int, k: int, attrs: Attrs,
          groups: int = 1) -> dict[str, Weight]:
    """A conv's weight (OIHW) and, with ``bias``, its bias."""
    out = {f"{name}.weight": Weight((cout, cin // groups, k, k))}
    if attrs.get("bias", False):
        out[f"{name}.bias"] = Weight((cout,))
    return out


def conv_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    return {**_conv("conv", out.channels, ins[0].channels, attrs["kernel"], attrs),
            **norm("", out.channels, attrs)}


def sepconv_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    k, cin = attrs["kernel"], ins[0].channels
    return {**_conv("depthwise", cin, cin, k, attrs, groups=cin),
            **(norm("depthwise", cin, attrs) if attrs.get("inner", True) else {}),
            **_conv("pointwise", out.channels, cin, 1, attrs),
            **norm("pointwise", out.channels, attrs)}


def pool_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    return {**_conv("conv", out.channels, ins[0].channels, 1, attrs),
            **norm("", out.channels, attrs)}


def dense_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                weights: Mapping[str, Weight]) -> int:
    """Every conv weight once per output position (biases are adds, not counted)."""
    h, w = out.size or (0, 0)
    return sum(t.size for t in weights.values() if t.kind == "weight" and len(t.shape) == 4
               ) * h * w


def used_taps(kernel: int, rate: int, size: int) -> int:
    """How many taps of one axis of a SAME-padded atrous kernel can touch real pixels
    on a map of ``size``: tap ``j`` reads ``j * rate`` from the centre, only padding
    once that reaches the size. The backends' layers skip the others."""
    return 2 * min(kernel // 2, (size - 1) // rate) + 1


def atrous_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                 weights: Mapping[str, Weight]) -> int:
    """The multiply-adds an atrous conv computes: every conv weight once per output
    position, less the taps that read only padding at the input's size."""
    h, w = out.size or (0, 0)
    size, (rh, rw) = ins[0].size, attrs["rate"]
    total = 0
    for t in weights.values():
        if t.kind != "weight" or len(t.shape) != 4:
            continue
        o, i, kh, kw = t.shape
        if size is not None:
            kh, kw = used_taps(kh, rh, size[0]), used_taps(kw, rw, size[1])
        total += o * i * kh * kw
    return total * h * w


def _check_groups(attrs: Attrs, *channels: int) -> None:
    if attrs.get("norm") == "gn":
        g = attrs["groups"]
        for c in channels:
            if c % g:
                raise OpError(f"GroupNorm of {c} channels in {g} groups: the channels "
                              "must be a multiple of the groups",
                              hint=f"pick groups among the divisors of {c}")


def conv_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    """The conv's channels, and its size: SAME padding, so (h - 1) // stride + 1."""
    _check_groups(attrs, int(attrs["channels"]))
    s, size = attrs.get("stride", 1), ins[0].size
    out = None if size is None else ((size[0] - 1) // s + 1, (size[1] - 1) // s + 1)
    return Tensor(int(attrs["channels"]), out)


def _sepconv_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    if attrs.get("inner", True):
        _check_groups(attrs, ins[0].channels)
    return conv_out(attrs, ins)


def _tail(attrs: Attrs) -> str:
    """`` gn sigmoid +b``: what differs from conv + BN + ReLU without bias."""
    norm = attrs.get("norm", "bn")
    parts = ["" if norm == "bn" else "no norm" if norm == "none" else norm,
             {"relu": "", "none": "no act"}.get(attrs.get("act", "relu"), attrs.get("act")),
             "+b" if attrs.get("bias") else ""]
    return "".join(f" {p}" for p in parts if p)


def rate_label(op: str, attrs: Attrs) -> str:
    """``sepconv 3x3 r(1,6)``: the kernel, and the rate where it is not 1."""
    k, (rh, rw) = attrs["kernel"], attrs["rate"]
    r = "" if (rh, rw) == (1, 1) else f" r{rh}" if rh == rw else f" r({rh},{rw})"
    return f"{op} {k}x{k}{r}{_tail(attrs)}"


#: the arguments of an atrous conv: its kernel, its rate, and whether the rate follows
#: the output stride
ATROUS = (
    Arg("rate", "pair", (1, 1)),
    Arg("stride", "int", 1, check=_positive, doc="the conv's stride (SAME padding)"),
    Arg("atrous", "bool", True,
        doc="the rate is written for output stride 16 and doubles at 8, as in ASPP and "
            "the DPC (a rate of 1 included); false: it stays as written (a decoder's or a "
            "refinement's conv)"),
)


def scale_rate(attrs: Attrs, scale: Any, output_stride: int) -> dict[str, Any]:
    """Rates of an atrous conv (kernel above 1) scale with the output stride."""
    if attrs["kernel"] == 1 or not attrs.get("atrous", True):
        return dict(attrs)
    return {**attrs, "rate": tuple(scale(r) for r in attrs["rate"])}


def rate_at_size(attrs: Attrs, ins: list[Tensor]) -> dict[str, Any]:
    """The rate of the same computation on this input: with SAME padding, a tap ``j *
    rate`` away from the centre reads only padding once ``rate`` reaches the map's size
    on that axis, so every such rate is the size; a 1x1 kernel has no rate at all."""
    size = ins[0].size
    if attrs["kernel"] == 1:
        return {**attrs, "rate": (1, 1)}
    if size is None:
        return dict(attrs)
    return {**attrs, "rate": tuple(min(r, n) for r, n in zip(attrs["rate"], size))}


def _padding_rates(default_kernel: int) -> Callable[..., list[Problem]]:
    """The ``validate`` rule of an atrous conv whose kernel defaults to
    ``default_kernel``: :func:`_padding_rate_warning`."""
    return functools.partial(_padding_rate_warning, default_kernel)


def _padding_rate_warning(default_kernel: int, values: Mapping[str, list[Any]],
                          size: Size | None) -> list[Problem]:
    """A warning for rates that, on a map of ``size`` (as given to ``dpcc check
    --size``, at the output stride the rates are written for), read only padding with
    the outer taps: they are all the same computation, so a space holding several of
    them holds the same architecture more than once."""
    if size is None or all(k == 1 for k in values.get("kernel", [default_kernel])):
        return []
    over: dict[int, set[int]] = {0: set(), 1: set()}
    for r in values.get("rate", []):
        pair = (r, r) if isinstance(r, int) else tuple(r) * (2 if len(r) == 1 else 1)
        for axis, (v, n) in enumerate(zip(pair, size)):
            if isinstance(v, int) and v >= n:
                over[axis].add(v)
    if not over[0] and not over[1]:
        return []
    axes = " and ".join(f"{'hw'[a]} {', '.join(map(str, sorted(v)))}"
                        for a, v in over.items() if v)
    return [Problem("rate", f"rates ({axes}) are at least the {size[0]}x{size[1]} feature "
                    "map: their outer taps read only zero padding, so each is the same "
                    "computation as a rate equal to the map's size",
                    hint="drop them, or check at the feature size the cell will see; a "
                    "search at this size trains such architectures once",
                    severity="warning")]


def reference_window(crop: int, output_stride: int, grid: int) -> int:
    """The DeepLab pooling window: floor((crop - 1) / (OS * g) + 1)."""
    return (crop - 1) // (output_stride * grid) + 1


def feature_size(crop: int, output_stride: int) -> int:
    """floor((crop - 1) / OS + 1), the backbone's feature size for a crop."""
    return (crop - 1) // output_stride + 1


def pool_window(attrs: Attrs) -> Size:
    """The averaging window (h, w): the window mode's own, or the reference mode's,
    worked out from the crop and the output stride."""
    if attrs["mode"] == "window":
        return tuple(attrs["window"])  # type: ignore[return-value]
    (ch, cw), stride = attrs["crop"], attrs["output_stride"]
    gh, gw = attrs["grid"]
    return reference_window(ch, stride, gh), reference_window(cw, stride, gw)


def pooled_size(attrs: Attrs, size: Size) -> Size:
    """The size of a pool's map between averaging and the 1x1 conv: the grid in paper
    mode, ``size - window + 1`` for the reference's stride-1 window."""
    h, w = size
    if attrs["mode"] == "window":
        (kh, kw), (sh, sw) = pool_window(attrs), attrs["step"]
        if kh > h or kw > w:
            raise OpError(f"the pooling window {kh}x{kw} is larger than the {h}x{w} "
                          "feature map")
        return (h - kh) // sh + 1, (w - kw) // sw + 1
    if attrs["mode"] == "paper":  # adaptive: a grid finer than the map repeats pixels
        return tuple(attrs["grid"])  # type: ignore[return-value]
    gh, gw = attrs["grid"]
    if gh > h or gw > w:
        raise OpError(f"pool grid {gh}x{gw} is larger than the {h}x{w} feature map")
    ph, pw = (s - k + 1 for s, k in zip(size, pool_window(attrs)))
    if ph < 1 or pw < 1:
        ch, cw = attrs["crop"]
        raise OpError(f"the reference pooling window for crop {ch}x{cw} is larger than "
                      f"the {h}x{w} feature map")
    return ph, pw


def _pool_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    if ins[0].size is not None:
        pooled_size(attrs, ins[0].size)
    return conv_out(attrs, ins)


def _pool_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                weights: Mapping[str, Weight]) -> int:
    ph, pw = pooled_size(attrs, ins[0].size or (0, 0))
    return weights["conv.weight"].size * ph * pw


def _pool_validate(values: Mapping[str, list[Any]], size: Size | None) -> list[Problem]:
    out = []
    if "reference" in values.get("mode", ["paper"]) and "crop" not in values:
        out.append(Problem(None, "pool(mode = reference) uses the DeepLab window, which "
                           "needs the crop size",
                           hint="add e.g. `crop = 513` (and `output_stride = 16`)"))
    if "window" in values.get("mode", ["paper"]) and "window" not in values:
        out.append(Problem(None, "pool(mode = window) averages over a window it needs",
                           hint="add e.g. `window = (49, 49), step = (16, 20)`, LR-ASPP's"))
    if size is not None and "window" in values.get("mode", ["paper"]):
        for k in values.get("window", []):
            kh, kw = (k, k) if isinstance(k, int) else k
            if isinstance(kh, int) and isinstance(kw, int) and \
                    (kh > size[0] or kw > size[1]):
                out.append(Problem("window", f"the pooling window {kh}x{kw} is larger than "
                                   f"the {size[0]}x{size[1]} feature map"))
                break
    return out


def _pool_stride(attrs: Attrs, scale: Any, output_stride: int) -> dict[str, Any]:
    if attrs["mode"] != "reference":
        return dict(attrs)
    return {**attrs, "output_stride": output_stride}


def _pool_label(attrs: Attrs) -> str:
    if attrs["mode"] == "window":
        (kh, kw), (sh, sw) = attrs["window"], attrs["step"]
        return f"pool {kh}x{kw} /({sh},{sw})" + _tail(attrs)
    g = attrs["grid"]
    return f"pool {g[0]}x{g[1]}" + ("" if attrs["mode"] == "paper" else " reference") + \
        _tail(attrs)


def _same_sizes(op: str, ins: list[Tensor]) -> None:
    sizes = {t.size for t in ins if t.size is not None}
    if len(sizes) > 1:
        raise OpError(f"{op} of feature maps of different sizes {sorted(sizes)}; upsample "
                      "them first")


def _concat_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    _same_sizes("concat", ins)
    return Tensor(sum(t.channels for t in ins), ins[0].size)


def _sum_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    """Equal channels, and equal sizes or 1x1 (an image-level value, broadcast)."""
    channels = [t.channels for t in ins]
    if len(set(channels)) > 1:
        raise OpError(f"sum of inputs with different channel counts {channels}")
    sizes = {t.size for t in ins if t.size is not None} - {(1, 1)}
    if len(sizes) > 1:
        raise OpError(f"sum of feature maps of different sizes {sorted(sizes)}; only a 1x1 "
                      "map broadcasts")
    return Tensor(channels[0], next(iter(sizes)) if sizes else ins[0].size)


RESIZE_COMMON = (
    Arg("mode", "word", "bilinear", words=("bilinear", "nearest"),
        doc="bilinear, or nearest as F.interpolate's 'nearest'"),
    Arg("align_corners", "bool", True,
        doc="bilinear only: corner pixels aligned, as the DeepLab reference and smp's "
            "decoders resize; false as torchvision's heads do"),
)


def _upsample_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    return Tensor(ins[0].channels, ins[1].size)


def _resize_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    if tuple(attrs["size"]) != (0, 0):
        return Tensor(ins[0].channels, tuple(attrs["size"]))  # type: ignore[arg-type]
    s, size = attrs["scale"], ins[0].size
    return Tensor(ins[0].channels, None if size is None else (size[0] * s, size[1] * s))


def _resize_validate(values: Mapping[str, list[Any]], size: Size | None) -> list[Problem]:
    if ("scale" in values) == ("size" in values):
        return [Problem(None, "resize needs a scale or a size, not both",
                        hint="resize(x, scale = 2), or resize(x, size = (33, 33)); "
                             "upsample(x, like = y) resizes to another tensor's size")]
    return []


def _resize_label(attrs: Attrs) -> str:
    how = f"x{attrs['scale']}" if attrs["scale"] else "to {}x{}".format(*attrs["size"])
    return f"resize {how}" + ("" if attrs["mode"] == "bilinear" else " nearest")


def _mul_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    """Equal channels (or 1, broadcast) and equal sizes (or 1x1, broadcast): a gate."""
    channels = {t.channels for t in ins} - {1}
    if len(channels) > 1:
        raise OpError(f"mul of inputs with different channel counts "
                      f"{[t.channels for t in ins]}; only a 1-channel input broadcasts")
    sizes = {t.size for t in ins if t.size is not None} - {(1, 1)}
    if len(sizes) > 1:
        raise OpError(f"mul of feature maps of different sizes {sorted(sizes)}; only a 1x1 "
                      "map broadcasts")
    size = next(iter(sizes)) if sizes else next((t.size for t in ins), None)
    return Tensor(next(iter(channels)) if channels else 1, size)


# -------------------------------------------------------------------- DeepLab JSON
def json_pair(item: Mapping[str, Any], key: str) -> tuple[int, int]:
    v = item.get(key)
    if not (isinstance(v, list) and len(v) == 2 and
            all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)):
        raise OpError(f"`{key}` must be a list of two positive integers, got {v!r}")
    return v[0], v[1]


def pair_text(h: int, w: int) -> str:
    return str(h) if h == w else f"({h}, {w})"


def json_kernel(item: Mapping[str, Any]) -> int:
    """A reference ``conv``'s kernel: ``k`` or ``[k, k]``, as the reference accepts it;
    square and odd (SAME padding), or 1."""
    k = item.get("kernel")
    if isinstance(k, list) and len(k) == 2 and k[0] == k[1]:
        k = k[0]
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
        raise OpError(f"`kernel` must be 1 or an odd size (k or [k, k]), got "
                      f"{item.get('kernel')!r}",
                      hint="dpcdsl's separable convs are square with SAME padding")
    return k


def _conv_from_json(item: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    if item.get("op") != "conv" or json_kernel(item) != 1:
        return None
    return "kernel = 1"  # the reference ignores a 1x1 conv's rate


def _sepconv_from_json(item: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    if item.get("op") != "conv":
        return None
    k = json_kernel(item)
    if k == 1:
        return None
    return f"kernel = {k}, rate = {pair_text(*json_pair(item, 'rate'))}"


def _pool_from_json(item: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    if item.get("op") != "pyramid_pooling":
        return None
    grid = f"grid = {pair_text(*json_pair(item, 'grid_size'))}"
    if options.get("pooling", "reference") == "paper":
        return grid
    crop = options.get("crop")
    if crop is None:
        raise OpError("the reference pools over a window set by the crop size, which the "
                      "JSON does not hold",
                      hint="give the crop (dpcc import-deeplab --crop 513), or import the "
                      "paper's grid form (--pooling paper)")
    return f"{grid}, mode = reference, crop = {pair_text(*crop)}"


CONV_JSON = DeeplabForm(
    "conv",
    to_json=lambda a: {"kernel": 1, "rate": [1, 1], "op": "conv"} if a["kernel"] == 1
    else None,
    from_json=_conv_from_json,
)

SEPCONV_JSON = DeeplabForm(
    "conv",
    to_json=lambda a: {"kernel": a["kernel"], "rate": list(a["rate"]), "op": "conv"},
    from_json=_sepconv_from_json,
)

POOL_JSON = DeeplabForm(
    "pyramid_pooling",
    to_json=lambda a: {"op": "pyramid_pooling", "grid_size": list(a["grid"])},
    from_json=_pool_from_json,
)


def _window_pool_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    """A fixed grid (adaptive), or one value per window, windows ``step`` apart with no
    padding (floor: PyTorch's MaxPool2d and AvgPool2d)."""
    c, size = ins[0].channels, ins[0].size
    if tuple(attrs["grid"]) != (0, 0):
        return Tensor(c, tuple(attrs["grid"]))  # type: ignore[arg-type]
    if size is None:
        return Tensor(c, None)
    window, step = tuple(attrs["window"]), _window_step(attrs)
    if window[0] > size[0] or window[1] > size[1]:
        raise OpError(f"a {window[0]}x{window[1]} pooling window is larger than the "
                      f"{size[0]}x{size[1]} map")
    return Tensor(c, ((size[0] - window[0]) // step[0] + 1,
                      (size[1] - window[1]) // step[1] + 1))


def _window_step(attrs: Attrs) -> tuple[int, int]:
    """The windows' stride: the window's own unless given (PyTorch's default)."""
    step = tuple(attrs["step"])
    return tuple(attrs["window"]) if step == (0, 0) else step  # type: ignore[return-value]


def _window_pool(op: str, what: str, module: str, example: str) -> OpSpec:
    """``maxpool`` or ``avgpool``: the ``what`` (maximum, average) over each window with
    no padding (nn.<module>), or over each cell of a fixed grid (nn.Adaptive<module>).
    A grid of 1 keeps the 1x1 result, which a ``mul`` broadcasts over a map."""

    def validate(values: Mapping[str, list[Any]], size: Size | None) -> list[Problem]:
        if "grid" in values and ("window" in values or "step" in values):
            return [Problem("grid", f"an adaptive {op} (grid) takes no window or step",
                            hint=f"{op}(x, grid = 2), or {op}(x, window = 2, step = 2)")]
        return []

    def label(attrs: Attrs) -> str:
        if tuple(attrs["grid"]) != (0, 0):
            return f"{op} to " + "{}x{}".format(*attrs["grid"])
        window, step = tuple(attrs["window"]), _window_step(attrs)
        return f"{op} " + "{}x{}".format(*window) + \
            ("" if step == window else " step {}x{}".format(*step))

    return OpSpec(
        op, 1, 1,
        (Arg("window", "pair", (2, 2), doc=f"the window of each {what}"),
         Arg("step", "pair", (0, 0), doc="the windows' stride (default: the window)"),
         Arg("grid", "pair", (0, 0),
             doc=f"adaptive instead: the {what} over each cell of a fixed grid, with "
                 f"PyTorch's cell bounds (nn.Adaptive{module})")),
        f"{what} over windows with no padding (nn.{module}), or over a grid's cells",
        out=_window_pool_out, validate=validate, label=label, color="#d8ecd2",
        example=example)


def _layernorm_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    return {"weight": Weight((out.channels,), "norm"), "bias": Weight((out.channels,), "norm")}


def _eps(eps: float) -> str | None:
    return None if 0 < eps < 1 else f"expected a number in (0, 1), got {eps:g}"


def _upconv_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    """nn.ConvTranspose2d's size: (h - 1) * stride - 2 * pad + kernel + out_pad."""
    _check_groups(attrs, int(attrs["channels"]))
    size = ins[0].size
    if size is None:
        return Tensor(int(attrs["channels"]), None)
    k, s, p, op = attrs["kernel"], attrs["stride"], attrs["pad"], attrs["out_pad"]
    out = tuple((n - 1) * s - 2 * p + k + op for n in size)
    if min(out) < 1:
        raise OpError(f"a transposed conv of kernel {k}, stride {s} and pad {p} leaves no "
                      f"output of the {size[0]}x{size[1]} map")
    return Tensor(int(attrs["channels"]), out)  # type: ignore[arg-type]


def _upconv_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    """nn.ConvTranspose2d's weight, (in, out, k, k), and its norm."""
    k, cin = attrs["kernel"], ins[0].channels
    weights = {"conv.weight": Weight((cin, out.channels, k, k))}
    if attrs.get("bias", False):
        weights["conv.bias"] = Weight((out.channels,))
    return {**weights, **norm("", out.channels, attrs)}


def _upconv_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                  weights: Mapping[str, Weight]) -> int:
    """Every weight once per input position: each input pixel spreads over a k x k patch
    of the output."""
    h, w = ins[0].size or (0, 0)
    return weights["conv.weight"].size * h * w


def _upconv_validate(values: Mapping[str, list[Any]], size: Size | None) -> list[Problem]:
    for k in values.get("kernel", []):
        for p in values.get("pad", []):
            if isinstance(k, int) and isinstance(p, int) and 2 * p >= k + 1:
                return [Problem("pad", f"a pad of {p} takes more than the kernel of {k} "
                                "adds", hint="pad at most kernel // 2")]
    for s in values.get("stride", [2]):
        for op in values.get("out_pad", []):
            if isinstance(s, int) and isinstance(op, int) and op >= s:
                return [Problem("out_pad", f"out_pad {op} must be smaller than the stride "
                                f"{s}", hint="nn.ConvTranspose2d's output_padding < stride")]
    return []


def _attention_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    """smp's PABBlock's three biased convs: 1x1 queries and keys of ``inner`` channels, a
    3x3 value map of the input's width."""
    c, p = ins[0].channels, int(attrs["inner"])
    return {"top.weight": Weight((p, c, 1, 1)), "top.bias": Weight((p,)),
            "center.weight": Weight((p, c, 1, 1)), "center.bias": Weight((p,)),
            "bottom.weight": Weight((c, c, 3, 3)), "bottom.bias": Weight((c,))}


def _attention_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                     weights: Mapping[str, Weight]) -> int:
    """The convs at every position, then the two products over positions: queries by
    keys (n x n x inner), weights by values (n x n x channels), n = h * w."""
    h, w = ins[0].size or (0, 0)
    n = h * w
    convs = sum(weights[f"{k}.weight"].size for k in ("top", "center", "bottom")) * n
    return convs + n * n * (int(attrs["inner"]) + ins[0].channels)


BUILTIN: tuple[OpSpec, ...] = (
    OpSpec(
        "conv", 1, 1,
        (Arg("kernel", "int", 1, check=_odd), *ATROUS, *CONV_COMMON),
        "dense k x k atrous conv, then BN and ReLU",
        out=conv_out, weights=conv_weights, madds=dense_madds, computed_madds=atrous_madds,
        label=lambda a: rate_label("conv", a), at_output_stride=scale_rate,
        validate=_padding_rates(1), at_size=rate_at_size,
        projects=lambda a: a["kernel"] == 1, deeplab=CONV_JSON, color="#fde2c8",
        example="conv(x, kernel = 3, rate = (1, 2), channels = 6)",
    ),
    OpSpec(
        "sepconv", 1, 1,
        (Arg("kernel", "int", 3, check=_odd), *ATROUS, *CONV_COMMON,
         Arg("inner", "bool", True,
             doc="a norm and activation between the depthwise and the pointwise conv (the "
                 "DPC paper's); false: only after the pointwise (Xception's, smp's)")),
        "depthwise k x k atrous conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU",
        out=_sepconv_out, weights=sepconv_weights, madds=dense_madds,
        computed_madds=atrous_madds,
        label=lambda a: rate_label("sepconv", a), at_output_stride=scale_rate,
        validate=_padding_rates(3), at_size=rate_at_size,
        deeplab=SEPCONV_JSON, color="#fbd0a8",
        example="sepconv(x, kernel = 3, rate = (2, 1), channels = 6)",
    ),
    OpSpec(
        "pool", 1, 1,
        (
            Arg("grid", "pair", (1, 1)),
            Arg("mode", "word", "paper", words=("paper", "reference", "window")),
            Arg("window", "pair", (1, 1), doc="mode = window: the averaging window"),
            Arg("step", "pair", (1, 1), doc="mode = window: the window's stride"),
            Arg("crop", "pair", (0, 0), doc="crop size, needed by mode = reference"),
            Arg("output_stride", "int", 16),
            *CONV_COMMON,
            Arg("align_corners", "bool", False,
                doc="paper mode's upsampling back aligns corners (PSPNet's, smp's); the "
                    "reference mode always does"),
        ),
        "average pooling to a grid, 1x1 conv + BN + ReLU, bilinear upsampling back",
        out=_pool_out, weights=pool_weights, madds=_pool_madds, label=_pool_label,
        at_output_stride=_pool_stride, validate=_pool_validate, deeplab=POOL_JSON,
        color="#d8ecd2", example="pool(x, grid = (2, 3), channels = 6)",
    ),
    OpSpec("upsample", 1, 1,
           (Arg("like", "tensor"), *RESIZE_COMMON),
           "resize to the size of `like`",
           out=_upsample_out, example="upsample(small, like = x)"),
    OpSpec("resize", 1, 1,
           (Arg("scale", "int", 0, doc="an integer factor (h * scale, w * scale)"),
            Arg("size", "pair", (0, 0), doc="a fixed size (h, w)"),
            *RESIZE_COMMON),
           "resize by an integer factor or to a fixed size",
           out=_resize_out, validate=_resize_validate, label=_resize_label,
           example="resize(small, scale = 2)"),
    OpSpec("concat", 1, None, (), "concatenation along channels", out=_concat_out,
           gathers=True, color="#eeeeee", example="concat(x, x)"),
    OpSpec("sum", 1, None, (), "element-wise sum; all inputs have equal channels (a 1x1 "
           "input broadcasts)",
           out=_sum_out, color="#eeeeee", example="sum(x, x)"),
    OpSpec("mul", 2, None, (), "element-wise product (a 1-channel or 1x1 input broadcasts)",
           out=_mul_out, color="#eeeeee", example="mul(x, sigmoid(x))"),
    *(OpSpec(act, 1, 1, (), f"element-wise {act}", color="#f4f4f4", example=f"{act}(x)")
      for act in ACTIVATIONS if act != "none"),
    OpSpec("dropout", 1, 1, (Arg("p", "float", 0.1, check=_drop_rate),
                             Arg("spatial", "bool", False,
                                 doc="drop whole channels (nn.Dropout2d)")),
           "dropout with drop rate p",
           label=lambda a: f"dropout {a['p']:g}", passthrough=True,
           example="dropout(x, p = 0.2)"),
    OpSpec("identity", 1, 1, (), "the input, unchanged", passthrough=True,
           example="identity(x)"),
    OpSpec("upconv", 1, 1,
           (Arg("kernel", "int", 4, doc="the kernel, even or odd"),
            Arg("stride", "int", 2, check=_positive, doc="the upsampling factor"),
            Arg("pad", "natural", 1, doc="taken off each side (ConvTranspose2d's padding)"),
            Arg("out_pad", "natural", 0,
                doc="added to one side (ConvTranspose2d's output_padding)"),
            *CONV_COMMON),
           "transposed conv (nn.ConvTranspose2d: (h - 1) * stride - 2 * pad + kernel + "
           "out_pad), then norm and activation",
           out=_upconv_out, weights=_upconv_weights, madds=_upconv_madds,
           validate=_upconv_validate,
           label=lambda a: f"upconv {a['kernel']}x{a['kernel']} x{a['stride']}{_tail(a)}",
           color="#fde2c8", example="upconv(x, channels = 6)"),
    _window_pool("maxpool", "maximum", "MaxPool2d", "maxpool(x)"),
    _window_pool("avgpool", "average", "AvgPool2d", "avgpool(x)"),
    OpSpec("position_attention", 1, 1,
           (Arg("inner", "int", 64, check=_channels,
                doc="the channels of the queries and keys (smp's pab_channels)"),),
           "MAnet's position attention, as smp's PABBlock computes it (without its output "
           "conv): the input plus a softmax-weighted sum of a 3x3 conv's values over all "
           "positions",
           weights=_attention_weights, madds=_attention_madds,
           label=lambda a: f"position attention {a['inner']}", color="#e6dcf2",
           example="position_attention(x, inner = 4)"),
    OpSpec("layernorm", 1, 1,
           (Arg("eps", "float", 1e-6, check=_eps, doc="added to the variance"),),
           "layer norm over the channels at each position, with a scale and shift per "
           "channel (smp's LayerNorm2d)",
           weights=_layernorm_weights, label=lambda a: "layernorm", color="#f4f4f4",
           example="layernorm(x)"),
)
