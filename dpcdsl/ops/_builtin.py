"""The built-in ops: each one entry, every fact about it here."""

from __future__ import annotations

from collections.abc import Mapping
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


CONV_COMMON = (
    Arg("channels", "int", CELL_CHANNELS, doc="output channels"),
    Arg("bn", "bool", True, doc="BatchNorm after each conv"),
    Arg("relu", "bool", True, doc="ReLU after each BatchNorm"),
)


def norm(prefix: str, channels: int, bn: bool) -> dict[str, Weight]:
    """A BatchNorm's canonical weights under ``prefix`` (none when ``bn`` is off)."""
    if not bn:
        return {}
    return {f"{prefix}.weight": Weight((channels,), "norm"),
            f"{prefix}.bias": Weight((channels,), "norm"),
            f"{prefix}.running_mean": Weight((channels,), "stat"),
            f"{prefix}.running_var": Weight((channels,), "stat")}


def conv_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    k = attrs["kernel"]
    return {"conv.weight": Weight((out.channels, ins[0].channels, k, k)),
            **norm("bn", out.channels, attrs["bn"])}


def sepconv_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    k, cin = attrs["kernel"], ins[0].channels
    return {"depthwise.weight": Weight((cin, 1, k, k)),
            **norm("depthwise_bn", cin, attrs["bn"]),
            "pointwise.weight": Weight((out.channels, cin, 1, 1)),
            **norm("pointwise_bn", out.channels, attrs["bn"])}


def pool_weights(attrs: Attrs, ins: list[Tensor], out: Tensor) -> dict[str, Weight]:
    return {"conv.weight": Weight((out.channels, ins[0].channels, 1, 1)),
            **norm("bn", out.channels, attrs["bn"])}


def dense_madds(attrs: Attrs, ins: list[Tensor], out: Tensor,
                weights: Mapping[str, Weight]) -> int:
    """Every conv weight once per output position."""
    h, w = out.size or (0, 0)
    return sum(t.size for t in weights.values() if t.kind == "weight") * h * w


def conv_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    return Tensor(int(attrs["channels"]), ins[0].size)


def rate_label(op: str, attrs: Attrs) -> str:
    """``sepconv 3x3 r(1,6)``: the kernel, and the rate where it is not 1."""
    k, (rh, rw) = attrs["kernel"], attrs["rate"]
    r = "" if (rh, rw) == (1, 1) else f" r{rh}" if rh == rw else f" r({rh},{rw})"
    return f"{op} {k}x{k}{r}"


def scale_rate(attrs: Attrs, scale: Any, output_stride: int) -> dict[str, Any]:
    """Rates of an atrous conv (kernel above 1) scale with the output stride."""
    if attrs["kernel"] == 1:
        return dict(attrs)
    return {**attrs, "rate": tuple(scale(r) for r in attrs["rate"])}


def reference_window(crop: int, output_stride: int, grid: int) -> int:
    """The DeepLab pooling window: floor((crop - 1) / (OS * g) + 1)."""
    return (crop - 1) // (output_stride * grid) + 1


def feature_size(crop: int, output_stride: int) -> int:
    """floor((crop - 1) / OS + 1), the backbone's feature size for a crop."""
    return (crop - 1) // output_stride + 1


def pool_window(attrs: Attrs) -> Size:
    """The reference mode's averaging window (h, w)."""
    (ch, cw), stride = attrs["crop"], attrs["output_stride"]
    gh, gw = attrs["grid"]
    return reference_window(ch, stride, gh), reference_window(cw, stride, gw)


def pooled_size(attrs: Attrs, size: Size) -> Size:
    """The size of a pool's map between averaging and the 1x1 conv: the grid in paper
    mode, ``size - window + 1`` for the reference's stride-1 window."""
    h, w = size
    gh, gw = attrs["grid"]
    if gh > h or gw > w:
        raise OpError(f"pool grid {gh}x{gw} is larger than the {h}x{w} feature map")
    if attrs["mode"] == "paper":
        return gh, gw
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
    if size is not None:
        for g in values.get("grid", []):
            gh, gw = (g, g) if isinstance(g, int) else g
            if isinstance(gh, int) and isinstance(gw, int) and \
                    (gh > size[0] or gw > size[1]):
                out.append(Problem("grid", f"pool grid {gh}x{gw} is larger than the "
                                   f"{size[0]}x{size[1]} feature map"))
                break
    return out


