"""The feature cache: built once, reused across processes, never taken whole when a
write was killed."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from dpcdsl_torch import feature_extractor

from dpcdsl.errors import DpcError
from dpcdsl.lang.levels import Level
from dpcdsl.train.data.cache import build_cache, cache_path, open_cache
from dpcdsl.train.data.synthetic import SyntheticScenes
from dpcdsl.train.data.task import task_from_text, task_toml
from tests.conftest import SMALL_TASK, merged


def task_text(folder, **changes) -> str:
    """The small task with 12 training images, its cache in ``folder`` (each test here
    builds its own: building is what they test)."""
    small = merged(SMALL_TASK, {"cache_dir": folder, "dataset": {"train_size": 12,
                                                                  "val_size": 4}})
    return task_toml(merged(small, changes))


def counting(extract):
    calls = []

    def wrapped(images: np.ndarray) -> list[np.ndarray]:
        calls.append(len(images))
        return extract.run(images)

    return dataclasses.replace(extract, run=wrapped), calls


def test_built_once_then_reused(tmp_path):
    task = task_from_text(task_text(tmp_path))
    extract, calls = counting(feature_extractor(task))
    cache = build_cache(task, extract, batch=4, progress=False)
    assert sum(calls) == 16  # every image through the backbone once
    assert cache.strides == (16,)
    assert cache.features("train", 16).shape == (12, 64, 4, 4)
    assert cache.features("train", 16).dtype == np.float16
    assert cache.labels("val").shape == (4, 64, 64)
    image, labels = SyntheticScenes(4, 64, seed=0, split="val")[2]
    np.testing.assert_array_equal(cache.labels("val")[2], labels)
    np.testing.assert_allclose(cache.features("val", 16)[2],
                               feature_extractor(task).run(image[None])[0][0], rtol=2e-3,
                               atol=1e-3)
    with pytest.raises(DpcError, match="no stride-4 features"):
        cache.features("val", 4)

    again, calls2 = counting(feature_extractor(task))
    build_cache(task, again, batch=4, progress=False)
    assert calls2 == []  # the second run does not run the backbone


KILLED = textwrap.dedent("""
    import dataclasses, sys, time
    from dpcdsl.train.data.cache import build_cache
    from dpcdsl.train.data.task import task_from_text, task_toml
    from dpcdsl_torch import feature_extractor
    task = task_from_text(sys.argv[1])
    extract = feature_extractor(task)
    def slow(images):
        print("batch", flush=True)
        time.sleep(0.5)
        return extract.run(images)
    build_cache(task, dataclasses.replace(extract, run=slow), batch=2, progress=False)
