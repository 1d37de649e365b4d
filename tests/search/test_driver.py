"""Searches end to end: real Optuna storage, real cache, real training, real processes."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import dpcdsl
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.search.driver import SearchConfig, search
from dpcdsl.search.executors import PoolExecutor, usable_cpus
from dpcdsl.search.messages import Job
from dpcdsl.search.study import STUDY, counted, driver_tag, storage_url
from dpcdsl.train.data.task import task_toml
from tests.conftest import SMALL_TASK
from tests.plugins import SCALED_SPACE
from tests.search import faults
from tests.search.conftest import RAY, SPACE, dpcc, trials_of
from tests.waiting import wait_until


@pytest.mark.parametrize("executor", ["local", "pool"])
@pytest.mark.slow
def test_search_end_to_end(files, tmp_path, executor):
    space, task = files()
    run = tmp_path / f"run-{executor}"
    study = search(SearchConfig(space, task, trials=5, executor=executor, workers=2,
                                run_dir=run, strategy="random", progress=False))
    done = [t for t in study.trials if counted(t)]
    assert len(done) == 5
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    assert complete and all(0 <= t.value <= 100 for t in complete)
    for t in complete:
        assert {"cell", "hash", "params", "madds", "computed_madds", "miou", "wall_s"} <= \
            set(t.user_attrs)
        assert t.user_attrs["computed_madds"] <= t.user_attrs["madds"]
        assert Space.from_text(t.user_attrs["cell"]).concrete().hash == t.user_attrs["hash"]
    # outputs
    best = (run / "best.dpc").read_text()
    module = dpcdsl.compile(best, backend="torch", in_channels=64)
    assert module is not None
    report = (run / "report.html").read_text()
    assert ">Leaderboard</h2>" in report and ">Progress</h2>" in report
    assert report.count("<canvas") == 5  # progress (2), Pareto fronts (2), learning curves
    assert report.count("<svg") >= min(5, len({t.user_attrs["hash"] for t in complete}))
    assert (run / "best.svg").read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    assert (run / "leaderboard.csv").read_text().startswith("rank,trial,state,miou")


@pytest.mark.slow
def test_duplicates_are_not_trained_again(files, tmp_path):
    space, task = files("cell tiny(x, channels = 8) { return conv(x, kernel = {1, 3}) }")
    study = search(SearchConfig(space, task, trials=6, run_dir=tmp_path / "run",
                                progress=False))
    dups = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(dups) >= 4  # two architectures, six trials
    for t in dups:
        original = study.trials[t.user_attrs["duplicate_of"]]
        assert t.value == original.value and t.user_attrs["hash"] == original.user_attrs["hash"]


@pytest.mark.slow
def test_workers_never_train_the_same_computation_at_once(files, tmp_path):
    """Two workers, one computation (three rates that read only padding at 4x4): the
    trials drawn while it trains wait for its result instead of training it again."""
    space, task = files("cell tiny(x, channels = 8) { return sepconv(x, rate = {4, 8, 12}) }")
    study = search(SearchConfig(space, task, trials=5, executor="pool", workers=2,
                                run_dir=tmp_path / "run", progress=False))
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) == 1 and trained[0].state == TrialState.COMPLETE
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 5
    assert all(t.value == trained[0].value for t in study.trials)


@pytest.mark.slow
def test_architectures_equal_at_the_task_feature_size_are_trained_once(files, tmp_path):
    """A crop of 64 at output stride 16 gives 4x4 features, where rates 4, 8 and 12 read
    only padding beyond the centre tap: three architectures, one computation."""
    space, task = files("cell tiny(x, channels = 8) { return sepconv(x, rate = {4, 8, 12}) }")
    study = search(SearchConfig(space, task, trials=6, run_dir=tmp_path / "run",
                                progress=False))
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) == 1
    assert len({t.user_attrs["hash"] for t in study.trials}) > 1  # yet several were drawn
    assert len({t.user_attrs["same_as"] for t in study.trials}) == 1
    assert all(t.value == trained[0].value for t in study.trials)
    # the compiled head ran only the centre taps there, and the trial says so
    a = trained[0].user_attrs
    assert a["computed_madds"] < a["madds"]


@pytest.mark.slow
def test_failures_are_recorded_and_the_search_goes_on(files, tmp_path):
    # a cell that raises (its pooling window is larger than the 4x4 features), one worker that
    # dies on every attempt, and a run whose loss diverges
    space, task = files("cell f(x, channels = 8) { return one_of(pool(x, mode = window, window = 32), "
                        "conv(x, kernel = 1), sepconv(x, rate = {1, 2, 3})) }")
    pool = PoolExecutor(2, handle=functools.partial(faults.exit_always, 1))
    study = search(SearchConfig(space, task, trials=6, executor=pool,
                                run_dir=tmp_path / "run", progress=False, seed=3))
    reasons = [t.user_attrs.get("failure", "") for t in study.trials
               if t.state == TrialState.FAIL]
    assert any("worker died twice" in r for r in reasons), reasons
    assert len([t for t in study.trials if counted(t)]) == 6

    # a cell that cannot be built at the task's feature sizes is drawn again, as one
    # over the budget is: it is not trained, and uses no budget
    redrawn = search(SearchConfig(space, task, trials=8, run_dir=tmp_path / "raise",
                                  progress=False, seed=1))
    refused = [t for t in redrawn.trials if "unbuildable" in t.user_attrs]
    assert refused and all("the pooling window 32x32 is larger than the 4x4 feature map"
                           in t.user_attrs["unbuildable"] for t in refused)
    assert not any(counted(t) for t in refused)
    assert len([t for t in redrawn.trials if counted(t)]) == 8
    assert "drawn that cannot be built at the task's feature sizes, not trained" in \
        (tmp_path / "raise" / "report.html").read_text()
    _, bad_task = files("cell f(x, channels = 8) { return conv(x, kernel = 1) }",
                        train={"lr": 1e12})
    nan = search(SearchConfig(tmp_path / "space.dpc", bad_task, trials=2,
                              run_dir=tmp_path / "nan", progress=False))
    assert all("diverged" in t.user_attrs["failure"] for t in nan.trials)



@pytest.mark.slow
def test_run_folder_is_not_overwritten(files, tmp_path):
    space, task = files()
    cfg = SearchConfig(space, task, trials=1, run_dir=tmp_path / "run", progress=False)
    search(cfg)
    with pytest.raises(DpcError, match="already holds a search"):
        search(cfg)
    with pytest.raises(DpcError, match="nothing to resume"):
        search(SearchConfig(space, task, trials=1, run_dir=tmp_path / "other", resume=True,
                            progress=False))


@pytest.mark.slow
def test_kill_9_then_resume(files, tmp_path):
    space, task = files()
    run = tmp_path / "run"
    args = [sys.executable, "-m", "dpcdsl.cli", "search", str(space), "--task", str(task),
            "--trials", "8", "--run-dir", str(run)]
    log = tmp_path / "driver.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 240
    before: list[optuna.trial.FrozenTrial] = []
    unread: Exception | None = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if (run / "study.db").exists():
            try:
                before = [t for t in trials_of(run) if t.state == TrialState.COMPLETE]
            except Exception as e:  # the driver is creating the study
                unread = e
                continue
            if len(before) >= 3:
                break
    proc.kill()  # SIGKILL, as a lost machine or the OOM killer ends a driver
    proc.wait()
    assert len(before) >= 3, f"last failed read: {unread!r}\ndriver: {log.read_text()}"
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    after = trials_of(run)
    kept = {t.number: t for t in after}
    for t in before:  # every finished trial is still there, once, unchanged
        assert kept[t.number].state == TrialState.COMPLETE and kept[t.number].value == t.value
    assert len([t for t in after if counted(t)]) == 8
    hashes = [t.user_attrs.get("hash") for t in after if t.state == TrialState.COMPLETE
              and "duplicate_of" not in t.user_attrs]
    assert len(hashes) == len(set(hashes))


@pytest.mark.slow
def test_rerank_records_new_scores_and_the_rank_correlation(files, tmp_path):
    from dpcdsl.deploy import export_run
    from dpcdsl.search.rerank import rerank, spearman

    space, task = files()
    run = tmp_path / "run"
    search(SearchConfig(space, task, trials=4, run_dir=run, progress=False))
    result = rerank(run, top=3, steps=12)
    assert 1 <= len(result["rows"]) <= 3
    assert all(0 <= r["rerank_miou"] <= 100 for r in result["rows"])
    assert (run / "rerank.json").exists()
    assert ">Re-ranking</h2>" in (run / "report.html").read_text()
    with pytest.raises(DpcError, match="none of its cells was trained as a whole model"):
        export_run(run, check=False)
    e2e = rerank(run, top=1, steps=2, end_to_end=True)
    assert e2e["end_to_end"] and len(e2e["rows"]) == 1
    best = run / "rerank" / f"trial-{e2e['rows'][0]['trial']}"
    assert (best / "checkpoint.json").exists()
    exported = export_run(run, run / "best.onnx", image=(64, 64))  # the best re-ranked
    assert exported.what.startswith(f"the model of {best}") and exported.max_error <= 1e-5
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


@pytest.mark.slow
def test_dpcc_search_report_and_rerank_commands(files, tmp_path):
    space, task = files()
    run = tmp_path / "run"

    def dpcc(*args):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    r = dpcc("search", space, "--task", task, "--trials", 2, "--run-dir", run,
             "--strategy", "evolution", "--baseline", "aspp")
    assert r.returncode == 0, r.stderr
    assert "warning: strategy 'evolution' draws its first 20 trials uniformly" in r.stderr
    assert "best of" in r.stdout and (run / "best.dpc").exists()
    # output to a file (not a terminal): a log line per finished trial
    assert "trial 0 finished (mIOU" in r.stderr and "search ended: 2/2 finished" in r.stderr
    # the command line's default is auto: on a multi-core CPU, a pool of 1-thread workers
    cpus = usable_cpus()
    if cpus >= 2:
        assert re.search(rf"trials run on pool \({cpus} workers, 1 CPU thread each\)",
                         r.stderr), r.stderr
    else:
        assert "trials run in this process, 1 CPU thread" in r.stderr
    # the baseline trained once on the same proxy, and the dataset's class names
    page = (run / "report.html").read_text()
    assert "Baseline: aspp reaches mIOU <b>" in page
    from dpcdsl.train.data.synthetic import CLASS_NAMES
    study = optuna.load_study(study_name=STUDY, storage=storage_url(run, None))
    assert study.user_attrs["class_names"] == list(CLASS_NAMES)
    assert study.user_attrs["settings"] == {"strategy": {}, "pruner": {}, "trials": 2}
    # the study's parameters read as the space does (Optuna's plots, optuna-dashboard)
    params = {k: v for t in trials_of(run) for k, v in t.params.items()}
    ops = next(v for k, v in params.items() if k.endswith(".op"))
    assert ops in ("conv(kernel = {1, 3})", "sepconv(rate = {1, 2})", "pool(grid = {1, 2})")
    # ops are categorical, numbers ordered: {1, 3} is an int distribution of step 2
    for t in trials_of(run):
        for name, d in t.distributions.items():
            if name.endswith(".op"):
                assert isinstance(d, optuna.distributions.CategoricalDistribution)
            else:
                assert isinstance(d, optuna.distributions.IntDistribution), (name, d)
                assert (d.low, d.high, d.step) in ((1, 3, 2), (1, 2, 1))
                assert t.params[name] in (1, 2, 3)
        # mIOU at every evaluation, though no pruner asked for it: learning curves
        assert t.intermediate_values and max(t.intermediate_values) == 8
    (run / "report.html").unlink()
    r = dpcc("report", run)
    assert r.returncode == 0 and (run / "report.html").exists()
    r = dpcc("rerank", run, "--top", 1, "--steps", 4)
    assert r.returncode == 0 and "Spearman" in r.stdout
    assert "rerank 1/1 (trial " in r.stderr and "evaluated: step 4/4" in r.stderr
    r = dpcc("search", space, "--task", task, "--run-dir", run, "--strategy", "random")
    assert r.returncode == 1 and "already holds a search" in r.stderr
    r = dpcc("search", space, "--task", task, "--run-dir", tmp_path / "x", "--strategy",
             "rando")
    assert r.returncode == 2 and "'rando' is not one of 'random'" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


@pytest.mark.slow
@RAY
def test_ray_executor_gives_each_trial_its_own_device(files, tmp_path, ray_cluster):
    """A search on a Ray cluster, of a space whose every cell uses an op registered by a
    plugin that the cluster's Python has installed."""
    space, task = files(SCALED_SPACE)
    run = tmp_path / "run"
    r = dpcc("search", space, "--task", task, "--trials", 4, "--executor", "ray",
             "--workers", 2, "--ray-address", ray_cluster.address, "--gpus-per-trial", 1,
             "--cpus-per-trial", 1, "--run-dir", run, "--quiet", env=ray_cluster.env)
    assert r.returncode == 0, r.stderr
    trials = trials_of(run)
    assert len([t for t in trials if counted(t)]) == 4
    devices = {t.number: t.user_attrs["device"] for t in trials if "device" in t.user_attrs}
    assert devices and set(devices.values()) <= {"0", "1"}
    # the first two trials ran at the same time, so they held different devices
    if 0 in devices and 1 in devices:
        assert devices[0] != devices[1]
    # every evaluation reached the driver from the cluster: the trials' learning curves
    trained = [t for t in trials if t.state == TrialState.COMPLETE
               and "duplicate_of" not in t.user_attrs]
    assert trained and all(sorted(t.intermediate_values) == [4, 8] for t in trained)
    assert all("scale(" in t.user_attrs["cell"] for t in trained)  # the plugin's op ran


