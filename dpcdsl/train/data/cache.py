"""The feature cache: the backbone runs once over the train and val splits, and its
features (float16 by default) and the labels go into ``.npy`` files that trainers
memory-map. A cache holds one feature map per backbone level the task's cell reads
(``backbone.inputs``: the last level alone, or e.g. strides 16 and 4 for a decoder).

The cache folder is named by a content hash of the dataset's identity, the backbone and
its weights, the crop, the output stride and the dtype (:meth:`Task.cache_key`), so it
is reused across runs and processes. It is written into a private temporary folder and
renamed into place only when complete, with a ``COMPLETE`` marker written last: a write
killed half way leaves no folder that could be taken for a whole cache, and the next run
builds it again. Features are appended batch by batch with plain writes, so memory stays
flat however large the cache grows.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpcdsl.errors import DpcError, Span
from dpcdsl.lang.flat import Cell
from dpcdsl.lang.levels import Level, parse_level
from dpcdsl.train.data.datasets import Dataset, open_split
from dpcdsl.train.data.formats import Normalisation
from dpcdsl.train.data.task import Task, input_levels
from dpcdsl.train.progress import CountProgress

SPLITS = ("train", "val")
MARKER = "COMPLETE"


@dataclass(frozen=True)
class Extractor:
    """A backbone as the cache runs it (a backend's ``feature_extractor`` hook).

    ``run`` maps normalised images (N, 3, H, W) float32 to one feature map (N, C, h, w)
    per level of ``levels``, in that order; ``normalisation`` is what the backbone's
    weights expect of the images.
    """

    run: Callable[[np.ndarray], Sequence[np.ndarray]]
    levels: tuple[Level, ...]
    normalisation: Normalisation


@dataclass(frozen=True)
class FeatureCache:
    path: Path
    meta: dict[str, Any]

    @property
    def levels(self) -> tuple[Level, ...]:
        """The cached levels, in order."""
        return tuple(_level_of(record) for record in self.meta["levels"])

    @property
    def strides(self) -> tuple[int, ...]:
        """The stride of each cached level."""
        return tuple(v.stride for v in self.levels)

    def level(self, level: Level | int | str) -> dict[str, Any]:
        """The record of a cached level (``16``, ``"16[0]"``): its channels and size."""
        level = parse_level(level)
        for record in self.meta["levels"]:
            if _level_of(record) == level:
                return dict(record)
        what = f"stride-{level.stride} features" if level.deepest else \
            f"features at level {level}"
        raise DpcError.at(None, f"the feature cache {self.path} holds no {what} (it holds "
                          f"level{'s' * (len(self.levels) != 1)} "
                          f"{', '.join(map(str, self.levels))})",
                          hint="set backbone.inputs in the task file; the cache is rebuilt "
                          "for the levels it names", code="DPC705")

    def channels(self, level: Level | int | str) -> int:
        return int(self.level(level)["channels"])

    def size(self, level: Level | int | str) -> tuple[int, int]:
        h, w = self.level(level)["size"]
        return int(h), int(w)

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def ignore_index(self) -> int:
        return int(self.meta["ignore_index"])

    def wiring(self, cell: Cell, task: Task) -> dict[str, Level]:
        """The cached level that feeds each input of ``cell``."""
        wired = input_levels(cell.name, cell.inputs, task.backbone.inputs,
                             task.backbone.output_stride, cell.span, cell.levels)
        for level in wired.values():
            self.level(level)
        return wired

    def in_channels(self, cell: Cell, task: Task) -> dict[str, int]:
        """The channels of each input of ``cell``, as the task feeds it."""
        return {i: self.channels(s) for i, s in self.wiring(cell, task).items()}

    def sizes(self, cell: Cell, task: Task) -> dict[str, tuple[int, int]]:
        """The feature size (h, w) of each input of ``cell``."""
        return {i: self.size(s) for i, s in self.wiring(cell, task).items()}

    def inputs(self, cell: Cell, task: Task, split: str) -> list[np.ndarray]:
        """The cached features of ``split`` for each input of ``cell``, in order."""
        return [self.features(split, s) for s in self.wiring(cell, task).values()]

    def features(self, split: str, level: Level | int | str) -> np.ndarray:
        """The level's features (N, C, h, w), memory-mapped read-only."""
        record = self.level(level)
        return self._array(_features_file(split, parse_level(level)),
                           (self.meta["splits"][split], record["channels"], *record["size"]))

    def labels(self, split: str) -> np.ndarray:
        """(N, H, W) uint8, memory-mapped read-only."""
        return self._array(f"{split}_labels.npy", (self.meta["splits"][split],))

    def _array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A cached array, memory-mapped; a file that is missing, truncated, not an
        array, or of another shape than the record says is a clear error."""
        path = self.path / name
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            problem = None if tuple(array.shape[:len(shape)]) == tuple(map(int, shape)) else \
                f"it holds shape {tuple(array.shape)}, the record says {tuple(shape)}"
        except (OSError, ValueError, EOFError) as e:
            problem = f"{type(e).__name__}: {e}"
        if problem is not None:
            raise DpcError.at(Span(file=str(path)), f"the feature cache is damaged: {name} "
                              f"cannot be read ({problem})",
                              hint=f"remove {self.path}; it is rebuilt", code="DPC120")
        return array


def _features_file(split: str, level: Level) -> str:
    return f"{split}_features_{level.file_key}.npy"


def _level_of(record: dict[str, Any]) -> Level:
    """The level of a cache record (older records name only the stride: its deepest)."""
    return Level(int(record["stride"]), int(record.get("nth", -1)))


def cache_path(task: Task, dtype: str = "float16") -> Path:
    return task.cache_dir / task.cache_key(dtype)


def _identity(task_json: dict[str, Any]) -> dict[str, Any]:
    """What a cache was built from, as compared when it is opened (paths left out)."""
    return {"dataset": {k: v for k, v in task_json["dataset"].items() if k != "root"},
            "backbone": {k: v for k, v in task_json["backbone"].items()
                         if k not in ("pretrained_file", "backend", "inputs")},
            "crop": task_json["train"]["crop"]}


def open_cache(task: Task, dtype: str = "float16") -> FeatureCache | None:
    """The complete cache for ``task``, or None. A cache whose record names another
    dataset or backbone (a folder copied under this key) is refused, not used."""
    path = cache_path(task, dtype)
    if not (path / MARKER).is_file():
        return None
    try:
        meta = json.loads((path / "meta.json").read_text())
        built = _identity(meta["task"]) if "task" in meta else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DpcError.at(None, f"the feature cache {path} is damaged: meta.json cannot be "
                          f"read ({type(e).__name__}: {e})",
                          hint=f"remove {path}; it is rebuilt", code="DPC705") from None
    levels = {_level_of(record) for record in meta.get("levels", ())}
    if built != _identity(task.model_dump(mode="json")) or levels != set(task.backbone.levels):
        raise DpcError.at(None, f"the feature cache {path} was not built for this task "
                          "(its record names another dataset, backbone or crop)",
                          hint=f"remove {path}; it is rebuilt for this task", code="DPC705")
    return FeatureCache(path, meta)


def build_cache(task: Task, extract: Extractor, dtype: str = "float16", batch: int = 8,
                progress: bool | str = True) -> FeatureCache:
    """The cache for ``task``, built with ``extract`` unless a complete one exists. Its
    levels are the distinct levels of ``backbone.inputs``. ``progress``: a mode of
    :mod:`dpcdsl.train.progress` (True: a bar on a terminal, log lines elsewhere)."""
    done = open_cache(task, dtype)
    if done is not None:
        return done
    if sorted(extract.levels) != sorted(task.backbone.levels):
        raise DpcError.at(None, "the feature extractor gives levels "
                          f"{', '.join(map(str, extract.levels))}, the task needs "
                          f"{', '.join(map(str, task.backbone.levels))}", code="DPC706")
    final = cache_path(task, dtype)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(final)
    tmp = final.parent / f"{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        splits = {s: open_split(task, s, extract.normalisation) for s in SPLITS}
        meta: dict[str, Any] = {"key": final.name, "dtype": dtype,
                                "task": task.model_dump(mode="json", exclude={"cache_dir"}),
                                "splits": {s: len(d) for s, d in splits.items()},
                                "normalisation": {"mean": list(extract.normalisation.mean),
                                                  "std": list(extract.normalisation.std)}}
        total = sum(len(d) for d in splits.values())
        with CountProgress(total, progress, f"caching features ({final.name})") as shown:
            for name, data in splits.items():
                shapes = _write_split(tmp, name, data, extract, dtype, batch, shown.add)
        meta["levels"] = [{"stride": v.stride, "nth": v.nth, "channels": shape[1],
                           "size": list(shape[2:])} for v, shape in zip(extract.levels, shapes)]
        meta["num_classes"] = splits["train"].num_classes
        meta["class_names"] = list(splits["train"].class_names)
        meta["ignore_index"] = splits["train"].ignore_index
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / MARKER).write_text("")
        if final.exists():  # a half cache from an older layout, or a crashed rename
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: use its cache
            if not (final / MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    cache = open_cache(task, dtype)
    assert cache is not None
    return cache


def _remove_stale_partials(final: Path) -> None:
    """Remove the half-written caches of builds whose process is gone (killed while
    caching); a build still running elsewhere keeps its folder."""
    for partial in final.parent.glob(f"{final.name}.partial-*"):
        pid = partial.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _write_split(folder: Path, name: str, data: Dataset, extract: Extractor, dtype: str,
                 batch: int, advance: Callable[[int], None]) -> list[tuple[int, ...]]:
    """Write the split's labels and one features file per level; their shapes."""
    files: list[Any] = []
    shapes: list[tuple[int, ...]] = []
    try:
        for start in range(0, len(data), batch):
            items = [data[i] for i in range(start, min(start + batch, len(data)))]
            images = np.stack([x for x, _ in items]).astype(np.float32)
            labels = np.stack([y for _, y in items]).astype(np.uint8)
            levels = [np.asarray(f).astype(dtype) for f in extract.run(images)]
            if len(levels) != len(extract.levels):
                raise DpcError.at(None, f"the feature extractor gave {len(levels)} feature "
                                  f"maps for {len(extract.levels)} levels", code="DPC706")
            if not files:
                files.append(_npy_writer(folder / f"{name}_labels.npy",
                                         (len(data), *labels.shape[1:]), labels.dtype))
                for level, feats in zip(extract.levels, levels):
                    shapes.append((len(data), *feats.shape[1:]))
                    files.append(_npy_writer(folder / _features_file(name, level),
                                             shapes[-1], feats.dtype))
            for f, array in zip(files, [labels, *levels]):
                f.write(np.ascontiguousarray(array).tobytes())
            advance(len(items))
    finally:
        for f in files:
            f.close()
    return shapes


def _npy_writer(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    """An open file with a .npy header for ``shape``; the data is appended raw."""
    f = open(path, "wb")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)
    return f


