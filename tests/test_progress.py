"""Progress of one training run (dpcc proxy, train, rerank): a bar on a terminal,
timestamped lines elsewhere with a heartbeat, or nothing."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

from dpcdsl.progress import StepProgress, mode_for
from tests.conftest import EXAMPLES, ROOT

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def test_log_lines_at_each_evaluation_and_a_heartbeat_between():
    stream = io.StringIO()
    with StepProgress(4, "log", "aspp", heartbeat=0.3, stream=stream) as shown:
        shown.step(1, 2.5)
        shown.step(2, 1.25)
        shown.evaluated(2, 40.0)
        shown.step(3, 1.0)
        time.sleep(1.2)  # a slow step: the heartbeat keeps the log moving
        shown.step(4, 0.5)
        shown.evaluated(4, 55.5)
    lines = stream.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines)
    text = "\n".join(line.split(" ", 2)[2] for line in lines)
    assert text.startswith("aspp started: 4 steps")
    assert "aspp evaluated: step 2/4, loss 1.250, mIOU 40.0, ETA" in text
    assert text.count("aspp running: step 3/4, loss 1.000, mIOU 40.0") >= 2
    assert text.splitlines()[-1] == "aspp ended: step 4/4, loss 0.500, mIOU 55.5"


def test_nothing_when_quiet_and_a_bar_only_on_a_terminal():
    stream = io.StringIO()
    with StepProgress(2, "none", stream=stream) as shown:
        shown.step(1, 1.0)
        shown.evaluated(1, 3.0)
    assert stream.getvalue() == ""
    assert mode_for(True, io.StringIO()) == "log" and mode_for(False) == "none"


def test_dpcc_proxy_logs_its_training_when_output_is_a_file(tmp_path):
    task = tmp_path / "task.toml"
    task.write_text(f'cache_dir = "{tmp_path / "cache"}"\n[dataset]\ntrain_size = 8\n'
                    "val_size = 4\nimage_size = 64\n[train]\ncrop = 64\nsteps = 6\nbatch = 4\n"
                    "eval_every = 3\n")
    args = [sys.executable, "-m", "dpcdsl.cli", "proxy", str(EXAMPLES / "aspp.dpc"),
            "--task", str(task)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = [line.split(" ", 2)[2] for line in r.stderr.splitlines() if STAMP.match(line)]
    assert lines[0] == "aspp started: 6 steps"
    assert [line.split(":")[0] for line in lines[1:3]] == ["aspp evaluated"] * 2
    assert "step 3/6" in lines[1] and "step 6/6" in lines[2]
    assert lines[-1].startswith("aspp ended: step 6/6")
    quiet = subprocess.run(args + ["--quiet"], capture_output=True, text=True, timeout=600,
                           cwd=ROOT)
    assert quiet.returncode == 0 and quiet.stderr == "" and "mIOU" in quiet.stdout