@pytest.mark.slow
def test_pool_workers_persist_across_trials(files, tmp_path):
    # two workers take six trials: the framework is imported twice, not six times
    space, task = files()
    pool = PoolExecutor(2)
    study = search(SearchConfig(space, task, trials=6, executor=pool,
                                run_dir=tmp_path / "run", progress=False))
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 6
    assert pool.started_workers == 2
    assert not pool.workers  # all stopped when the search ended


@pytest.mark.slow
def test_a_dead_worker_is_replaced_and_its_trial_retried(files, tmp_path):
    space, task = files()
    pool = PoolExecutor(2, handle=functools.partial(faults.exit_once, 0,
                                                    str(tmp_path / "died")))
    study = search(SearchConfig(space, task, trials=2, executor=pool,
                                run_dir=tmp_path / "run", progress=False))
    first = study.trials[0]
    assert (tmp_path / "died").exists()
    assert first.state == TrialState.COMPLETE and first.user_attrs["attempts"] == 2


@pytest.mark.parametrize("executor", ["local", "pool"])
@pytest.mark.slow
def test_per_trial_timeout(files, tmp_path, executor):
    space, task = files(train={"steps": 100000})
    study = search(SearchConfig(space, task, trials=2, executor=executor, workers=2,
                                timeout=2.0, run_dir=tmp_path / "run", progress=False))
    reasons = [t.user_attrs.get("failure") for t in study.trials]
    assert reasons == ["timeout after 2 s"] * 2


