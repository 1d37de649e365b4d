"""The feature cache: built once, reused across processes, never taken whole when a
write was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
from dpcdsl_torch import feature_extractor

from dpcdsl.data.cache import build_cache, cache_path, open_cache
from dpcdsl.data.synthetic import SyntheticScenes
from dpcdsl.data.task import task_from_text

TASK = """
cache_dir = "{dir}"
[dataset]
train_size = 12
val_size = 4
image_size = 64
[train]
crop = 64
"""


def counting(extract):
    calls = []

    def wrapped(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return extract(images)

    return wrapped, calls


def test_built_once_then_reused(tmp_path):
    task = task_from_text(TASK.format(dir=tmp_path))
    extract, calls = counting(feature_extractor(task))
    cache = build_cache(task, extract, batch=4, progress=False)
    assert sum(calls) == 16  # every image through the backbone once
    assert cache.features("train").shape == (12, 64, 4, 4)
    assert cache.features("train").dtype == np.float16
    assert cache.labels("val").shape == (4, 64, 64)
    image, labels = SyntheticScenes(4, 64, seed=0, split="val")[2]
    np.testing.assert_array_equal(cache.labels("val")[2], labels)
    np.testing.assert_allclose(cache.features("val")[2],
                               feature_extractor(task)(image[None])[0], rtol=2e-3, atol=1e-3)

    again, calls2 = counting(feature_extractor(task))
    build_cache(task, again, batch=4, progress=False)
    assert calls2 == []  # the second run does not run the backbone


KILLED = textwrap.dedent("""
    import sys, time
    from dpcdsl.data.cache import build_cache
    from dpcdsl.data.task import task_from_text
    from dpcdsl_torch import feature_extractor
    task = task_from_text(sys.argv[1])
    extract = feature_extractor(task)
    def slow(images):
        print("batch", flush=True)
        time.sleep(0.5)
        return extract(images)
    build_cache(task, slow, batch=2, progress=False)
""")


def test_a_killed_write_is_detected_and_rebuilt(tmp_path):
    text = TASK.format(dir=tmp_path)
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
    assert cache.features("val").shape == (4, 64, 4, 4)


def test_a_final_folder_without_its_marker_is_rebuilt(tmp_path):
    task = task_from_text(TASK.format(dir=tmp_path))
    cache_path(task).mkdir(parents=True)
    (cache_path(task) / "train_features.npy").write_bytes(b"half")
    assert open_cache(task) is None
    extract, calls = counting(feature_extractor(task))
    build_cache(task, extract, batch=8, progress=False)
    assert sum(calls) == 16 and open_cache(task) is not None


def test_half_caches_of_dead_builds_are_removed(tmp_path):
    task = task_from_text(TASK.format(dir=tmp_path))
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
