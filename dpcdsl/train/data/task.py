"""Task files: what to train on and how, as TOML validated by pydantic.

```toml
backend = "jax"            # trains the candidates (default: the installed one of highest priority)
seed = 0

[dataset]
kind = "synthetic"         # synthetic | cityscapes | voc | person_part | folder
num_classes = 5

[backbone]
name = "tiny"              # tiny, or a timm model name
output_stride = 16

[train]
crop = 256
batch = 8
steps = 300
```

Errors name the file, the line and the key: ``task.toml:9:1: error: train.steps: Input
should be greater than 0``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dpcdsl._files import PACKAGE, read_text
from dpcdsl._plugins import installed_backends
from dpcdsl.errors import Diagnostic, DpcError, did_you_mean, source_lines
from dpcdsl.lang.ir import Span
from dpcdsl.lang.levels import Level, parse_level

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _installed_backend(name: str | None) -> str | None:
    """A backend name must be one that is installed (no framework is imported here)."""
    if name is not None and name not in installed_backends():
        known = sorted(installed_backends())
        raise ValueError(f"unknown backend '{name}'.{did_you_mean(name, known)} Installed: "
                         f"{', '.join(known) or 'none'}")
    return name


Backend = Annotated[str | None, AfterValidator(_installed_backend)]


def device_name(name: str) -> str:
    """cpu, cuda, cuda:N or mps; whether this machine has it is the backend's check."""
    if name in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name):
        return name
    raise ValueError(f"expected cpu, cuda, cuda:N or mps, got '{name}'")


Device = Annotated[str, AfterValidator(device_name)]


class DatasetSpec(_Section):
    kind: Literal["synthetic", "cityscapes", "voc", "person_part", "folder"] = "synthetic"
    root: Path | None = None
    train_split: str = "train"
    val_split: str = "val"
    num_classes: Annotated[int, Field(gt=1)] = 5
    ignore_index: int = 255
    # synthetic scenes only
    train_size: Annotated[int, Field(gt=0)] = 64
    val_size: Annotated[int, Field(gt=0)] = 32
    image_size: Annotated[int, Field(ge=32)] = 256


class BackboneSpec(_Section):
    name: str = "tiny"
    pretrained: bool = False
    # a local weights file for `pretrained = true` (relative to the task file): no network
    pretrained_file: Path | None = None
    output_stride: Literal[8, 16] = 16
    seed: int = 0  # initial weights of a backbone without pretrained weights
    # the backend that runs the backbone to build the feature cache; None: the installed
    # backend of highest priority that has a feature extractor
    backend: Backend = None
    # the backbone levels that feed the cell's inputs, in the order of the inputs:
    # [16, 4] feeds a decoder's context from stride 16 and its low-level input from
    # stride 4. A stride alone takes its deepest map; "16[0]" the first of the
    # backbone's maps at stride 16, "16[-2]" the one before the deepest (a ViT's blocks
    # share one stride). Stride 1 is the image itself, as the backbone gets it. None:
    # one input, the last level (at the output stride)
    inputs: Annotated[list[int | str] | None, Field(min_length=1)] = None

    @field_validator("inputs")
    @classmethod
    def _levels_parse(cls, value: list[int | str] | None) -> list[int | str] | None:
        if value is None:
            return None
        levels = [parse_level(v) for v in value]  # a ValueError names the bad one
        return [v.written for v in levels]

    @model_validator(mode="after")
    def _inputs_exist(self) -> BackboneSpec:
        for v in self.input_levels:
            if v.stride > self.output_stride:
                raise ValueError(f"inputs: a backbone at output stride {self.output_stride} "
                                 f"has no stride-{v.stride} features (its deepest are at "
                                 f"stride {self.output_stride})")
        return self

    @property
    def input_levels(self) -> tuple[Level, ...]:
        """The level each input of the cell reads."""
        if not self.inputs:
            return (Level(self.output_stride),)
        return tuple(parse_level(v) for v in self.inputs)

    @property
    def levels(self) -> tuple[Level, ...]:
        """The distinct levels the cell reads, in the order of first use: the levels
        of the feature cache."""
        return tuple(dict.fromkeys(self.input_levels))


