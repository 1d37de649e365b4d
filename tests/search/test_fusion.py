"""Searches with fused trials (``--fuse K``): real storage, real training, real pool
workers; each trial's result is the one it gets trained alone."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.search.config import ExecutionOptions
from dpcdsl.search.driver import SearchConfig, search
from dpcdsl.search.executors import Executor, LocalExecutor, make_executor
from dpcdsl.search.fusion import FusingExecutor
from dpcdsl.search.messages import Job, Outcome
from dpcdsl.search.study import counted
from dpcdsl.search.worker import run_job
from dpcdsl.train.data.task import load_task
from tests.search.conftest import RAY, dpcc, trials_of

SPACE = """
cell small(x, channels = 16) {
  a = one_of(conv(x, kernel = {1, 3}), sepconv(x, rate = {1, 2}), pool(x, grid = {1, 2}))
  return dropout(conv(concat(a, x), kernel = 1), p = 0.3)
}
"""


def scores(study: optuna.Study) -> dict[str, float]:
    return {t.user_attrs["hash"]: t.value for t in study.trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs}


@pytest.mark.parametrize("executor", ["local", "pool"])
@pytest.mark.slow
def test_a_fused_search_scores_each_trial_as_training_alone(files, tmp_path, executor):
    space, task = files(SPACE)
    alone = search(SearchConfig(space, task, trials=6, run_dir=tmp_path / "alone",
                                progress=False))
    fused = search(SearchConfig(space, task, trials=6, executor=executor, workers=2,
                                fuse=3, run_dir=tmp_path / "fused", progress=False))
    assert len([t for t in fused.trials if counted(t)]) == 6
    together = [t for t in fused.trials if "fused_with" in t.user_attrs]
    assert together, "trials trained fused"
    for t in together:
        assert 1 <= len(t.user_attrs["fused_with"]) <= 2
        assert t.number not in t.user_attrs["fused_with"]
    a, f = scores(alone), scores(fused)
    assert a.keys() & f.keys()
    for h in a.keys() & f.keys():
        assert f[h] == pytest.approx(a[h], abs=1e-3), h


@pytest.mark.slow
def test_fused_trials_are_pruned_one_by_one(files, tmp_path):
    space, task = files()
    task.write_text(task.read_text().replace("steps = 8", "steps = 40").replace(
        "eval_every = 4", "eval_every = 5"))
    # two trials at a time, as in the unfused pruning test: with more at once, ASHA
    # may see no rung results before the last trials reach their rungs
    study = search(SearchConfig(space, task, trials=10, executor="pool", workers=1,
                                fuse=2, prune="asha", run_dir=tmp_path / "run",
                                progress=False))
    assert len([t for t in study.trials if counted(t)]) == 10
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "successive halving stops some of ten trials"
    assert all("pruned at step" in t.user_attrs["pruned"] for t in pruned)
    assert any("fused_with" in t.user_attrs for t in pruned)
    assert any(t.state == TrialState.COMPLETE and "fused_with" in t.user_attrs
               for t in study.trials), "the others in a job train on"


@pytest.mark.slow
def test_a_job_that_cannot_train_fused_trains_its_cells_alone(files, tmp_path):
    """One cell pools over a window larger than the 4x4 features: the fused step fails,
    and each cell gets its own outcome, the bad one its own failure."""
    _, task_file = files()
    task = load_task(task_file).model_dump(mode="json")
    good = Space.from_text("cell g(x, channels = 8) { return conv(x, kernel = 3) }")
    bad = Space.from_text("cell b(x, channels = 8) { return pool(x, mode = window, window = 16) }")
    texts = [s.concrete().canonical_text() for s in (good, bad, good)]
    outcome = run_job(Job(cell=texts[0], task=task, fused=tuple(texts[1:])))
    assert [p.ok for p in outcome.parts] == [True, False, True]
    assert outcome.parts[0].scores.miou == outcome.parts[2].scores.miou
    alone = run_job(Job(cell=texts[1], task=task))
    assert outcome.parts[1].failure == alone.failure and alone.failure


class _Slow:
    """An inner executor whose every job fails as a whole (as a timed-out one does),
    noting the jobs it was given."""

    name, slots = "slow", 1

    def __init__(self) -> None:
        self.jobs: list[tuple[int, Job]] = []
        self.done: list[tuple[int, Outcome]] = []

    @property
    def busy(self) -> int:
        return len(self.done)

    def submit(self, number, job, report=None, on_step=None):
        self.jobs.append((number, job))
        self.done.append((number, Outcome.failed("timeout after 2 s", 2.0)))

    def collect(self):
        done, self.done = self.done, []
        return done

    def close(self):
        pass


def test_the_fusing_executor_groups_trials_and_hands_each_its_outcome():
    inner = _Slow()
    ex = FusingExecutor(inner, 3)
    assert ex.slots == 3
    for n in range(3):
        ex.submit(n, Job(cell=f"c{n}", task={}))
    assert [(n, job.cells) for n, job in inner.jobs] == [(0, ("c0", "c1", "c2"))]
    assert ex.busy == 3
    done = ex.collect()  # a job that failed as a whole fails each of its trials
    assert [(n, o.failure, o.fused) for n, o in done] == [
        (n, "timeout after 2 s", (0, 1, 2)) for n in range(3)]
    ex.submit(3, Job(cell="c3", task={}))  # the end of a budget: a part-full job
    assert len(inner.jobs) == 1
    assert [n for n, _ in ex.collect()] == [3] and inner.jobs[-1][1].cells == ("c3",)
    assert ex.busy == 0


def test_every_executor_meets_the_declared_interface_and_other_objects_are_named():
    for ex in (make_executor("local"), make_executor(ExecutionOptions(fuse=2)), _Slow()):
        assert isinstance(ex, Executor)
    with pytest.raises(DpcError, match="object is not an executor: it lacks name, slots, "
                       "busy, submit, collect, close"):
        make_executor(object())


def test_a_fused_job_gets_the_trials_timeout_times_its_size():
    ex = make_executor(ExecutionOptions(executor="local", timeout=2.0, fuse=4))
    assert isinstance(ex, FusingExecutor) and isinstance(ex.inner, LocalExecutor)
    assert ex.inner.timeout == 8.0 and ex.slots == 4


@pytest.mark.slow
def test_dpcc_search_fuse(files, tmp_path):
    space, task = files()
    base = [sys.executable, "-m", "dpcdsl.cli", "search", str(space), "--task", str(task),
            "--trials", "4", "--executor", "local"]
    r = subprocess.run(base + ["--fuse", "0", "--run-dir", str(tmp_path / "bad")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--fuse" in r.stderr and not (tmp_path / "bad").exists()
    r = subprocess.run(base + ["--fuse", "2", "--run-dir", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "up to 2 trained fused in each job" in r.stdout + r.stderr


@pytest.mark.slow
@RAY
def test_fused_jobs_on_ray_hold_one_device_each(files, tmp_path, ray_cluster):
    """Fused jobs on a Ray cluster, in a multi-objective search (mIOU and parameters):
    what a trial optimises is the driver's business, wherever and however it trains."""
    space, task = files()
    run = tmp_path / "run"
    r = dpcc("search", space, "--task", task, "--trials", 6, "--executor", "ray",
             "--workers", 2, "--fuse", 3, "--ray-address", ray_cluster.address,
             "--gpus-per-trial", 1, "--cpus-per-trial", 1, "--run-dir", run, "--quiet",
             "--objectives", "miou,params", env=ray_cluster.env)
    assert r.returncode == 0, r.stderr
    done = [t for t in trials_of(run) if t.state == TrialState.COMPLETE]
    assert done and all(t.values == [t.user_attrs["miou"], t.user_attrs["params"]]
                        for t in done)
    assert (run / "pareto").is_dir()
    trials = {t.number: (counted(t), t.user_attrs.get("device"), t.user_attrs.get("fused_with"))
              for t in trials_of(run)}
    assert sum(1 for c, _, _ in trials.values() if c) == 6
    fused = {n: (d, f) for n, (_, d, f) in trials.items() if f}
    assert fused, "trials trained fused"
    for n, (device, others) in fused.items():  # a job's trials ran on its one device
        assert device in {"0", "1"}
        assert all(trials[m][1] == device for m in others)