def test_a_local_trial_that_reaches_no_step_is_stopped_by_the_alarm(monkeypatch):
    # a hang before the first step (loading): the alarm stops it a grace period later
    import dpcdsl.search.executors as executors

    def hang(job, report=None, on_step=None):
        time.sleep(30)

    monkeypatch.setattr(executors, "run_job", hang)
    monkeypatch.setattr(executors.LocalExecutor, "GRACE_S", 0.2)
    local = executors.LocalExecutor(timeout=0.3)
    start = time.perf_counter()
    local.submit(0, Job(cell="", task={}))
    [(number, outcome)] = local.collect()
    assert outcome.failure == "timeout after 0.3 s"
    assert 0.5 <= time.perf_counter() - start < 5


@pytest.mark.slow
def test_pruning_stops_a_trial_through_the_trainer(files, tmp_path):
    from dpcdsl.search.driver import _Run
    from dpcdsl.search.executors import LocalExecutor
    from dpcdsl.search.ledger import InFlight, Ledger
    from dpcdsl.search.strategies import make_sampler
    from dpcdsl.train.data.task import load_task

    space_file, task_file = files()
    space = Space.from_file(space_file)
    task = load_task(task_file)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("random", space),
                                pruner=optuna.pruners.ThresholdPruner(upper=-1.0))
    trial = study.ask()
    cfg = SearchConfig(space_file, task_file, run_dir=tmp_path, prune="median")
    run = _Run(study, space, LocalExecutor(), task.model_dump(mode="json"), cfg,
               Ledger(study), InFlight())
    ended = run.launch(trial)
    assert ended == "pruned" and study.trials[0].state == TrialState.PRUNED
    assert study.trials[0].intermediate_values  # the trainer reported before the stop


