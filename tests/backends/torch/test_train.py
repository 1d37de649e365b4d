"""End-to-end training: checkpoints, eval, and a resume that continues exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from dpcdsl_torch import evaluate_run, train_model
from dpcdsl_torch._weights import export_weights
from dpcdsl_torch.train import load_run

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.train.data.task import task_from_text, task_toml
from tests.conftest import EXAMPLES, SMALL_TASK, merged

#: end to end on 8 images (no feature cache), 6 steps
TASK = task_toml(merged(SMALL_TASK, {"dataset": {"train_size": 8, "val_size": 4},
                                     "train": {"batch": 2, "steps": 6, "eval_every": 3}}))


@pytest.fixture
def cell():
    return Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()


@pytest.mark.slow
def test_checkpoint_then_eval_round_trips(tmp_path, cell):
    task = task_from_text(TASK)
    record = train_model(cell, task, tmp_path / "run")
    assert record["step"] == 6 and [k for k, _ in record["evals"]] == [3, 6]
    assert len(record["losses"]) == 6
    assert evaluate_run(tmp_path / "run") == pytest.approx(record["evals"][-1][1])
    sidecar = json.loads((tmp_path / "run/checkpoint.json").read_text())
    assert Space.from_text(sidecar["cell"]).concrete() == cell
    before = (tmp_path / "run/checkpoint.safetensors").read_bytes()
    with pytest.raises(DpcError, match="already holds a training run") as e:
        train_model(cell, task, tmp_path / "run")  # no silent overwrite
    assert "--resume" in str(e.value)
    assert (tmp_path / "run/checkpoint.safetensors").read_bytes() == before


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, cell):
    task = task_from_text(TASK)
    whole = train_model(cell, task, tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill(step, miou):
        raise Killed

    with pytest.raises(Killed):  # interrupted right after the step-3 checkpoint
        train_model(cell, task, tmp_path / "resumed", callback=kill)
    resumed = train_model(cell, task, tmp_path / "resumed", resume=True)
    assert resumed["step"] == 6
    np.testing.assert_allclose(resumed["losses"], whole["losses"], rtol=1e-5)
    a = export_weights(load_run(tmp_path / "whole")[0])
    b = export_weights(load_run(tmp_path / "resumed")[0])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, cell):
    with pytest.raises(DpcError, match="nothing to resume"):
        train_model(cell, task_from_text(TASK), tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_dpcc_train_and_eval(tmp_path):
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    run = tmp_path / "run"

    def dpcc(*args):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    r = dpcc("train", EXAMPLES / "aspp.dpc", "--task", task, "--run-dir", run)
    assert r.returncode == 0, r.stderr
    assert "aspp: mIOU" in r.stdout and "at step 6" in r.stdout
    r = dpcc("eval", run)
    assert r.returncode == 0 and r.stdout.startswith("mIOU")
    # the trained model exports whole (backbone, head, classifier) and runs alone
    r = dpcc("export", run, "--image", "64x96")
    assert r.returncode == 0, r.stderr
    assert f"wrote {run / 'model.onnx'} (onnx, torch backend): the model of {run}" in r.stderr
    import onnxruntime as ort
    import torch

    model = load_run(run)[0].eval()
    image = np.random.default_rng(0).standard_normal((1, 3, 80, 48), dtype=np.float32)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(session.run(None, {"image": image})[0], want, atol=1e-4)
    r = dpcc("export", run, "--format", "stablehlo")
    assert r.returncode == 1 and "trains no full models" in r.stderr
    r = dpcc("eval", tmp_path / "nothing")
    assert r.returncode == 1 and "holds no checkpoint" in r.stderr


@pytest.mark.parametrize("damage", ['{"step": 3, "cell"', "[]", '{"step": 3}'])
@pytest.mark.slow
def test_a_damaged_sidecar_is_a_clear_error(tmp_path, cell, damage):
    train_model(cell, task_from_text(TASK), tmp_path / "run")
    (tmp_path / "run/checkpoint.json").write_text(damage)
    with pytest.raises(DpcError, match="checkpoint.json is damaged") as e:
        evaluate_run(tmp_path / "run")
    assert "new --run-dir" in e.value.render()
    with pytest.raises(DpcError, match="checkpoint.json is damaged"):
        train_model(cell, task_from_text(TASK), tmp_path / "run", resume=True)
