"""Where trials run and with how many CPU threads: the policy, and a real search that
applies it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from dpcdsl.errors import DpcError
from dpcdsl.search.driver import SearchConfig, search
from dpcdsl.search.executors import Placement, place, usable_cpus


@pytest.mark.parametrize("args, expected", [
    # a multi-core CPU: one single-threaded worker per CPU
    (dict(executor="auto", cpus=2), Placement("pool", 2, 1)),
    (dict(executor="auto", cpus=16), Placement("pool", 16, 1)),
    # one CPU: nothing to share, no processes to start
    (dict(executor="auto", cpus=1), Placement("local", 1, 1)),
    # a GPU task without GPU ids: this process, all the CPUs feeding it
    (dict(executor="auto", device="cuda", cpus=8), Placement("local", 1, 8)),
    # GPU ids: one worker each, the CPUs shared among them
    (dict(executor="auto", gpus=["0", "1"], cpus=16), Placement("pool", 2, 8)),
    # what is given wins
    (dict(executor="auto", workers=4, cpus=16), Placement("pool", 4, 4)),
    (dict(executor="pool", workers=2, threads=3, cpus=2), Placement("pool", 2, 3)),
    (dict(executor="local", workers=5, cpus=4), Placement("local", 1, 4)),
    (dict(executor="local", threads=1, cpus=4), Placement("local", 1, 1)),
    (dict(executor="ray", cpus=16, cpus_per_trial=4.0), Placement("ray", 2, 4)),
    (dict(executor="ray", workers=8, cpus=16, cpus_per_trial=0.5), Placement("ray", 8, 1)),
])
def test_placement_policy(args, expected):
    assert place(**args) == expected


def test_usable_cpus_follow_the_affinity_mask():
    import os

    assert usable_cpus() == len(os.sched_getaffinity(0)) >= 1


@pytest.mark.slow
def test_each_trial_runs_with_its_explicit_threads(files, tmp_path):  # noqa: F811
    space, task = files()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        study = search(SearchConfig(space, task, trials=2, executor="local", threads=1,
                                    run_dir=tmp_path / "run", progress=False))
        assert torch.get_num_threads() == 1  # the trial set it, whatever ran before
    finally:
        torch.set_num_threads(before)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(t.user_attrs["threads"] == 1 for t in done
                        if "duplicate_of" not in t.user_attrs)


@pytest.mark.slow
def test_pool_trials_record_their_threads(files, tmp_path):  # noqa: F811
    space, task = files()
    study = search(SearchConfig(space, task, trials=2, executor="pool", workers=2,
                                threads=1, run_dir=tmp_path / "run", progress=False))
    ran = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert ran and all(t.user_attrs["threads"] == 1 for t in ran)


@pytest.mark.parametrize("option, value", [("workers", 0), ("threads", -1)])
def test_non_positive_workers_or_threads_are_refused(files, tmp_path, option,  # noqa: F811
                                                     value):
    space, task = files()
    with pytest.raises(DpcError, match=f"{option} must be positive"):
        search(SearchConfig(space, task, trials=1, run_dir=tmp_path / "run",
                            progress=False, **{option: value}))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_dpcc_search_says_where_trials_run(files, tmp_path):  # noqa: F811
    # (the default, auto, is said by the search of
    # tests/search/test_driver.py::test_dpcc_search_report_and_rerank_commands)
    space, task = files()
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search", str(space), "--task",
                        str(task), "--trials", "1", "--executor", "local", "--threads", "1",
                        "--run-dir", str(tmp_path / "local")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "trials run in this process, 1 CPU thread" in r.stderr
    assert Path(tmp_path / "local" / "best.dpc").exists()