@pytest.mark.slow
def test_pool_workers_ask_the_driver_whether_to_prune(files, tmp_path):
    space, task = files(train={"steps": 40, "eval_every": 5})
    study = search(SearchConfig(space, task, trials=10, executor="pool", workers=2,
                                prune="asha", run_dir=tmp_path / "run", progress=False))
    assert len([t for t in study.trials if counted(t)]) == 10
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "successive halving stops some of ten trials"
    assert all("pruned at step" in t.user_attrs["pruned"] for t in pruned)


@pytest.mark.slow
def test_a_search_where_every_trial_fails_exits_nonzero_and_names_no_best(files, tmp_path):
    # every architecture pools over a window larger than the 4x4 features
    space, task = files("cell f(x, channels = 8) { return pool(x, mode = window, window = {16, 32}) }")
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search", str(space), "--task",
                        str(task), "--trials", "2", "--run-dir", str(run)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout
    assert "no architecture of the space can be built at the task's feature sizes" in r.stderr
    assert "larger than the 4x4" in r.stderr
    assert "Traceback" not in r.stderr and "best.dpc" not in r.stdout
    assert not (run / "best.dpc").exists() and not (run / "best.svg").exists()
    # trials that fail in training also end the search with exit 1, each with its
    # traceback kept in the run folder
    _, bad = files("cell f(x, channels = 8) { return conv(x, kernel = 1) }",
                   train={"lr": 1e12})
    run = tmp_path / "diverges"
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search", str(space), "--task",
                        str(bad), "--trials", "2", "--run-dir", str(run)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "no trial of 2 finished" in r.stderr, r.stderr
    assert (run / "report.html").exists() and (run / "leaderboard.csv").exists()
    kept = sorted((run / "failures").glob("trial-*.txt"))
    assert kept and all("Diverged" in f.read_text() and "Traceback" in f.read_text()
                        for f in kept)
    log = (run / "search.log").read_text()
    assert "search started: 2 trials" in log and "trial 0 finished (diverged" in log


@pytest.mark.parametrize("option, value, message", [
    ("executor", "foo", "unknown executor 'foo'"),
    ("strategy", "rando", "unknown strategy 'rando'. Did you mean 'random'?"),
    ("prune", "ashaa", "unknown pruner 'ashaa'. Did you mean 'asha'?"),
    ("timeout", -1.0, "timeout must be positive, got -1"),
    ("max_madds", 0, "max_madds must be positive, got 0"),
])
@pytest.mark.slow
def test_bad_option_names_fail_before_anything_is_written(files, tmp_path, option, value,
                                                          message):
    space, task = files(cache_dir=tmp_path / "cache")  # its own: nothing may be built
    run = tmp_path / "run"
    with pytest.raises(DpcError, match=message):
        search(SearchConfig(space, task, run_dir=run, progress=False, **{option: value}))
    assert not run.exists() and not (tmp_path / "cache").exists()
    # the corrected command is then accepted
    study = search(SearchConfig(space, task, trials=1, run_dir=run, progress=False))
    assert len(study.trials) == 1


