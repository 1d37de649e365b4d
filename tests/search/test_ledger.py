"""The driver's ledger: the same view as a full read of the study, read in full only
at a cadence whose cost per trial does not grow, and exact about the budget."""

from __future__ import annotations

import multiprocessing
import random
from datetime import datetime, timedelta
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial

from dpcdsl.search.ledger import Ledger
from dpcdsl.search.study import UNTAGGED_S, counted, driver_tag, orphaned


def fill(study: optuna.Study, n: int, rng: random.Random, ledger: Ledger | None = None) -> None:
    """``n`` trials told one by one, as a driver tells them: completed with a score,
    failed with a reason, failed without one (interrupted: not counted) or pruned."""
    for _ in range(n):
        trial = study.ask()
        key = f"k{rng.randrange(40)}"
        trial.set_user_attr("same_as", key)
        kind = rng.random()
        if kind < 0.7:
            frozen = study.tell(trial, round(rng.uniform(0, 100), 1))
        elif kind < 0.85:
            trial.set_user_attr("failure", "error: too big")
            frozen = study.tell(trial, state=TrialState.FAIL)
        elif kind < 0.95:
            frozen = study.tell(trial, state=TrialState.FAIL)
        else:
            frozen = study.tell(trial, state=TrialState.PRUNED)
        if ledger is not None:
            ledger.told(frozen)
            ledger.refresh()