def _pool_stride(attrs: Attrs, scale: Any, output_stride: int) -> dict[str, Any]:
    if attrs["mode"] != "reference":
        return dict(attrs)
    return {**attrs, "output_stride": output_stride}


def _pool_label(attrs: Attrs) -> str:
    g = attrs["grid"]
    return f"pool {g[0]}x{g[1]}" + ("" if attrs["mode"] == "paper" else " reference")


def _same_sizes(op: str, ins: list[Tensor]) -> None:
    sizes = {t.size for t in ins if t.size is not None}
    if len(sizes) > 1:
        raise OpError(f"{op} of feature maps of different sizes {sorted(sizes)}; upsample "
                      "them first")


def _concat_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    _same_sizes("concat", ins)
    return Tensor(sum(t.channels for t in ins), ins[0].size)


def _sum_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    channels = [t.channels for t in ins]
    if len(set(channels)) > 1:
        raise OpError(f"sum of inputs with different channel counts {channels}")
    _same_sizes("sum", ins)
    return ins[0]


def _upsample_out(attrs: Attrs, ins: list[Tensor]) -> Tensor:
    return Tensor(ins[0].channels, ins[1].size)


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


BUILTIN: tuple[OpSpec, ...] = (
    OpSpec(
        "conv", 1, 1,
        (Arg("kernel", "int", 1, check=_odd), Arg("rate", "pair", (1, 1)), *CONV_COMMON),
        "dense k x k atrous conv, then BN and ReLU",
        out=conv_out, weights=conv_weights, madds=dense_madds,
        label=lambda a: rate_label("conv", a), at_output_stride=scale_rate,
        projects=lambda a: a["kernel"] == 1, deeplab=CONV_JSON, color="#fde2c8",
        example="conv(x, kernel = 3, rate = (1, 2), channels = 6)",
    ),
    OpSpec(
        "sepconv", 1, 1,
        (Arg("kernel", "int", 3, check=_odd), Arg("rate", "pair", (1, 1)), *CONV_COMMON),
        "depthwise k x k atrous conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU",
        out=conv_out, weights=sepconv_weights, madds=dense_madds,
        label=lambda a: rate_label("sepconv", a), at_output_stride=scale_rate,
        deeplab=SEPCONV_JSON, color="#fbd0a8",
        example="sepconv(x, kernel = 3, rate = (2, 1), channels = 6)",
    ),
    OpSpec(
        "pool", 1, 1,
        (
            Arg("grid", "pair", (1, 1)),
            Arg("mode", "word", "paper", words=("paper", "reference")),
            Arg("crop", "pair", (0, 0), doc="crop size, needed by mode = reference"),
            Arg("output_stride", "int", 16),
            *CONV_COMMON,
        ),
        "average pooling to a grid, 1x1 conv + BN + ReLU, bilinear upsampling back",
        out=_pool_out, weights=pool_weights, madds=_pool_madds, label=_pool_label,
        at_output_stride=_pool_stride, validate=_pool_validate, deeplab=POOL_JSON,
        color="#d8ecd2", example="pool(x, grid = (2, 3), channels = 6)",
    ),
    OpSpec("upsample", 1, 1,
           (Arg("like", "tensor"),
            Arg("align_corners", "bool", True,
                doc="corner pixels aligned, as the DeepLab reference and smp's decoders "
                    "resize; false as torchvision's heads do")),
           "bilinear resize to the size of `like`",
           out=_upsample_out, example="upsample(small, like = x, align_corners = false)"),
    OpSpec("concat", 1, None, (), "concatenation along channels", out=_concat_out,
           gathers=True, color="#eeeeee", example="concat(x, x)"),
    OpSpec("sum", 1, None, (), "element-wise sum; all inputs have equal channels",
           out=_sum_out, color="#eeeeee", example="sum(x, x)"),
    OpSpec("dropout", 1, 1, (Arg("p", "float", 0.1, check=_drop_rate),),
           "dropout with drop rate p",
           label=lambda a: f"dropout {a['p']:g}", passthrough=True,
           example="dropout(x, p = 0.2)"),
    OpSpec("identity", 1, 1, (), "the input, unchanged", passthrough=True,
           example="identity(x)"),
)