@pytest.mark.parametrize("storage, garbage", [("bogus://", False), (None, True)])
@pytest.mark.slow
def test_a_storage_that_cannot_be_opened_is_a_clear_error(files, tmp_path, storage, garbage):
    space, task = files()
    run = tmp_path / "run"
    if garbage:  # a study.db that is not a database
        run.mkdir()
        (run / "study.db").write_text("garbage")
    with pytest.raises(DpcError, match="cannot open the Optuna storage") as e:
        search(SearchConfig(space, task, run_dir=run, progress=False, storage=storage))
    assert "sqlite:///" in e.value.render()
    if garbage:
        r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "report", str(run)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "file is not a database" in r.stderr
        assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_resume_refuses_a_changed_search_unless_allowed(files, task_file, tmp_path):
    space, task = files()
    run = tmp_path / "run"
    search(SearchConfig(space, task, trials=1, run_dir=run, progress=False))
    task_file(train={"steps": 12})
    with pytest.raises(DpcError) as e:
        search(SearchConfig(space, task, trials=2, run_dir=run, progress=False, resume=True,
                            strategy="ers"))
    messages = [d.message for d in e.value.diagnostics]
    assert len(messages) == 2
    assert messages[0].startswith("--resume with a different task")
    assert messages[1] == "--resume with a different strategy: the study has random, this " \
        "run ers"
    assert "--allow-changed task" in str(e.value)
    assert len(trials_of(run)) == 1  # nothing ran
    study = search(SearchConfig(space, task, trials=2, run_dir=run, progress=False,
                                resume=True, allow_changed=("task",)))
    assert len(study.trials) == 2
    assert list(study.user_attrs["changes"][0]) == ["task"]
    # the change is now the study's own: a plain resume with the same task goes on
    study = search(SearchConfig(space, task, trials=3, run_dir=run, progress=False,
                                resume=True))
    assert len(study.trials) == 3


def test_progress_without_a_terminal_is_log_lines_with_a_heartbeat():
    import io
    import re

    from dpcdsl.search.ledger import Ledger
    from dpcdsl.search.progress import SearchProgress

    study = optuna.create_study(direction="maximize")
    ledger = Ledger(study)

    def update(progress):
        ledger.sync()
        progress.update(len(ledger.counted), ledger.best, ledger.failures, ledger.take_fresh())

    stream = io.StringIO()
    with SearchProgress(3, True, heartbeat=0.3, stream=stream) as progress:
        study.add_trial(optuna.trial.create_trial(value=40.0))
        update(progress)
        # a long trial: heartbeats keep the log moving
        wait_until(lambda: stream.getvalue().count("search running: 1/3 finished") >= 2,
                   "two heartbeats")
        study.add_trial(optuna.trial.create_trial(value=55.5))
        update(progress)
    lines = stream.getvalue().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines)
    text = "\n".join(lines)
    assert "trial 0 finished (mIOU 40.0): 1/3 finished, best mIOU 40.0" in text
    assert "trial 1 finished (mIOU 55.5): 2/3 finished, best mIOU 55.5" in text
    assert text.count("search running: 1/3 finished") >= 2
    assert lines[-1].split(" ", 2)[2].startswith("search ended: 2/3 finished, best mIOU 55.5")
    quiet = io.StringIO()
    with SearchProgress(3, "none", stream=quiet) as progress:
        update(progress)
    assert quiet.getvalue() == ""


def test_a_resumed_searchs_rate_counts_only_the_trials_it_ran():
    import io

    from dpcdsl.search.ledger import Ledger
    from dpcdsl.search.progress import SearchProgress

    study = optuna.create_study(direction="maximize")
    for v in (10.0, 20.0, 30.0, 40.0, 50.0):  # finished before the resume
        study.add_trial(optuna.trial.create_trial(value=v))
    ledger = Ledger(study)

    def update(progress):
        ledger.sync()
        progress.update(len(ledger.counted), ledger.best, ledger.failures, ledger.take_fresh())

    with SearchProgress(8, "log", stream=io.StringIO()) as progress:
        update(progress)  # the driver's first update, before any trial runs
        progress.start -= 36.0  # one trial in 36 s: 100 an hour, not 600
        study.add_trial(optuna.trial.create_trial(value=60.0))
        update(progress)
        assert "6/8 finished, best mIOU 60.0, 100 trials/h, ETA 1 min" in progress.summary


@pytest.mark.slow
def test_the_search_moves_inside_a_trial(files, tmp_path, monkeypatch):
    """A trial run in process moves the bar step by step (fractions of a trial), and the
    log's heartbeat names the trial and its step."""
    from dpcdsl.search import progress as search_progress

    moves: list[float] = []
    evaluated: list[tuple[int, int, float]] = []
    real = search_progress.SearchProgress.within

    def within(self, number, steps):
        moved = real(self, number, steps)

        def spy(k, miou=None):
            moved(k, miou)
            if miou is not None:  # an evaluation, from whichever process runs the trial
                evaluated.append((number, k, miou))
                if self.mode == "log":
                    assert f"trial {number} at step {k}/{steps} (mIOU {miou:.1f})" \
                        in self.summary
                return
            moves.append(self.finished + k / steps)
            if self.mode == "log":
                assert f"trial {number} at step {k}/{steps}" in self.summary
        return spy

    monkeypatch.setattr(search_progress.SearchProgress, "within", within)
    space, task = files()
    search(SearchConfig(space, task, trials=2, run_dir=tmp_path / "run", progress="log",
                        executor="local"))
    assert moves[:8] == [k / 8 for k in range(1, 9)]  # trial 0, steps 1..8 of 8
    assert moves[8:] == [1 + k / 8 for k in range(1, 9)] or len(moves) == 8  # a duplicate
    assert [k for n, k, _ in evaluated if n == 0] == [4, 8]  # eval_every 4
    # in a pool the trials run in workers: their evaluations still say where they are
    evaluated.clear()
    search(SearchConfig(space, task, trials=2, run_dir=tmp_path / "pool", progress="log",
                        executor="pool", workers=2))
    assert {k for _, k, _ in evaluated} == {4, 8}