class TrainSpec(_Section):
    crop: Annotated[int, Field(ge=32)] = 256
    batch: Annotated[int, Field(gt=0)] = 8
    steps: Annotated[int, Field(gt=0)] = 300
    lr: Annotated[float, Field(gt=0)] = 0.01
    power: Annotated[float, Field(ge=0)] = 0.9
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 4e-5
    eval_every: Annotated[int, Field(gt=0)] = 100
    # resize the logits to the labels with align_corners=True, as the DeepLab reference
    # does (tf.image.resize_bilinear); false: PyTorch's and torchvision's default
    align_corners: bool = True
    # BatchNorm momentum (PyTorch's convention). None: the paper's 0.0003 for long runs,
    # raised to 10 / steps (at most 0.1) for short ones; otherwise the running statistics
    # used at evaluation keep (1 - m) ** steps of their initial values, far from the
    # real ones after a few hundred steps
    bn_momentum: Annotated[float | None, Field(gt=0, le=1)] = None
    # the proxy task's loss at 1/N of the crop: the logits resized to that size, the
    # labels sampled to it (nearest, as the DeepLab reference does without
    # upsample_logits). 1 (the default): at the crop, as the paper trains. The output
    # stride: at the features' own size, no resize, the cheapest. Evaluation is always
    # at the full size; end-to-end training ignores it (its model resizes inside)
    proxy_loss_stride: Annotated[int, Field(ge=1)] = 1

    @property
    def momentum_of_bn(self) -> float:
        if self.bn_momentum is not None:
            return self.bn_momentum
        return max(0.0003, min(0.1, 10 / self.steps))


