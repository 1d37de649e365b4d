"""One-shot search on the real path: `dpcc supernet train` on cached features (with a
resume that goes on exactly), `dpcc supernet extract`, and `dpcc search --evaluator
supernet:DIR` on a real Optuna storage, re-ranked stand-alone by `dpcc rerank`; and
every bad input refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from dpcdsl_torch import load_weights

import dpcdsl
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.search.config import SearchConfig
from dpcdsl.search.driver import search
from dpcdsl.search.rerank import spearman
from dpcdsl.search.study import STUDY, storage_url
from dpcdsl.train import weightfile
from dpcdsl.train.data.task import load_task, task_toml
from dpcdsl.train.oneshot import BANK, SIDECAR, open_supernet, train_supernet
from tests.conftest import SMALL_TASK, merged
from tests.oneshot.test_sharing import PAPER_BRANCH
from tests.search.conftest import dpcc, trials_of
from tests.waiting import wait_until

OTHER_SPACE = PAPER_BRANCH.replace("{1, 3}, {1, 3}", "{1, 6}, {1, 6}")


@pytest.fixture
def space_and_task(tmp_path, task_file):
    (tmp_path / "space.dpc").write_text(PAPER_BRANCH)
    return tmp_path / "space.dpc", task_file(train={"steps": 8, "eval_every": 4})


@pytest.fixture(scope="module")
def net(tmp_path_factory, shared_cache) -> tuple[Path, Path, Path]:
    """A space, a task and the space's supernet trained on it for 8 steps, shared by
    the tests that use a trained one (one xdist group: one worker trains it)."""
    folder = tmp_path_factory.mktemp("supernet")
    (folder / "space.dpc").write_text(PAPER_BRANCH)
    settings = merged({"cache_dir": shared_cache, **SMALL_TASK},
                      {"train": {"steps": 8, "eval_every": 4}})
    (folder / "task.toml").write_text(task_toml(settings))
    train_supernet(Space.from_file(folder / "space.dpc"), load_task(folder / "task.toml"),
                   folder / "net")
    return folder / "space.dpc", folder / "task.toml", folder / "net"


SHARED = pytest.mark.xdist_group("supernet")


def trained(space, task, run, *more):
    r = dpcc("supernet", "train", space, "--task", task, "--run-dir", run, "--quiet",
             "--threads", 1, *more)
    assert r.returncode == 0, r.stderr
    return json.loads((run / SIDECAR).read_text())


@pytest.mark.slow
def test_a_killed_supernet_training_resumes_exactly(space_and_task, tmp_path, task_file):
    space, _ = space_and_task
    task = task_file("long.toml", train={"steps": 24, "eval_every": 4})
    whole = train_supernet(Space.from_file(space), load_task(task), tmp_path / "whole")
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "dpcdsl.cli", "supernet", "train", space,
                             "--task", task, "--run-dir", run, "--quiet", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (run / SIDECAR).exists() or proc.poll() is not None,
                   "the first checkpoint", timeout=120)
    finally:
        proc.kill()
        proc.wait()
    killed_at = json.loads((run / SIDECAR).read_text())["step"]
    assert 0 < killed_at < 24, killed_at  # killed part-way
    # refused, naming why: another space, another schedule, a second run in the folder
    other = Space.from_text(OTHER_SPACE)
    for what, space_of, steps, resume, message in [
            ("space", other, 24, True, "was trained for another search: the space differs"),
            ("steps", Space.from_file(space), 10, True, "trains for 24 steps; 10 would change"),
            ("again", Space.from_file(space), 24, False, "already holds a supernet training")]:
        t = load_task(task)
        t = t.model_copy(update={"train": t.train.model_copy(update={"steps": steps})})
        with pytest.raises(DpcError) as e:
            train_supernet(space_of, t, run, resume=resume)
        assert message in e.value.diagnostics[0].message, what
    resumed = trained(space, task, run, "--resume")
    assert resumed["losses"] == whole["losses"] and resumed["evals"] == whole["evals"]
    a, b = weightfile.read(tmp_path / "whole" / BANK), weightfile.read(run / BANK)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert whole["calibration_batches"] == 4 and whole["bank"]["exact"]


@pytest.mark.slow
@SHARED
def test_a_one_shot_search_scores_with_inherited_weights_and_reranks(net, tmp_path):
    space, task, folder = net
    run = tmp_path / "run"
    r = dpcc("search", space, "--task", task, "--run-dir", run, "--trials", 8,
             "--strategy", "evolution", "--setting", "population=4", "--executor", "pool",
             "--workers", 2, "--evaluator", f"supernet:{folder}", "--seed", 2)
    assert r.returncode == 0, r.stderr
    done = [t for t in trials_of(run) if t.state.name == "COMPLETE"]
    assert len(done) == 8
    assert {t.user_attrs["evaluator"] for t in done} == {"supernet"}
    # each score is the candidate's inherited weights, recalibrated, on the val split
    shot = open_supernet(Space.from_file(space), load_task(task), folder)
    for t in done[:3]:
        cell = Space.from_text(t.user_attrs["cell"]).concrete()
        assert shot.score(cell) == pytest.approx(t.value, abs=1e-6)
        assert t.user_attrs["evals"] == [[8, t.value]]
    study = optuna.load_study(study_name=STUDY, storage=storage_url(run, None))
    assert study.user_attrs["identity"]["evaluator"].startswith("supernet of ")
    page = (run / "report.html").read_text()
    assert "the weights each candidate inherits from a supernet of" in page
    r = dpcc("rerank", run, "--top", 4, "--steps", 8, "--quiet")
    assert r.returncode == 0, r.stderr
    rerank = json.loads((run / "rerank.json").read_text())
    assert rerank["scored_by"] == "supernet" and len(rerank["rows"]) == 4
    rows = rerank["rows"]
    want = spearman([x["proxy_miou"] for x in rows], [x["rerank_miou"] for x in rows])
    assert rerank["spearman"] == pytest.approx(want, nan_ok=True)
    assert "Spearman rank correlation between supernet and re-ranked mIOU" in \
        (run / "report.html").read_text()


@pytest.mark.slow
@SHARED
def test_an_extracted_candidate_computes_what_the_supernet_does(net, tmp_path):
    space, task, folder = net
    cell, decisions = Space.from_file(space).sample(5)
    out = tmp_path / "cand" / "best.safetensors"
    r = dpcc("supernet", "extract", space, "--task", task, "--run-dir", folder,
             "--decisions", json.dumps(decisions), "-o", out)
    assert r.returncode == 0, r.stderr
    alone = Space.from_file(out.with_suffix(".dpc")).concrete()
    assert alone == cell
    shot = open_supernet(Space.from_file(space), load_task(task), folder)
    channels = shot.in_channels["x"]  # the tiny backbone's
    module = dpcdsl.compile(alone, in_channels=channels).eval()
    load_weights(module, out)
    net = shot.steps.net.eval()
    x = torch.randn(2, channels, 4, 4)
    with torch.no_grad():
        want = net.module(net.cell(decisions)).cell(x)
        np.testing.assert_allclose(module(x).numpy(), want.numpy(), atol=1e-5)
    r = dpcc("supernet", "extract", space, "--task", task, "--run-dir", folder,
             "--decisions", '{"b0.op": 7}', "-o", out)
    assert r.returncode == 1 and "decision b0.op = 7 is out of range" in r.stderr


@SHARED
def test_bad_evaluators_are_refused_before_anything_is_written(net, tmp_path, task_file):
    space, task, folder = net
    other = tmp_path / "other.dpc"
    other.write_text(OTHER_SPACE)
    fewer = task_file("fewer.toml", dataset={"num_classes": 3})
    for (s, t, evaluator), message in [
        ((space, task, "proxy:x"), "unknown evaluator 'proxy:x'"),
        ((space, task, f"supernet:{tmp_path / 'none'}"), "holds no supernet training"),
        ((other, task, f"supernet:{folder}"),
         "was trained for another search: the space differs (text_sha256"),
        ((space, fewer, f"supernet:{folder}"), "the task differs (dataset.num_classes: 5 -> 3)"),
        ((space, task, f"supernet:{folder}", ), "--prune median stops trainings early"),
    ]:
        run = tmp_path / "run"
        prune = "median" if "prune" in message else "none"
        with pytest.raises(DpcError) as e:
            search(SearchConfig(s, t, run_dir=run, progress=False, evaluator=evaluator,
                                prune=prune))
        assert message in e.value.diagnostics[0].message
        assert not run.exists()