""")


@pytest.mark.slow
def test_a_killed_write_is_detected_and_rebuilt(tmp_path):
    text = task_text(tmp_path)
    task = task_from_text(text)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, text], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for _ in range(3):  # let it write a few batches, then kill it hard
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    leftovers = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert leftovers, "the killed build should have left its partial folder"
    assert not cache_path(task).exists()
    assert open_cache(task) is None

    extract, calls = counting(feature_extractor(task))
    cache = build_cache(task, extract, batch=4, progress=False)
    assert sum(calls) == 16
    assert cache.features("val", 16).shape == (4, 64, 4, 4)


def test_a_final_folder_without_its_marker_is_rebuilt(tmp_path):
    task = task_from_text(task_text(tmp_path))
    cache_path(task).mkdir(parents=True)
    (cache_path(task) / "train_features_s16.npy").write_bytes(b"half")
    assert open_cache(task) is None
    extract, calls = counting(feature_extractor(task))
    build_cache(task, extract, batch=8, progress=False)
    assert sum(calls) == 16 and open_cache(task) is not None


def test_half_caches_of_dead_builds_are_removed(tmp_path):
    task = task_from_text(task_text(tmp_path))
    final = cache_path(task, "float16")
    final.parent.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = final.parent / f"{final.name}.partial-{dead}-0000beef"
    live = final.parent / f"{final.name}.partial-{os.getpid()}-0000cafe"
    stale.mkdir()
    live.mkdir()
    build_cache(task, feature_extractor(task), progress=False)
    assert not stale.exists()  # a killed build's leftovers
    assert live.exists()  # a build still running (this process) keeps its folder


def test_several_levels_by_stride(tmp_path):
    """A cache for a decoder holds each level its inputs read, once, at its stride."""
    task = task_from_text(task_text(tmp_path, backbone={"inputs": [16, 4, 16]}))
    extract, calls = counting(feature_extractor(task))
    assert extract.levels == (Level(16), Level(4))
    cache = build_cache(task, extract, batch=4, progress=False)
    assert sum(calls) == 16 and cache.strides == (16, 4)
    assert cache.features("train", 16).shape == (12, 64, 4, 4)
    assert cache.features("train", 4).shape == (12, 16, 16, 16)
    # another task with the same levels in another order shares the cache
    other = task_from_text(task_text(tmp_path, backbone={"inputs": [4, 16]}))
    assert cache_path(other) == cache_path(task)
    # one level alone is another cache
    assert cache_path(task_from_text(task_text(tmp_path))) != cache_path(task)


def test_a_cache_copied_from_another_backbone_is_refused(tmp_path):
    """A cache folder copied under this task's key, but built for another backbone, is
    an error, not silently used."""
    tiny = task_from_text(task_text(tmp_path / "a"))
    build_cache(tiny, feature_extractor(tiny), progress=False)
    other = task_from_text(task_text(tmp_path / "b", backbone={"seed": 7}))
    cache_path(other).parent.mkdir(parents=True)
    shutil.copytree(cache_path(tiny), cache_path(other))
    with pytest.raises(DpcError, match="was not built for this task") as info:
        open_cache(other)
    assert f"remove {cache_path(other)}" in str(info.value)


@pytest.mark.parametrize("damage", ["", "{not json", '{"task": 3}'])
def test_a_damaged_cache_record_is_a_clear_error(tmp_path, damage):
    task = task_from_text(task_text(tmp_path))
    build_cache(task, feature_extractor(task), progress=False)
    (cache_path(task) / "meta.json").write_text(damage)
    with pytest.raises(DpcError, match="is damaged: meta.json cannot be read") as e:
        open_cache(task)
    assert f"remove {cache_path(task)}" in e.value.render()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape", "missing"])
@pytest.mark.slow
def test_a_damaged_features_file_is_a_clear_error(tmp_path, damage):
    task = task_from_text(task_text(tmp_path))
    build_cache(task, feature_extractor(task), progress=False)
    path = cache_path(task) / "train_features_s16.npy"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "shape":
        np.save(path, np.zeros((3, 64, 4, 4), np.float16))
    else:
        path.unlink()
    cache = open_cache(task)
    assert cache is not None
    with pytest.raises(DpcError, match="the feature cache is damaged: "
                                       "train_features_s16.npy cannot be read") as e:
        cache.features("train", 16)
    assert f"remove {cache_path(task)}" in e.value.render()
    task_file = tmp_path / "task.toml"
    task_file.write_text(task_text(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "proxy", "examples/aspp.dpc",
                        "--task", str(task_file)], capture_output=True, text=True,
                       timeout=300, cwd=root)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "the feature cache is damaged" in r.stderr


def _offline(tmp_path: Path) -> dict[str, str]:
    """An environment whose Hugging Face hub is a closed port and whose cache is empty,
    as on a machine without internet."""
    return {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9",
            "HF_HUB_CACHE": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}


def _cache(task: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", "cache", "--task", str(task),
                           "--quiet"], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_the_dataset_is_checked_before_the_network_and_named_at_its_task_line(tmp_path):
    from tests.data.trees import gray, ids_map, rgb

    task = tmp_path / "task.toml"
    task.write_text('[dataset]\nkind = "folder"\nroot = "nowhere"\nnum_classes = 2\n\n'
                    '[backbone]\nname = "resnet18"\npretrained = true\n\n'
                    '[train]\ncrop = 32\nbatch = 2\nsteps = 2\n')
    start = time.perf_counter()
    r = _cache(task, _offline(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{task}:3:1: error: dataset.root = {tmp_path / 'nowhere'}: folder dataset: " \
           in r.stderr, r.stderr
    assert "classes.txt does not exist" in r.stderr and "resnet18" not in r.stderr
    # with the dataset there, the unreachable hub is said at once, with the offline hint
    root = tmp_path / "nowhere"
    root.mkdir()
    (root / "classes.txt").write_text("a\nb\n")
    for split in ("train", "val"):
        rgb(root / f"images/{split}/a.png", 32, 32)
        gray(root / f"masks/{split}/a.png", ids_map(32, 32, values=(0, 1)))
    r = _cache(task, _offline(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot fetch the pretrained weights of the timm model 'resnet18': 127.0.0.1 " \
           "cannot be reached" in r.stderr, r.stderr
    assert "set `pretrained_file`" in r.stderr
    assert time.perf_counter() - start < 120  # no minute of hub retries
