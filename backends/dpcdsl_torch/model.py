"""Full segmentation models: a backbone, a compiled head cell, an optional decoder
cell (DeepLabv3+), and a 1x1 classifier, with logits resized to the image.

A backbone is an ``nn.Module`` whose forward returns a list of feature maps, with
``channels`` and ``reductions`` (one per map) and ``output_stride``. Two kinds are
built in: :class:`TinyBackbone`, small enough for CPU demos and tests, and
:class:`TimmBackbone`, any timm model with ``features_only=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dpcdsl.compiler.rewrite import at_output_stride
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels
from dpcdsl.lang.levels import Level, parse_level
from dpcdsl.lang.space import as_space
from dpcdsl.train.data.formats import IMAGENET, Normalisation
from dpcdsl.train.data.task import input_levels
from dpcdsl_torch._emit import BN_EPS, BN_MOMENTUM, build

OUTPUT_STRIDES = (8, 16)


def _check_stride(output_stride: int) -> None:
    if output_stride not in OUTPUT_STRIDES:
        raise DpcError.at(None, f"output stride {output_stride} is not supported",
                          hint="use 8 or 16", code="DPC706")


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


#: the level of the image itself (stride 1), which a cell's input may read (``x @ 1``)
IMAGE = -1_000


class Backbone(nn.Module):
    """What a segmentation model needs of a backbone: a forward that returns a list of
    feature maps, their ``channels`` and ``reductions`` (strides), the
    ``output_stride`` of the last one, and the ``normalisation`` its weights expect of
    images in [0, 1]."""

    channels: list[int]
    reductions: list[int]
    output_stride: int
    normalisation: Normalisation = IMAGENET

    def level(self, level: Level | int | str) -> int:
        """The index of the feature map at ``level`` (a stride alone: its deepest map;
        ``16[0]``: the first map at stride 16); :data:`IMAGE` for stride 1, the image
        itself (as the backbone gets it, normalised)."""
        level = parse_level(level)
        if level.stride == 1:
            return IMAGE
        found = level.pick(self.reductions)
        if found is not None:
            return found
        n = self.reductions.count(level.stride)
        if n:
            raise DpcError.at(None, f"the backbone has {n} feature map{'s' * (n != 1)} at "
                              f"stride {level.stride}, so it has no level {level}",
                              hint=f"index them {level.stride}[0] to {level.stride}[{n - 1}]"
                              f", or {level.stride}[-1] (the deepest) to "
                              f"{level.stride}[-{n}]", code="DPC706")
        raise DpcError.at(None, f"the backbone has no stride-{level.stride} features (its "
                          f"strides: {', '.join(map(str, self.reductions))})",
                          hint="pick backbone.inputs among these strides", code="DPC706")


    def pick(self, image: torch.Tensor, features: Sequence[torch.Tensor],
             level: int) -> torch.Tensor:
        """The map at ``level`` (an index of :meth:`level`): a feature map, or the image."""
        return image if level == IMAGE else features[level]

    def level_channels(self, level: int) -> int:
        """The channels of the map at ``level``: 3 for the image."""
        return 3 if level == IMAGE else self.channels[level]


class TinyBackbone(Backbone):
    """A small convolutional backbone for CPU demos and tests: features at strides 4, 8
    and ``output_stride``; at output stride 8 the last stage is dilated instead of
    strided, as DeepLab does."""

    def __init__(self, output_stride: int = 16, width: int = 16) -> None:
        super().__init__()
        _check_stride(output_stride)
        self.output_stride = output_stride
        self.channels = [width, 2 * width, 4 * width]
        self.reductions = [4, 8, output_stride]
        last = (2, 1) if output_stride == 16 else (1, 2)
        self.stages = nn.ModuleList([
            nn.Sequential(_conv_bn_relu(3, width, stride=2), _conv_bn_relu(width, width, 2)),
            nn.Sequential(_conv_bn_relu(width, 2 * width, 2),
                          _conv_bn_relu(2 * width, 2 * width)),
            nn.Sequential(_conv_bn_relu(2 * width, 4 * width, *last),
                          _conv_bn_relu(4 * width, 4 * width, dilation=last[1])),
        ])
        for m in self.modules():  # He init keeps activations at unit scale through ReLUs,
            if isinstance(m, nn.Conv2d):  # so random (untrained) features are usable
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


PRETRAINED_OFFLINE = (
    "set `pretrained_file` in the task's [backbone] table to a local weights file "
    "(.safetensors, .pth or .bin, from timm or Hugging Face) to load it offline, or "
    "pretrained = false for random weights"
)


def _hub_unreachable(name: str, timeout: float = 3.0) -> str | None:
    """Why the pretrained weights of timm's ``name`` cannot be had, or None: they are
    in the local cache (Hugging Face's, or torch hub's for a URL), or their host
    answers within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - an unknown tag: timm itself says so below
        return None
    if cfg is None:
        return None
    hub = getattr(cfg, "hf_hub_id", None)
    if hub:
        from huggingface_hub import constants, try_to_load_from_cache

        for file in ("model.safetensors", "pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(hub, file), str):
                return None
        endpoint = urlparse(constants.ENDPOINT)
    else:
        url = getattr(cfg, "url", None) or ""
        if not url:
            return None
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if cached.is_file():
            return None
        endpoint = urlparse(url)
    host = endpoint.hostname or ""
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host} cannot be reached ({e.strerror or type(e).__name__})"
    return None


