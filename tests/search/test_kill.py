"""The kill test: a real search (the real CLI, cache, trainer and SQLite study) is
SIGKILLed at five moments and resumed after each; nothing finished is lost or trained
again, nothing stays RUNNING, no half cache is left, and it ends with as many distinct
architectures as a run that was never killed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dpcdsl.search.study import STUDY, counted, storage_url

# 15**4 = 50,625 architectures: six uniform draws collide with odds of about 1 in 3,400
STAGE = ("one_of(conv({x}, kernel = {{1, 3}}), sepconv({x}, rate = ({{1, 2, 3}}, {{1, 2, 3}})), "
         "pool({x}, grid = ({{1, 2}}, {{1, 2}})))")
SPACE = ("cell wide(x, channels = 8) {\n"
         + "".join(f"  s{i} = {STAGE.format(x='x' if i == 0 else f's{i - 1}')}\n"
                   for i in range(4))
         + "  return conv(concat(s3, x), kernel = 1)\n}\n")
#: the small task with more images (its own cache: the test kills the cache's build)
DATASET = {"train_size": 24}
TRIALS = 6


def trials(run: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=storage_url(run, None)).get_trials()


def search(space: Path, task: Path, run: Path, moment: str | None,
           resume: bool) -> subprocess.CompletedProcess[str]:
    args = ["search", str(space), "--task", str(task), "--trials", str(TRIALS),
            "--run-dir", str(run), "--strategy", "random", "--seed", "5", "--quiet"]
    args += ["--resume"] if resume else []
    head = [sys.executable, "-m", "tests.search.killer", moment] if moment else \
        [sys.executable, "-m", "dpcdsl.cli"]
    return subprocess.run(head + args, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])


@pytest.mark.slow
def test_kill_at_five_moments_then_resume(tmp_path, task_file):
    space, task = tmp_path / "space.dpc", task_file(dataset=DATASET,
                                                    cache_dir=tmp_path / "cache")
    space.write_text(SPACE)
    run = tmp_path / "run"
    finished: dict[int, tuple[float, str]] = {}  # every result seen, by trial number
    told_late: list[int] = []
    for k, moment in enumerate(["cache", "mid_trial", "after_trial", "random:7", "report"]):
        r = search(space, task, run, moment, resume=k > 0)
        if not moment.startswith("random"):
            assert r.returncode == -9, (moment, r.returncode, r.stderr)
        # the killed driver's pool workers leave quietly (they share its stderr)
        assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, \
            (moment, r.stderr)
        now = trials(run)
        for t in now:  # what was finished before stays, unchanged
            if t.number in finished:
                assert t.state == TrialState.COMPLETE and \
                    (t.value, t.user_attrs["hash"]) == finished[t.number], (moment, t)
        finished.update({t.number: (t.value, t.user_attrs["hash"]) for t in now
                         if t.state == TrialState.COMPLETE})
        if moment == "cache":
            assert list((tmp_path / "cache").glob("*.partial-*")), "killed mid-build"
            assert not now or not any(counted(t) for t in now)
        if moment == "after_trial":  # scores stored, the study not told
            told_late = [t.number for t in now if t.state == TrialState.RUNNING
                         and "final_loss" in t.user_attrs]
            assert told_late, [(t.number, t.state) for t in now]
    r = search(space, task, run, None, resume=True)
    assert r.returncode == 0, r.stderr
    after = trials(run)
    assert not [t for t in after if t.state == TrialState.RUNNING]
    assert len([t for t in after if counted(t)]) == TRIALS
    by_number = {t.number: t for t in after}
    for number, (value, digest) in finished.items():
        assert (by_number[number].value, by_number[number].user_attrs["hash"]) == \
            (value, digest)
    for number in told_late:  # told with its stored scores, not trained again
        assert by_number[number].state == TrialState.COMPLETE
        assert "rerun_of" not in by_number[number].user_attrs
        assert not [t for t in after if t.user_attrs.get("rerun_of") == number]
    trained = [t.user_attrs["hash"] for t in after if t.state == TrialState.COMPLETE
               and "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained)), "an architecture was trained twice"
    assert not list((tmp_path / "cache").glob("*.partial-*"))
    assert (run / "report.html").is_file() and (run / "best.dpc").is_file()

    clean = tmp_path / "clean"
    assert search(space, task, clean, None, resume=False).returncode == 0
    distinct = {t.user_attrs["hash"] for t in trials(clean) if t.state == TrialState.COMPLETE}
    assert len(set(trained)) == len(distinct) == TRIALS