class Task(_Section):
    dataset: DatasetSpec = DatasetSpec()
    backbone: BackboneSpec = BackboneSpec()
    train: TrainSpec = TrainSpec()
    # the backend that trains candidates; None: the installed one of highest priority
    backend: Backend = None
    device: Device = "cpu"
    seed: int = 0
    # settings of the search strategy (dpcdsl.search.strategies.SETTINGS), e.g.
    # [strategy] population = 8; dpcc search --setting overrides them
    strategy: dict[str, int | float] = {}
    # settings of the pruner (dpcdsl.search.strategies.PRUNERS), e.g. [pruner]
    # startup = 10; dpcc search --prune-setting overrides them
    pruner: dict[str, int | float] = {}
    cache_dir: Path = Path(".dpcdsl-cache")
    file: Annotated[str, Field(exclude=True)] = "<task>"

    def cache_key(self, dtype: str) -> str:
        """The feature cache's content key: the dataset's identity, the backbone and its
        weights, crop, output stride and dtype."""
        ident: dict[str, Any] = {
            "format": 2,
            "dataset": self.dataset.model_dump(mode="json"),
            "backbone": self.backbone.model_dump(mode="json", exclude={
                k for k in ("backend", "pretrained_file", "inputs")
                if k == "inputs" or getattr(self.backbone, k) is None}),
            "crop": self.train.crop,
            "dtype": dtype,
        }
        if self.backbone.input_levels != (Level(self.backbone.output_stride),):
            ident["levels"] = [v.written for v in sorted(self.backbone.levels)]
        if self.dataset.root is not None:
            ident["dataset"]["root"] = str(self.dataset.root.resolve())
        pfile = self.backbone.pretrained_file
        if pfile is not None and pfile.is_file():  # the weights, not just their name
            st = pfile.stat()
            ident["backbone"]["pretrained_file"] = [str(pfile.resolve()), st.st_size,
                                                    st.st_mtime_ns]
        if self.dataset.kind == "synthetic":
            from dpcdsl.train.data import synthetic

            ident["dataset"]["version"] = synthetic.VERSION
        text = json.dumps(ident, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def _packaged(folder: Path) -> bool:
    """Is ``folder`` inside the installed package (its packaged examples)?"""
    return (PACKAGE / "examples").is_dir() and folder.is_relative_to(PACKAGE)


def load_task(path: str | Path) -> Task:
    """Read and validate a task file; every problem is reported with its key and line."""
    path = Path(path)
    text = read_text(path, "task file")
    return task_from_text(text, str(path), base=path.parent)


def task_from_text(text: str, file: str = "<task>", base: Path | None = None) -> Task:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line, col = (int(where.group(1)), int(where.group(2))) if where else (0, 0)
        msg = str(e).split(" (at ")[0]
        raise DpcError.at(Span(file=file, line=line, column=col), f"invalid TOML: {msg}",
                          sources={file: text}, code="DPC701") from None
    if not data:
        raise DpcError.at(Span(file=file, line=1, column=1), "the task file is empty: "
                          "nothing says what to train on", hint="write at least a [dataset] "
                          "table (kind = \"synthetic\" runs the built-in scenes); see "
                          "examples/synthetic_task.toml", sources={file: text}, code="DPC701")
    try:
        task = Task.model_validate({**data, "file": file})
    except ValidationError as e:
        raise DpcError([_diagnostic(err, text, file) for err in e.errors()],
                       {file: text}) from None
    if base is not None:  # relative paths are relative to the task file, made absolute
        base = base.resolve()  # so a run folder that records the task works from anywhere
        updates: dict[str, Any] = {}
        if not task.cache_dir.is_absolute():
            # a task that ships inside the installed package caches where it is run
            # from, never into the package
            updates["cache_dir"] = Path.cwd().resolve() / ".dpcdsl-cache" \
                if _packaged(base) else base / task.cache_dir
        pfile = task.backbone.pretrained_file
        if pfile is not None and not pfile.is_absolute():
            updates["backbone"] = task.backbone.model_copy(update={"pretrained_file": base / pfile})
        if task.dataset.root is not None and not task.dataset.root.is_absolute():
            updates["dataset"] = task.dataset.model_copy(
                update={"root": base / task.dataset.root})
        task = task.model_copy(update=updates)
    if task.dataset.kind != "synthetic" and task.dataset.root is None:
        raise DpcError.at(_locate(text, file, ("dataset", "kind")),
                          f"dataset.root: a {task.dataset.kind} dataset needs a root folder",
                          sources={file: text}, code="DPC701")
    return task


def task_toml(settings: Mapping[str, Any]) -> str:
    """A task file's text from nested settings, checked as :func:`task_from_text` checks
    a file (an unknown key or a bad value is the same located error)::

        task_toml({"cache_dir": "cache", "dataset": {"image_size": 64},
                   "train": {"crop": 64, "steps": 8}})

    Top-level values come first, then one ``[table]`` per nested mapping. Strings and
    paths are quoted; a value of None is left out (the default applies)."""
    top = [f"{k} = {_toml_value(v)}" for k, v in settings.items()
           if v is not None and not isinstance(v, Mapping)]
    tables = [f"[{k}]\n" + "".join(f"{key} = {_toml_value(value)}\n"
                                    for key, value in v.items() if value is not None)
              for k, v in settings.items() if isinstance(v, Mapping)]
    text = "".join(line + "\n" for line in top) + "".join(tables)
    task_from_text(text, "<task_toml>")
    return text


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON's string escapes are TOML's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise DpcError.at(None, f"task_toml: a {type(value).__name__} cannot be written as a "
                      f"TOML value ({value!r})", hint="use a string, number, boolean or list",
                      code="DPC701")


def _diagnostic(err: Any, text: str, file: str) -> Diagnostic:
    loc = tuple(str(x) for x in err["loc"])
    key = ".".join(loc)
    message = f"{key}: {err['msg']}".replace(": Value error, ", ": ")
    if err["type"] == "extra_forbidden":
        section = _FIELDS.get(loc[:-1], {})
        message = f"{key}: unknown key.{did_you_mean(loc[-1], section)}".rstrip(".")
    return Diagnostic(span=_locate(text, file, loc), message=message, code="DPC701")


_FIELDS: dict[tuple[str, ...], Any] = {
    (): Task.model_fields, ("dataset",): DatasetSpec.model_fields,
    ("backbone",): BackboneSpec.model_fields, ("train",): TrainSpec.model_fields}


def located(task: Task, key: tuple[str, ...], error: DpcError) -> DpcError:
    """``error`` about the value of ``key`` (``("dataset", "root")``), at that line of
    the task file when the file can be read, naming the key and its value."""
    from dpcdsl._files import read_text

    try:
        text = read_text(task.file, "task file")
    except DpcError:
        text = None
    span = _locate(text, task.file, key) if text is not None else Span(file=task.file)
    value: Any = task
    for part in key:
        value = getattr(value, part, None)
    first = error.diagnostics[0]
    return DpcError.at(span, f"{'.'.join(key)} = {value}: {first.message}", hint=first.hint,
                       sources={task.file: text} if text is not None else None,
                       code="DPC701")


def _locate(text: str, file: str, loc: tuple[str, ...]) -> Span:
    """The line of ``key = ...`` under its ``[table]``, or of the table itself."""
    table: tuple[str, ...] = ()
    fallback = Span(file=file)
    for n, line in enumerate(source_lines(text), 1):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            table = tuple(p.strip() for p in header.group(1).split("."))
            if table == loc[:-1] or table == loc:
                fallback = Span(file=file, line=n, column=1, end_line=n,
                                end_column=len(line) + 1)
            continue
        m = re.match(r"(\s*)([A-Za-z0-9_\-]+)\s*=", line)
        if m and (*table, m.group(2)) == loc:
            col = len(m.group(1)) + 1
            return Span(file=file, line=n, column=col, end_line=n,
                        end_column=col + len(m.group(2)))
    return fallback


def input_levels(cell: str, inputs: Sequence[str], given: Sequence[int | str] | None,
                 output_stride: int, span: Span | None = None,
                 declared: Sequence[Level | None] = ()) -> dict[str, Level]:
    """Which backbone level feeds each input of the cell ``cell``: ``given`` in the
    order of ``inputs`` (a task's ``backbone.inputs``); else the levels the cell
    declares (``low @ 4``, ``block @ 16[0]``); else, for a one-input cell, the last
    level. A count that does not match, or a declared stride deeper than the output
    stride, is an error that shows the fix."""
    if given is None and declared and all(d is not None for d in declared):
        deep = [(i, d) for i, d in zip(inputs, declared)
                if d is not None and d.stride > output_stride]
        if deep:
            raise DpcError.at(span, f"the cell '{cell}' reads '{deep[0][0]}' at stride "
                              f"{deep[0][1].stride}, deeper than the backbone's output stride "
                              f"{output_stride}", hint="set backbone.inputs in the task "
                              "file to the strides this backbone has", code="DPC701")
        return {i: d for i, d in zip(inputs, declared) if d is not None}
    if given is None and len(inputs) == 1:
        return {inputs[0]: Level(output_stride)}
    if given is None or len(given) != len(inputs):
        what = "no backbone level" if given is None else \
            f"{len(given)} backbone level{'s' * (len(given) != 1)} " \
            f"({', '.join(map(str, given))})"
        example = ", ".join(map(str, [output_stride, 4] if len(inputs) == 2 else
                                [max(output_stride >> k, 4) for k in range(len(inputs))]))
        raise DpcError.at(span, f"the cell '{cell}' has {len(inputs)} input"
                          f"{'s' * (len(inputs) != 1)} ({', '.join(inputs)}), but the task "
                          f"feeds it {what}",
                          hint=f"say which backbone stride feeds each input, in order, in the "
                          f"task's [backbone] table: inputs = [{example}]", code="DPC701")
    return {i: parse_level(v) for i, v in zip(inputs, given)}