def test_the_log_names_every_running_trial_with_its_latest_miou():
    import io

    from dpcdsl.search.progress import SearchProgress

    stream = io.StringIO()
    with SearchProgress(4, "log", heartbeat=0.2, stream=stream) as progress:
        progress.within(3, 300)(40, 41.25)
        progress.within(4, 300)(20)
        wait_until(lambda: "trial 3 at step 40/300 (mIOU 41.2), trial 4 at step 20/300"
                   in stream.getvalue(), "a heartbeat with both running trials")
        finished = optuna.trial.create_trial(value=50.0)
        finished.number = 3
        progress.update(1, 50.0, 0, [finished])
        assert progress.summary.endswith("; trial 4 at step 20/300")


@pytest.mark.slow
def test_an_architecture_that_failed_is_not_trained_again(files, tmp_path):
    # two architectures that diverge (a failure a rerun would repeat)
    space, task = files("cell f(x, channels = 8) { return conv(x, kernel = {1, 3}) }",
                        train={"lr": 1e12})
    study = search(SearchConfig(space, task, trials=5, run_dir=tmp_path / "run",
                                progress=False))
    dups = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(dups) >= 3  # two architectures, five trials
    for t in dups:
        original = study.trials[t.user_attrs["duplicate_of"]]
        assert t.state == TrialState.FAIL and "duplicate_of" not in original.user_attrs
        assert t.user_attrs["failure"] == original.user_attrs["failure"]
        assert "wall_s" not in t.user_attrs  # nothing ran
    retried = search(SearchConfig(space, task, trials=4, run_dir=tmp_path / "retry",
                                  progress=False, retry_failed=True))
    assert not [t for t in retried.trials if "duplicate_of" in t.user_attrs]
    assert all("wall_s" in t.user_attrs for t in retried.trials)  # each one ran


@pytest.mark.slow
def test_a_resumed_search_draws_new_architectures(files, tmp_path):
    space, task = files("cell f(x, channels = 8) { return sepconv(x, rate = "
                        "({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4, 5, 6, 7, 8})) }")
    run = tmp_path / "run"
    search(SearchConfig(space, task, trials=3, run_dir=run, progress=False))
    study = search(SearchConfig(space, task, trials=6, run_dir=run, progress=False,
                                resume=True))
    hashes = [t.user_attrs["hash"] for t in study.trials]
    assert len(hashes) == 6
    assert hashes[3:] != hashes[:3]  # the strategy did not restart from its first draw


@pytest.mark.slow
def test_a_second_driver_on_a_running_search_is_refused(files, tmp_path):
    space, task = files()
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(  # another driver holding the run folder
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from dpcdsl.search.study import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
         str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DpcError, match=f"is in use by a running search \\(pid "
                           f"{holder.pid}\\)"):
            search(SearchConfig(space, task, trials=1, run_dir=run, progress=False))
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    study = search(SearchConfig(space, task, trials=1, run_dir=run, progress=False))
    assert len(study.trials) == 1  # a killed holder releases the folder


@pytest.mark.parametrize("objectives", [("miou",), ("miou", "madds")])
def test_a_trial_whose_scores_were_stored_is_not_trained_again_on_resume(tmp_path,
                                                                         objectives):
    from dataclasses import asdict

    from dpcdsl.search.driver import _rerun_interrupted
    from dpcdsl.search.messages import Scores
    from dpcdsl.search.objectives import directions

    study = optuna.create_study(storage=storage_url(tmp_path, None), study_name=STUDY,
                                directions=directions(objectives))
    study.set_user_attr("objectives", list(objectives))
    stored, bare = study.ask(), study.ask()  # the driver died with both running
    for trial in (stored, bare):
        trial.set_user_attr("driver", driver_tag())  # a resume here: no other driver has it
    scores = Scores(miou=61.5, params=10, madds=20, computed_madds=20, per_class_iou=[61.5],
                    evals=[(4, 61.5)], timings={"steps": 1.0}, threads=1, evaluator="proxy",
                    final_loss=0.3)
    for key, value in asdict(scores).items():  # stored, but never told
        stored.set_user_attr(key, value)
    _rerun_interrupted(study)
    trials = study.get_trials()
    assert trials[0].state == TrialState.COMPLETE
    assert trials[0].values == [61.5, 20][:len(objectives)]  # mIOU, and the cost if asked
    assert trials[1].state == TrialState.FAIL
    assert study.get_trials(states=(TrialState.WAITING,))[0].user_attrs["rerun_of"] == \
        bare.number


