"""The driver's ledger: the same view as a full read of the study, read in full only
at a cadence whose cost per trial does not grow, and exact about the budget."""

from __future__ import annotations

import random

import optuna
from optuna.trial import TrialState, create_trial

from dpcdsl.search.ledger import Ledger
from dpcdsl.search.study import counted


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
