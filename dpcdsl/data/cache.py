"""The feature cache: the backbone runs once over the train and val splits, and its
features (float16 by default) and the labels go into ``.npy`` files that trainers
memory-map.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpcdsl.data.datasets import Dataset, open_split
from dpcdsl.data.task import Task

#: images (N, 3, H, W) float32 -> features (N, C, h, w)
Extractor = Callable[[np.ndarray], np.ndarray]
SPLITS = ("train", "val")
MARKER = "COMPLETE"


@dataclass(frozen=True)
class FeatureCache:
    path: Path
    meta: dict[str, Any]

    @property
    def channels(self) -> int:
        return int(self.meta["channels"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def ignore_index(self) -> int:
        return int(self.meta["ignore_index"])

    def features(self, split: str) -> np.ndarray:
        """(N, C, h, w), memory-mapped read-only."""
        return np.load(self.path / f"{split}_features.npy", mmap_mode="r")

    def labels(self, split: str) -> np.ndarray:
        """(N, H, W) uint8, memory-mapped read-only."""
        return np.load(self.path / f"{split}_labels.npy", mmap_mode="r")


def cache_path(task: Task, dtype: str = "float16") -> Path:
    return task.cache_dir / task.cache_key(dtype)


def open_cache(task: Task, dtype: str = "float16") -> FeatureCache | None:
    """The complete cache for ``task``, or None."""
    path = cache_path(task, dtype)
    if not (path / MARKER).is_file():
        return None
    return FeatureCache(path, json.loads((path / "meta.json").read_text()))


def build_cache(task: Task, extract: Extractor, dtype: str = "float16", batch: int = 8,
                progress: bool = True) -> FeatureCache:
    """The cache for ``task``, built with ``extract`` unless a complete one exists."""
    done = open_cache(task, dtype)
    if done is not None:
        return done
    final = cache_path(task, dtype)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(final)
    tmp = final.parent / f"{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        splits = {s: open_split(task, s) for s in SPLITS}
        meta: dict[str, Any] = {"key": final.name, "dtype": dtype,
                                "task": task.model_dump(mode="json", exclude={"cache_dir"}),
                                "splits": {s: len(d) for s, d in splits.items()}}
        total = sum(len(d) for d in splits.values())
        with _progress(progress, total, f"caching features ({final.name})") as advance:
            for name, data in splits.items():
                shape = _write_split(tmp, name, data, extract, dtype, batch, advance)
                meta["channels"], meta["feature_size"] = shape[1], list(shape[2:])
        meta["num_classes"] = splits["train"].num_classes
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
                 batch: int, advance: Callable[[int], None]) -> tuple[int, ...]:
    feats_file = labels_file = None
    feats_shape: tuple[int, ...] = ()
    try:
        for start in range(0, len(data), batch):
            items = [data[i] for i in range(start, min(start + batch, len(data)))]
            images = np.stack([x for x, _ in items]).astype(np.float32)
            labels = np.stack([y for _, y in items]).astype(np.uint8)
            feats = np.asarray(extract(images)).astype(dtype)
            if feats_file is None:
                feats_shape = (len(data), *feats.shape[1:])
                feats_file = _npy_writer(folder / f"{name}_features.npy", feats_shape, feats.dtype)
                labels_file = _npy_writer(folder / f"{name}_labels.npy",
                                          (len(data), *labels.shape[1:]), labels.dtype)
            feats_file.write(np.ascontiguousarray(feats).tobytes())
            assert labels_file is not None
            labels_file.write(np.ascontiguousarray(labels).tobytes())
            advance(len(items))
    finally:
        for f in (feats_file, labels_file):
            if f is not None:
                f.close()
    return feats_shape


def _npy_writer(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    """An open file with a .npy header for ``shape``; the data is appended raw."""
    f = open(path, "wb")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)
    return f


class _progress:
    """A rich progress bar, or nothing."""

    def __init__(self, show: bool, total: int, label: str) -> None:
        self.show, self.total, self.label = show, total, label

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.show:
            self.bar.stop()
