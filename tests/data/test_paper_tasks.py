"""The task files shipped for the paper's settings (``examples/tasks/``) check as they
are, and run on a small tree in each dataset's real layout: the proxy ones build their
cache with MobileNet-v2 and train the paper's top-1 cell, the end-to-end ones train
Xception-71 with that cell. Only what a CI machine cannot do is changed: the dataset
root, the CPU, random weights (no network), and a couple of steps; and the end-to-end
runs train at a 257 crop (still larger than the fixture's images), since Xception-71
at a 769 crop holds about 8 GB of activations on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from dpcdsl_torch import train_model

from dpcdsl.lang.space import Space
from dpcdsl.train.data.cache import open_cache
from dpcdsl.train.data.task import Task, load_task
from dpcdsl.train.proxy import train
from tests.conftest import EXAMPLES
from tests.data.trees import tree

TASKS = sorted((EXAMPLES / "tasks").glob("*.toml"))
PAPER = {"cityscapes": (769, 19), "voc": (513, 21), "person_part": (513, 7)}


def test_every_shipped_task_file_checks():
    names = {t.stem for t in TASKS}
    for kind in PAPER:
        assert {kind, f"{kind}_end_to_end"} <= names
    for path in TASKS:
        load_task(path)


@pytest.mark.parametrize("kind", sorted(PAPER))
def test_the_paper_settings(kind):
    crop, classes = PAPER[kind]
    proxy, e2e = load_task(EXAMPLES / f"tasks/{kind}.toml"), \
        load_task(EXAMPLES / f"tasks/{kind}_end_to_end.toml")
    for task in (proxy, e2e):
        assert task.dataset.kind == kind and task.dataset.num_classes == classes
        assert (task.train.crop, task.train.batch, task.backbone.output_stride) == (crop, 8, 16)
        assert (task.train.lr, task.train.power, task.train.momentum,
                task.train.weight_decay) == (0.01, 0.9, 0.9, 4e-5)
        assert task.backbone.pretrained
    assert proxy.backbone.name == "mobilenetv2_100" and proxy.train.steps == 30000
    assert e2e.backbone.name.split(".")[0] == "xception71"


#: the crop of the end-to-end runs here (see the module's docstring)
E2E_CROP = 257


def on_fixture(task: Task, tmp_path: Path, steps: int = 2, crop: int | None = None) -> Task:
    root = tree(task.dataset.kind, tmp_path / "data", {"train": 2, "val": 1})
    return task.model_copy(update={
        "device": "cpu", "cache_dir": tmp_path / "cache",
        "dataset": task.dataset.model_copy(update={"root": root}),
        "backbone": task.backbone.model_copy(update={"pretrained": False}),
        "train": task.train.model_copy(update={"steps": steps, "batch": 2,
                                               "eval_every": steps,
                                               "crop": crop or task.train.crop})})


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PAPER))
def test_the_proxy_task_files_run_on_a_fixture_tree(kind, tmp_path):
    task = on_fixture(load_task(EXAMPLES / f"tasks/{kind}.toml"), tmp_path)
    cell = Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()
    result = train(cell, task)
    assert result.steps == 2 and 0 <= result.miou <= 100
    cache = open_cache(task)
    assert cache is not None
    size = (task.train.crop - 1) // 16 + 1  # 49 at 769, 33 at 513
    assert cache.features("train", 16).shape == (2, 320, size, size)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PAPER))
def test_the_end_to_end_task_files_run_on_a_fixture_tree(kind, tmp_path):
    task = on_fixture(load_task(EXAMPLES / f"tasks/{kind}_end_to_end.toml"), tmp_path, 1,
                      crop=E2E_CROP)
    cell = Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()
    record = train_model(cell, task, tmp_path / "run")
    assert record["step"] == 1 and 0 <= record["evals"][-1][1] <= 100
