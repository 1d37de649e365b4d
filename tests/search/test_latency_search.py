"""A search that times its candidates: each trial records its latency on the runtime
asked for, and a latency budget keeps slower candidates from training, as the
multiply-add budget does; bad settings are refused before anything is written."""

from __future__ import annotations

import csv

import pytest
from optuna.trial import TrialState

from dpcdsl.errors import DpcError
from dpcdsl.search.config import SearchConfig
from dpcdsl.search.driver import search
from tests.search.conftest import dpcc, trials_of

#: two architectures, thousands of times apart in multiply-adds
FAST_OR_SLOW = """
cell fast_or_slow(x, channels = 8) {
  return one_of(
    conv(x, kernel = 1),
    conv(conv(conv(x, kernel = 3, channels = 1024), kernel = 3, channels = 1024), kernel = 3),
  )
}
"""
#: about 0.1 ms for the fast head and 5-10 ms for the slow one, on one thread (several
#: threads on a loaded machine wait on each other and time nothing useful)
BUDGET_MS = 2.0


@pytest.mark.slow
def test_a_latency_budget_keeps_slow_candidates_from_training(files, tmp_path):
    space, task = files(FAST_OR_SLOW)
    run = tmp_path / "run"
    r = dpcc("search", space, "--task", task, "--trials", 3, "--run-dir", run, "--executor",
             "local", "--threads", 1, "--latency", "torch", "--max-latency", f"{BUDGET_MS}ms",
             "--seed", 1)
    assert r.returncode == 0, r.stderr
    trials = trials_of(run)
    slow = [t for t in trials if "over_latency" in t.user_attrs]
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    assert slow and trained  # both architectures were drawn
    assert all(t.user_attrs["over_latency"] > BUDGET_MS for t in slow)
    assert all(t.user_attrs["latency_ms"] <= BUDGET_MS for t in trained)
    assert {t.user_attrs["latency_runtime"] for t in slow + trained} == {"torch"}
    assert all("miou" not in t.user_attrs for t in slow)  # never trained
    with open(run / "leaderboard.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["state"] == "complete"]
    assert rows and all(0 < float(row["latency_ms"]) <= BUDGET_MS for row in rows)
    assert "drawn slower than the latency budget of 2 ms on torch" in \
        (run / "report.html").read_text()


@pytest.mark.parametrize("options, message", [
    ({"max_latency": 5.0}, "a latency budget (max_latency) needs a runtime"),
    ({"latency": "tvm"}, "unknown runtime 'tvm'"),
    ({"latency": "torch", "max_latency": -1.0}, "max_latency must be positive"),
])
def test_bad_latency_settings_are_refused_before_anything_is_written(files, tmp_path,
                                                                     options, message):
    space, task = files(FAST_OR_SLOW)
    run = tmp_path / "run"
    with pytest.raises(DpcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        search(SearchConfig(space, task, run_dir=run, progress=False, **options))
    assert not run.exists()
