"""Several drivers on one study, as users scale out without Ray (one driver per
machine, one PostgreSQL server): three real ``dpcc search`` processes on a PostgreSQL
server the test starts spend the budget exactly, and every trial is told once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dpcdsl.search.postgres import local_server, server_programs
from dpcdsl.search.study import STUDY, counted
from tests.search.test_kill import DATASET, SPACE

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 12


def dpcc(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dpcdsl.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.skipif(server_programs() is None, reason="PostgreSQL is not installed "
                    "(Debian's postgresql package; scripts/setup.sh installs it)")
def test_three_drivers_share_one_postgresql_study(tmp_path, task_file):
    space, task = tmp_path / "space.dpc", task_file(dataset=DATASET)
    space.write_text(SPACE)
    cache = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "cache", "--task", str(task),
                            "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert cache.returncode == 0, cache.stderr
    with local_server(tmp_path / "pg") as url:
        # one trial at a time per driver, so that the budget outlasts their start-up
        common = ["--task", task, "--trials", BUDGET, "--strategy", "random", "--storage", url,
                  "--executor", "local", "--quiet"]
        # the same command on each machine: the same seed, and no two drivers draw in step
        drivers = [dpcc("search", space, *common, "--run-dir", tmp_path / "run0")]
        try:
            deadline = time.monotonic() + 120
            while STUDY not in [s.study_name for s in optuna.get_all_study_summaries(url)]:
                if drivers[0].poll() is not None:
                    pytest.fail(drivers[0].communicate()[1])
                assert time.monotonic() < deadline, "the first driver made no study in 120 s"
                time.sleep(0.2)
            drivers += [dpcc("search", space, *common, "--run-dir", tmp_path / f"run{k}",
                             "--resume") for k in (1, 2)]
            for d in drivers:
                _, err = d.communicate(timeout=900)
                assert d.returncode == 0, err
        finally:  # a failed driver's fellows are stopped, not left running past the test
            for d in drivers:
                if d.poll() is None:
                    d.kill()
                d.communicate()
        trials = optuna.load_study(study_name=STUDY, storage=url).get_trials()
    done = [t for t in trials if counted(t)]
    assert len(done) == BUDGET  # not one more, not one less
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    pids = {t.user_attrs["driver"]["pid"] for t in done}
    assert len(pids) == 3, "each driver ran trials"
    trained = [t.user_attrs["same_as"] for t in done if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained)), "no architecture trained twice"
    for k in range(3):
        assert (tmp_path / f"run{k}" / "leaderboard.csv").exists()