class TimmBackbone(Backbone):
    """A timm model with ``features_only=True`` at output stride 8 or 16.

    ``name`` is any name timm knows, tagged ones included (``xception71.tf_in1k``).
    With ``pretrained`` the weights come from ``pretrained_file`` when given (a local
    file, no network), else from timm's hub.
    """

    def __init__(self, name: str, output_stride: int = 16, pretrained: bool = True,
                 pretrained_file: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__()
        _check_stride(output_stride)
        try:
            import timm
        except ImportError as e:
            raise DpcError.at(None, f"the timm backbone '{name}' needs timm, which does not "
                              f"import here: {e}",
                              hint="pip install 'dpcdsl[timm]' (timm needs a torchvision "
                              "built for the installed torch), or use the 'tiny' backbone",
                              code="DPC902"
                              ) from None
        if not timm.is_model(name):
            raise DpcError.at(None, f"timm has no model named '{name}'",
                              hint="see timm.list_models(), e.g. 'resnet50', "
                              "'mobilenetv2_100', 'xception71.tf_in1k'", code="DPC706")
        if pretrained and pretrained_file is not None:
            path = Path(pretrained_file)
            if not path.is_file():
                raise DpcError.at(None, f"pretrained_file {path} does not exist", code="DPC706")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        if pretrained and pretrained_file is None:
            unreachable = _hub_unreachable(name)
            if unreachable is not None:  # at once, not after the hub's retries
                raise DpcError.at(None, f"cannot fetch the pretrained weights of the timm "
                                  f"model '{name}': {unreachable}, and they are not in the "
                                  "local cache", hint=PRETRAINED_OFFLINE, code="DPC706")
        try:
            body: Any = timm.create_model(name, features_only=True, pretrained=pretrained,
                                          output_stride=output_stride, **kwargs)
        except (OSError, RuntimeError, ValueError, TypeError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if pretrained and pretrained_file is None:
                raise DpcError.at(None, f"cannot fetch the pretrained weights of the timm "
                                  f"model '{name}': {first}", hint=PRETRAINED_OFFLINE,
                                  code="DPC706") from None
            what = f"cannot load {pretrained_file} into" if pretrained else "cannot build"
            raise DpcError.at(None, f"{what} the timm model '{name}' at output stride "
                              f"{output_stride}: {first}",
                              hint="check that the file holds this model's weights, or pick "
                              "a model that supports output_stride", code="DPC706") from None
        self.body = body
        self.output_stride = output_stride
        self.channels = list(body.feature_info.channels())
        self.reductions = list(body.feature_info.reduction())
        cfg = getattr(body, "pretrained_cfg", None) or {}
        #: the normalisation the model's weights expect (timm's pretrained_cfg)
        self.normalisation = Normalisation(tuple(cfg.get("mean", IMAGENET.mean)),
                                           tuple(cfg.get("std", IMAGENET.std)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def backbone(name: str, output_stride: int = 16, pretrained: bool = True,
             pretrained_file: str | Path | None = None) -> Backbone:
    """``tiny`` for the built-in backbone, otherwise a timm model name (tags allowed)."""
    if name == "tiny":
        return TinyBackbone(output_stride)
    return TimmBackbone(name, output_stride, pretrained, pretrained_file)


class SegmentationModel(nn.Module):
    """Backbone, head cell, optional decoder cell, 1x1 classifier.

    ``cell`` and ``decoder`` are concrete cells. The head's inputs read the backbone's
    levels ``strides`` (one per input, in order: ``16``, or ``"16[0]"`` where several
    maps share a stride; default: the levels the cell declares, ``low @ 4``, or the last
    level for a one-input cell), so the two-input
    ``examples/deeplabv3plus.dpc`` reads strides 16 and 4. Its rates are scaled by
    16 / output_stride. The optional ``decoder`` reads the head's output and the
    stride-4 features. Logits are resized bilinearly to the image's size, with
    ``align_corners`` as the DeepLab reference (True) or PyTorch's default (False).
    The keywords ``bn_momentum`` and ``bn_eps`` set the cells' BatchNorm.
    """

    def __init__(self, backbone: Backbone, cell: ir.Cell | str | Path, num_classes: int,
                 decoder: ir.Cell | str | Path | None = None, seed: int = 0,
                 strides: Sequence[int | str] | None = None, align_corners: bool = True,
                 **bn: float) -> None:
        super().__init__()
        if num_classes < 1:
            raise DpcError.at(None, f"num_classes must be positive, got {num_classes}",
                              code="DPC706")
        if not isinstance(backbone, Backbone):
            raise DpcError.at(None, f"{type(backbone).__name__} is not a Backbone",
                              hint="subclass dpcdsl_torch.Backbone: a forward that returns "
                              "a list of feature maps, plus channels, reductions and "
                              "output_stride", code="DPC706")
        self.backbone = backbone
        self.align_corners = align_corners
        # a path, .dpc text or a head's name stands for its one architecture
        cell = cell if isinstance(cell, ir.Cell) else as_space(cell, None).concrete()
        if decoder is not None and not isinstance(decoder, ir.Cell):
            decoder = as_space(decoder, None).concrete()
        wiring = input_levels(cell.name, cell.inputs, strides, backbone.output_stride,
                              cell.span, cell.levels)
        self.levels = [backbone.level(s) for s in wiring.values()]
        head_in = {i: backbone.level_channels(k) for i, k in zip(cell.inputs, self.levels)}
        head_cell = at_output_stride(cell, backbone.output_stride)
        bn = {"bn_momentum": BN_MOMENTUM, "bn_eps": BN_EPS, **bn}  # the cells' BatchNorm
        self.head = build(head_cell, head_in, seed=seed, **bn)
        out_channels = infer_channels(head_cell, head_in)[head_cell.output]
        self.decoder: nn.Module | None = None
        self.low_level = -1
        if decoder is not None:
            if len(decoder.inputs) != 2:
                raise DpcError.at(decoder.span, f"the decoder cell '{decoder.name}' has "
                                  f"{len(decoder.inputs)} inputs; it needs two: the head's "
                                  "output and the stride-4 features", code="DPC501")
            self.low_level = backbone.level(4)
            dec_in: Mapping[str, int] = {decoder.inputs[0]: out_channels,
                                         decoder.inputs[1]: backbone.channels[self.low_level]}
            self.decoder = build(decoder, dec_in, seed=seed + 1, **bn)
            out_channels = infer_channels(decoder, dec_in)[decoder.output]
        with torch.random.fork_rng(devices=[]):  # seeded like the cells
            torch.manual_seed(seed + 2)
            self.classifier = nn.Conv2d(out_channels, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.backbone(image)
        y = self.head(*(self.backbone.pick(image, features, k) for k in self.levels))
        if self.decoder is not None:
            y = self.decoder(y, features[self.low_level])
        logits = self.classifier(y)
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                             align_corners=self.align_corners)