@pytest.mark.slow
def test_two_drivers_on_one_shared_storage_leave_each_other_be(files, tmp_path):
    """The multi-machine mode: drivers with their own run folders share one storage. A
    driver that joins with --resume must not take the other's running trial for an
    interrupted one (the other would then crash telling it)."""
    space, task = files()
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    def args(run: str, trials: int) -> list[str]:
        return ["search", str(space), "--task", str(task), "--trials", str(trials),
                "--run-dir", str(tmp_path / run), "--storage", url, "--quiet"]

    release = tmp_path / "release"  # the first driver's first trial runs until it exists
    first = subprocess.Popen([sys.executable, "-m", "tests.search.killer", f"hold:{release}",
                              *args("a", 6)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            running = [t for t in optuna.load_study(study_name=STUDY, storage=url).get_trials()
                       if t.state == TrialState.RUNNING]
        except Exception:  # not created yet
            continue
        if running:
            break
    second = subprocess.Popen([sys.executable, "-m", "dpcdsl.cli", *args("b", 6), "--resume"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the second driver runs the rest of the budget, the first's held trial counted as
    # taken: then the held trial ends and both drivers stop
    while len([t for t in optuna.load_study(study_name=STUDY, storage=url).get_trials()
               if counted(t)]) < 5 and time.time() < deadline:
        assert second.poll() is None, second.communicate()
        time.sleep(0.2)
    release.touch()
    _, second_errors = second.communicate(timeout=600)
    out, errors = first.communicate(timeout=600)
    assert second.returncode == 0, second_errors
    assert first.returncode == 0, errors
    assert "are running under other drivers" in second_errors
    trials = optuna.load_study(study_name=STUDY, storage=url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not [t for t in trials if "rerun_of" in t.user_attrs]
    assert len([t for t in trials if counted(t)]) == 6  # the budget, shared exactly
    pids = {t.user_attrs["driver"]["pid"] for t in trials}
    assert first.pid in pids and len(pids) <= 2  # each trial names the driver that ran it


@pytest.mark.slow
def test_the_run_folder_keeps_a_copy_of_the_space_that_needs_no_other_file(tmp_path,
                                                                           task_file):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.dpc").write_text(
        "let rates = {1, 2}\ncell blk(x) { return sepconv(x, rate = rates) }\n")
    space = tmp_path / "space.dpc"
    space.write_text('import "lib/blocks.dpc"\n'
                     "cell s(x, channels = 8) { return conv(concat(blk(x), x), kernel = 1) }\n")
    task = task_file()
    run = tmp_path / "run"
    search(SearchConfig(space, task, trials=1, run_dir=run, progress=False))
    copy = run / "space.dpc"
    elsewhere = tmp_path / "archive" / "space.dpc"
    elsewhere.parent.mkdir()
    elsewhere.write_text(copy.read_text())
    original, kept = Space.from_file(space), Space.from_file(elsewhere, "s")
    assert "import" not in copy.read_text() and kept.count() == original.count() == 2
    assert {c.hash for c in kept.enumerate()} == {c.hash for c in original.enumerate()}


GRID = """
cell grid(x, channels = 8) {
  a = sepconv(x, rate = ({1, 2, 3, 4}, {1, 2, 3, 4}))
  b = sepconv(a, rate = ({1, 2, 3, 4}, {1, 2, 3, 4}))
  return conv(concat(a, b), kernel = 1)
}
"""


@pytest.mark.slow
def test_strategy_settings_from_the_task_file_and_the_cli(files, tmp_path):
    """evolution with a population of 2 mutates from the third trial on: every later
    trial is one changed decision away from an earlier one (uniform draws of this
    space's four 4-way choices rarely are)."""
    space, task = files(GRID, strategy={"population": 2, "tournament": 2})
    study = search(SearchConfig(space, task, trials=7, strategy="evolution",
                                run_dir=tmp_path / "run", progress=False, seed=1))
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for t in trials[2:]:
        assert any(sum(t.params[k] != e.params[k] for k in t.params) == 1
                   for e in trials if e.number < t.number), t.params
    assert study.user_attrs["identity"]["strategy"] == \
        'evolution {"population": 2, "tournament": 2}'

    def dpcc(*args):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    run = tmp_path / "cli"
    base = ["search", space, "--task", task, "--trials", 3, "--run-dir", run,
            "--strategy", "evolution"]
    r = dpcc(*base, "--setting", "population=1")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    r = dpcc(*base, "--setting", "popluation=1", "--resume")
    assert r.returncode == 1 and "Did you mean 'population'" in r.stderr
    r = dpcc(*base, "--setting", "population=3", "--resume", "--trials", 4)
    assert r.returncode == 1 and "--resume with a different strategy" in r.stderr
    assert 'evolution {"population": 1, "tournament": 2}' in r.stderr


@pytest.mark.slow
def test_pruner_settings_from_the_task_file_and_the_cli(files, tmp_path):
    """The median rule waits for [pruner] startup finished trials; the settings are
    checked before anything is written, and are part of what a resume must keep."""
    from dpcdsl.search.strategies import make_pruner

    pruner = make_pruner("median", {"startup": 3, "warmup": 2})
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (3, 2)
    assert make_pruner("asha", {"reduction": 2})._reduction_factor == 2
    space, task = files(pruner={"startup": 1})
    study = search(SearchConfig(space, task, trials=3, prune="median",
                                run_dir=tmp_path / "run", progress=False))
    assert study.pruner._n_startup_trials == 1
    assert study.user_attrs["identity"]["prune"] == 'median {"startup": 1}'

    def dpcc(*args):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    run = tmp_path / "cli"
    r = dpcc("search", space, "--task", task, "--trials", 2, "--run-dir", run, "--prune",
             "median", "--prune-setting", "strtup=2")
    assert r.returncode == 1 and "pruner 'median' has no setting 'strtup'. Did you mean " \
        "'startup'" in r.stderr and not run.exists()
    r = dpcc("search", space, "--task", task, "--trials", 2, "--run-dir", run, "--prune",
             "median", "--prune-setting", "warmup=-1")
    assert r.returncode == 1 and "warmup = -1: expected an integer of at least 0" in r.stderr
    r = dpcc("search", space, "--task", task, "--trials", 2, "--run-dir", run, "--prune",
             "asha")  # the task file's [pruner] table is the median rule's
    assert r.returncode == 1 and "pruner 'asha' has no setting 'startup'" in r.stderr
    assert "Traceback" not in r.stderr and not run.exists()


@pytest.mark.slow
def test_a_run_folder_and_its_journal_work_from_any_directory(tmp_path):
    """A search run with relative paths (the space, the task, a cache relative to the
    task file, the run folder, a journal storage elsewhere) names its journal in its
    run folder; report and rerank, run from another directory, find it with no option
    and write nothing there."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "t").mkdir(parents=True)
    elsewhere.mkdir()
    (home / "space.dpc").write_text(SPACE)
    (home / "t" / "small.toml").write_text(task_toml({**SMALL_TASK, "cache_dir": "cache"}))

    def dpcc(*args, cwd):
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600, cwd=cwd)

    r = dpcc("search", "space.dpc", "--task", "t/small.toml", "--trials", 2, "--run-dir",
             "run", "--executor", "local", "--storage", "journal:state/journal.log",
             "--quiet", cwd=home)
    assert r.returncode == 0, r.stderr
    assert "trial 0 finished" not in r.stderr  # --quiet: no log lines
    assert (home / "t" / "cache").is_dir()
    run = home / "run"
    assert not (run / "study.db").exists()
    assert (run / "storage.txt").read_text().strip() == \
        f"journal:{(home / 'state' / 'journal.log').resolve()}"
    (run / "report.html").unlink()
    r = dpcc("report", run, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (run / "report.html").exists()
    r = dpcc("rerank", run, "--top", 1, "--steps", 2, cwd=elsewhere)
    assert r.returncode == 0 and "Spearman" in r.stdout, r.stderr
    assert list(elsewhere.iterdir()) == []  # nothing built or written here
    r = dpcc("report", tmp_path, cwd=elsewhere)  # a folder with no search
    assert r.returncode == 1
    assert "holds no search: no study.db, and no storage.txt naming another storage" in r.stderr


def test_a_database_password_is_never_written_to_the_run_folder(tmp_path):
    from dpcdsl.search.study import find_storage, record_storage

    record_storage(tmp_path, "postgresql://ann:s3cret@db.example/search")
    assert "s3cret" not in (tmp_path / "storage.txt").read_text()
    with pytest.raises(DpcError, match="kept in postgresql://ann:\\*\\*\\*@db.example/search"):
        find_storage(tmp_path, None)
    assert find_storage(tmp_path, "sqlite:///x.db") == "sqlite:///x.db"
    record_storage(tmp_path, "sqlite:////abs/study.db")
    assert find_storage(tmp_path, None) == "sqlite:////abs/study.db"


@pytest.mark.slow
def test_optuna_dashboard_opens_a_search_and_reads_its_trials(files, tmp_path):
    """A run's study.db opens in optuna-dashboard: its server starts on the study, its
    API lists the trials with numbers for numeric parameters, and their learning
    curves."""
    import json as jsonlib
    import urllib.request

    from tests.search.conftest import free_port

    space, task = files()
    run = tmp_path / "run"
    search(SearchConfig(space, task, run_dir=run, trials=3, executor="local",
                        progress=False))
    port = free_port()
    dashboard = str(Path(sys.executable).parent / "optuna-dashboard")
    server = subprocess.Popen([dashboard, storage_url(run, None), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return jsonlib.loads(r.read())

    def up() -> bool:
        assert server.poll() is None, server.communicate()[1]
        try:
            get("/api/meta")
            return True
        except OSError:
            return False

    try:
        wait_until(up, "optuna-dashboard to serve", timeout=60, poll=0.3)
        [study] = get("/api/studies")["study_summaries"]
        assert study["study_name"] == STUDY
        detail = get(f"/api/studies/{study['study_id']}")
        trials = detail["trials"]
        assert len(trials) >= 3
        complete = [t for t in trials if t["state"] == "Complete"]
        assert complete and all(t["intermediate_values"] for t in complete)
        numbers = [p for t in complete for p in t["params"] if not p["name"].endswith(".op")]
        assert numbers and all(p["distribution"]["type"] == "IntDistribution"
                               for p in numbers)
    finally:
        server.terminate()
        server.communicate(timeout=30)