def test_the_ledger_sees_what_a_full_read_sees():
    study = optuna.create_study(direction="maximize")
    ledger = Ledger(study)
    fill(study, 300, random.Random(0), ledger)
    trials = study.get_trials()
    done = [t for t in trials if counted(t)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(ledger.counted) == [t.number for t in done]
    assert ledger.best == max(t.value for t in complete)
    assert ledger.failures == sum(t.state == TrialState.FAIL for t in done)
    assert [t.number for t in ledger.top(5)] == \
        [t.number for t in sorted(complete, key=lambda t: t.value, reverse=True)[:5]]
    assert [t.number for t in ledger.top(200)] == \
        [t.number for t in sorted(complete, key=lambda t: t.value, reverse=True)[:200]]
    first = {}
    for t in complete:
        first.setdefault(t.user_attrs["same_as"], t.number)
    assert {k: t.number for k, t in ledger.completed.items()} == first
    assert [t.number for t in ledger.finished] == [t.number for t in complete]
    assert [t.number for t in ledger.take_fresh()] == [t.number for t in done]
    assert ledger.take_fresh() == []


def test_full_reads_are_rare_and_their_cost_per_trial_does_not_grow():
    study = optuna.create_study(direction="maximize")
    ledger = Ledger(study, max_age_s=1e9)
    fill(study, 500, random.Random(1), ledger)
    at_500 = ledger.reads
    fill(study, 1500, random.Random(2), ledger)
    # a read costs in proportion to the trials; reads come every 1/32 of them
    assert at_500 < 40
    assert ledger.reads - at_500 < 50


def test_the_trials_of_other_drivers_are_seen_at_the_next_read_and_at_the_budget():
    clock = [0.0]
    study = optuna.create_study(direction="maximize")
    ledger = Ledger(study, max_age_s=10.0, clock=lambda: clock[0])
    for v in (10.0, 20.0):  # another driver's trials on the same storage
        study.add_trial(create_trial(value=v, user_attrs={"same_as": f"k{v}"}))
    ledger.refresh()
    assert len(ledger.counted) == 0  # not due yet
    clock[0] = 11.0
    ledger.refresh()
    assert len(ledger.counted) == 2 and ledger.best == 20.0
    study.add_trial(create_trial(value=30.0))
    assert ledger.room(100, pending=[]) == 98  # far from the budget: not read again
    assert ledger.room(4, pending=[]) == 1  # near it: read first
    running = study.ask()  # a live driver's trial (this process) counts as taken
    running.set_user_attr("driver", {"host": "elsewhere", "pid": 1})
    assert ledger.room(5, pending=[]) == 1
    assert ledger.room(5, pending=[running.number]) == 1  # not twice when it is ours
    assert not ledger.spent(4)
    study.tell(running, 40.0)  # the other driver ends its trial
    assert ledger.room(4, pending=[]) == 0
    assert ledger.spent(4)


ELSEWHERE = {"host": "elsewhere", "pid": 1}  # a live driver on another machine


def test_a_new_trial_names_its_driver_from_the_moment_it_exists():
    """Another driver resuming the study reads every running trial; one that names no
    driver would be taken for an interrupted one, failed and queued again, and this
    driver would then crash telling it."""
    seen = []

    class Watched(optuna.storages.InMemoryStorage):
        def create_new_trial(self, study_id, template_trial=None):
            trial_id = super().create_new_trial(study_id, template_trial)
            seen.append(dict(self.get_trial(trial_id).user_attrs))  # what others see now
            return trial_id

    study = optuna.create_study(storage=Watched(), direction="maximize")
    ledger = Ledger(study)
    trial = ledger.ask()
    assert seen == [{"driver": driver_tag()}]
    assert trial.user_attrs["driver"] == driver_tag()
    assert trial.number == 0 and study.trials[0].state == TrialState.RUNNING
    study.enqueue_trial({}, user_attrs={"rerun_of": 0})  # a queued re-run: tagged when taken
    ledger.sync()
    assert ledger.ask().user_attrs == {"rerun_of": 0, "driver": driver_tag()}


def test_drivers_that_both_saw_room_for_the_last_trial_agree_which_runs(monkeypatch):
    study = optuna.create_study(direction="maximize")
    for v in (1.0, 2.0, 3.0):
        study.add_trial(create_trial(value=v))
    mine, theirs = Ledger(study), Ledger(study)
    assert mine.room(4, pending=[]) == theirs.room(4, pending=[]) == 1  # at the same moment
    with monkeypatch.context() as m:
        m.setattr("dpcdsl.search.ledger.driver_tag", lambda: ELSEWHERE)
        first = theirs.ask()
    second = mine.ask()
    assert first.number < second.number
    assert mine.beyond(second.number, 4, pending=[])  # the earlier trial takes the budget
    # on the other machine, this driver's trial is the other driver's: it does not run
    assert not theirs.beyond(first.number, 4, pending=[first.number])
    assert not mine.beyond(second.number, 5, pending=[])  # room for both
    study.tell(first, state=TrialState.FAIL)  # interrupted: the budget is free again
    assert not mine.beyond(second.number, 4, pending=[])
    # far from the budget, the storage is not read for it
    reads = mine.reads
    assert not mine.beyond(second.number, 4 + Ledger.NEAR + 1, pending=[])
    assert mine.reads == reads


def test_a_running_trial_that_names_no_driver_is_interrupted_only_once_it_is_old():
    def running(age_s: float) -> FrozenTrial:
        return FrozenTrial(number=0, state=TrialState.RUNNING, value=None,
                           datetime_start=datetime.now() - timedelta(seconds=age_s),
                           datetime_complete=None, params={}, distributions={},
                           user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=0)

    assert orphaned(running(1.0)) is None  # a driver is naming itself just now
    assert orphaned(running(UNTAGGED_S + 1.0)) is True


def _take_the_last_trial(url: str, budget: int, barrier: Any, out: Any) -> None:
    """One driver's start of a trial, in its own process: room, then a new trial, then
    the check against the storage, as the driver's loop does them."""
    study = optuna.load_study(study_name="shared", storage=url)
    ledger = Ledger(study)
    assert ledger.room(budget, pending=[]) == 1
    barrier.wait()  # every driver saw room for one more trial at the same moment
    trial = ledger.ask()
    out.put((trial.number, ledger.beyond(trial.number, budget, pending=[])))
    barrier.wait()  # each trial stays running (its driver alive) until all have checked


@pytest.mark.slow
def test_of_drivers_racing_for_the_last_trial_exactly_one_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(study_name="shared", storage=url, direction="maximize")
    for v in range(3):
        study.add_trial(create_trial(value=float(v)))
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(4), context.Queue()
    drivers = [context.Process(target=_take_the_last_trial, args=(url, 4, barrier, out))
               for _ in range(4)]
    for d in drivers:
        d.start()
    results = sorted(out.get(timeout=120) for _ in drivers)
    for d in drivers:
        d.join(timeout=60)
        assert d.exitcode == 0
    assert [beyond for _, beyond in results] == [False, True, True, True]  # the first runs
