"""Progress of one training run (dpcc proxy, train, rerank): a bar on a terminal,
timestamped lines elsewhere with a heartbeat, or nothing."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from dpcdsl.train.progress import CountProgress, StepProgress, mode_for
from tests.conftest import EXAMPLES, ROOT
from tests.waiting import wait_until

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def test_log_lines_at_each_evaluation_and_a_heartbeat_between():
    stream = io.StringIO()
    with StepProgress(4, "log", "aspp", heartbeat=0.3, stream=stream) as shown:
        shown.step(1, 2.5)
        shown.step(2, 1.25)
        shown.evaluated(2, 40.0)
        shown.step(3, 1.0)
        # a slow step: the heartbeat keeps the log moving
        wait_until(lambda: stream.getvalue().count("aspp running") >= 2, "two heartbeats")
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


@pytest.mark.slow
def test_dpcc_proxy_logs_its_training_when_output_is_a_file(tmp_path, task_file):
    # its own cache: the log of building it is part of what is checked
    task = task_file(cache_dir=tmp_path / "cache", dataset={"train_size": 8, "val_size": 4},
                     train={"steps": 6, "eval_every": 3})
    args = [sys.executable, "-m", "dpcdsl.cli", "proxy", str(EXAMPLES / "aspp.dpc"),
            "--task", str(task)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    stamped = [line.split(" ", 2)[2] for line in r.stderr.splitlines() if STAMP.match(line)]
    # first the feature cache (12 images through the backbone), then the training
    cache = [line for line in stamped if line.startswith("caching features")]
    lines = [line for line in stamped if not line.startswith("caching features")]
    assert re.fullmatch(r"caching features \(\S+\) started: 12 images", cache[0])
    assert any(line.endswith(": 12/12 images") for line in cache[1:-1])
    assert cache[-1].endswith("ended: 12/12 images") and stamped[:len(cache)] == cache
    assert lines[0] == "aspp started: 6 steps"
    assert [line.split(":")[0] for line in lines[1:3]] == ["aspp evaluated"] * 2
    assert "step 3/6" in lines[1] and "step 6/6" in lines[2]
    assert lines[-1].startswith("aspp ended: step 6/6")
    quiet = subprocess.run(args + ["--quiet"], capture_output=True, text=True, timeout=600,
                           cwd=ROOT)
    assert quiet.returncode == 0 and quiet.stderr == "" and "mIOU" in quiet.stdout


def test_counted_work_logs_each_tenth_and_the_end():
    stream = io.StringIO()
    with CountProgress(100, "log", "caching features", stream=stream) as shown:
        for _ in range(25):
            shown.add(4)
    text = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()]
    assert text[0] == "caching features started: 100 images"
    assert [t.split(": ")[1].split(",")[0] for t in text[1:-1]] == \
        [f"{n}/100 images" for n in (12, 20, 32, 40, 52, 60, 72, 80, 92, 100)]
    assert text[-1] == "caching features ended: 100/100 images"
