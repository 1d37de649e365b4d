"""The driver's view of a study's finished trials, kept in step at a cost that does not
grow with the study.

Reading every trial from the storage costs time in proportion to the trials (30,000
at the paper's scale), and the driver needs the view at every trial: the budget
spent, the best score, the architectures already trained (to de-duplicate), and the
strategies' parents. So the ledger takes the driver's own results as they are told,
and reads the storage in full only when the trials told since the last read reach a
fraction of those it knows (an amortised constant per trial), when ``max_age_s`` have
passed (the trials of other drivers on a shared storage), and before the driver
concludes that the budget is spent, and before each start near the end of the budget
(so that drivers sharing a study spend its budget exactly).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from dpcdsl.search.objectives import dominates, minimised, pareto_order, score
from dpcdsl.search.study import counted, driver_tag, orphaned


def key_of(trial: FrozenTrial) -> object:
    """The computation a trial trained: its ``same_as`` hash (older trials: ``hash``)."""
    return trial.user_attrs.get("same_as", trial.user_attrs.get("hash"))


class Ledger:
    #: how many of the best trials are kept ranked as they come
    TOP = 64
    #: within this many trials of the budget, the storage is read before each start
    NEAR = 32

    def __init__(self, study: optuna.Study, max_age_s: float = 10.0, fraction: float = 1 / 32,
                 clock: Callable[[], float] = time.monotonic, labelled: bool = True,
                 ordered: bool = False) -> None:
        self.study = study
        self.labelled = labelled  # the study's parameters are option labels (not indices)
        self.ordered = ordered  # and numeric options are numbers (int or float)
        self.max_age_s, self.fraction, self.clock = max_age_s, fraction, clock
        self.reads = 0  # full reads of the storage, for tests and benchmarks
        self.shown: set[int] = set()  # counted trials already shown (they stay shown)
        # several objectives: the best trials are the Pareto-best (see top)
        self.directions = [d.name.lower() for d in study.directions]
        self.multi = len(self.directions) > 1
        self.sync()

    def point(self, t: FrozenTrial) -> tuple[float, ...]:
        """A finished trial's values in minimisation form."""
        return minimised(t.values, self.directions)

    def sync(self) -> None:
        """Read every trial from the storage."""
        self.counted: dict[int, FrozenTrial] = {}
        self.completed: dict[object, FrozenTrial] = {}  # the first trial of each key
        self.failed: dict[object, FrozenTrial] = {}
        self.finished: list[FrozenTrial] = []  # completed with a score, oldest first
        self.best: float | None = None
        self.ranked: list[tuple[float, int]] = []  # the TOP best (-score, number)
        self.front: list[FrozenTrial] = []  # several objectives: the non-dominated ones
        self._order: tuple[int, list[FrozenTrial]] = (-1, [])  # top's, by finished count
        self.failures = 0
        self.fresh: list[FrozenTrial] = []  # counted, not yet shown
        self.running: set[int] = set()  # under live drivers (this one's included)
        self.waiting = 0  # queued trials (re-runs of interrupted ones)
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING and orphaned(t) is not True:
                self.running.add(t.number)
            self.waiting += t.state == TrialState.WAITING
            self._add(t)
        self.finished.sort(key=lambda t: t.number)
        self.told_since, self.stamp = 0, self.clock()
        self.reads += 1

    def _add(self, t: FrozenTrial) -> None:
        if not counted(t) or t.number in self.counted:
            return
        self.counted[t.number] = t
        if t.number not in self.shown:
            self.fresh.append(t)
        if t.state == TrialState.COMPLETE:
            self.completed.setdefault(key_of(t), t)
            value = score(t)
            if value is not None:
                self.finished.append(t)
                self.best = value if self.best is None else max(self.best, value)
                bisect.insort(self.ranked, (-value, t.number))
                del self.ranked[self.TOP:]
                if self.multi:
                    self._enter_front(t)
        elif t.state == TrialState.FAIL:
            self.failed.setdefault(key_of(t), t)
            self.failures += 1

    def ask(self) -> optuna.Trial:
        """A new trial, tagged with this driver (:func:`driver_tag`). ``study.ask()``
        first looks through every trial for a queued one, a cost that grows with the
        study; with none queued at the last read, the trial is created at once, its tag
        in the same transaction, so that no other driver ever sees it running untagged
        (and takes it for an interrupted one)."""
        if self.waiting:
            self.waiting -= 1
            trial = self.study.ask()
            trial.set_user_attr("driver", driver_tag())
            return trial
        study = self.study
        study._thread_local.cached_all_trials = None  # as ask does: samplers re-read
        tagged = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None,
                             datetime_start=datetime.now(), datetime_complete=None,
                             params={}, distributions={}, user_attrs={"driver": driver_tag()},
                             system_attrs={}, intermediate_values={}, trial_id=-1)
        return optuna.Trial(study, study._storage.create_new_trial(study._study_id, tagged))

    def beyond(self, number: int, budget: int, pending: Collection[int]) -> bool:
        """Whether trial ``number``, just asked for, is one too many. Drivers sharing a
        study may each see room for the last trial at the same moment and each create
        one; near the end of the budget, the storage is read again and the counted
        trials, with the trials running before this one (this driver's ``pending``
        ones and other live drivers'), are set against the budget. The trial numbers
        are the storage's, so the drivers agree: the earlier trials run, a later one is
        told failed without a reason, which uses no budget."""
        if budget - len(self.counted) - len(pending) > self.NEAR:
            return False
        self.sync()
        before = {n for n in self.running.union(pending) if n < number}
        return len(self.counted) + len(before) >= budget

    def told(self, trial: FrozenTrial) -> None:
        """A trial this driver has just told the study (``study.tell``'s answer)."""
        self._add(trial)
        self.told_since += 1

    def refresh(self) -> None:
        """Read the storage again when due (see the module's docstring)."""
        due = max(16.0, self.fraction * len(self.counted))
        if self.told_since >= due or self.clock() - self.stamp > self.max_age_s:
            self.sync()

    def room(self, budget: int, pending: Collection[int]) -> int:
        """How many more trials this driver may start: ``budget`` less the counted
        trials, this driver's ``pending`` ones and those running under other live
        drivers. Near the end of the budget the storage is read first, so that several
        drivers on one study do not overshoot it."""
        if budget - len(self.counted) - len(pending) <= self.NEAR:
            self.sync()
        elsewhere = len(self.running.difference(pending))
        return budget - len(self.counted) - len(pending) - elsewhere

    def spent(self, budget: int) -> bool:
        """Whether ``budget`` counted trials exist: checked against the storage itself
        before it says yes (other drivers' trials count too)."""
        if len(self.counted) >= budget:
            self.sync()
        return len(self.counted) >= budget

    def take_fresh(self) -> list[FrozenTrial]:
        """The counted trials not shown yet, oldest first; they are shown now."""
        fresh = sorted(self.fresh, key=lambda t: t.number)
        self.shown.update(t.number for t in fresh)
        self.fresh = []
        return fresh

    def _enter_front(self, t: FrozenTrial) -> None:
        """Keep the first Pareto front in step, at a cost in its size."""
        p = self.point(t)
        if any(dominates(self.point(f), p) for f in self.front):
            return
        self.front = [f for f in self.front if not dominates(p, self.point(f))] + [t]

    def top(self, k: int) -> list[FrozenTrial]:
        """The ``k`` best completed trials, best first: by mIOU (ties: the older
        first); with several objectives, as NSGA-II ranks them (by Pareto front, then by
        crowding distance, so the front's ends come first), from the front kept in step
        when it holds ``k``."""
        if self.multi:
            if self._order[0] != len(self.finished) or len(self._order[1]) < k:
                pool = self.front if len(self.front) >= k else self.finished
                pool = sorted(pool, key=lambda t: t.number)
                order = pareto_order([self.point(t) for t in pool], k)
                self._order = (len(self.finished), [pool[i] for i in order])
            return self._order[1][:k]
        if k > self.TOP:
            return sorted(self.finished, key=lambda t: (-(score(t) or 0.0), t.number))[:k]
        return [self.counted[number] for _, number in self.ranked[:k]]

    def fittest(self, contenders: list[FrozenTrial], among: list[FrozenTrial]
                ) -> FrozenTrial:
        """A tournament's winner: the contender of the highest mIOU (ties: the first);
        with several objectives, the one NSGA-II ranks first ``among`` the population
        (front, then crowding distance within it)."""
        if not self.multi:
            return max(contenders, key=lambda t: score(t) or 0.0)
        order = pareto_order([self.point(t) for t in among])
        place = {among[i].number: rank for rank, i in enumerate(order)}
        return min(contenders, key=lambda t: place.get(t.number, len(place)))


class InFlight:
    """This driver's running trials by the computation they train (their same-as key),
    and the trials that drew a computation already running: those wait for its result
    (then they are duplicates, or run when it did not finish), so that two workers never
    train the same computation at once."""

    def __init__(self) -> None:
        self.key_of: dict[int, str] = {}  # running trial number -> its key
        self.number_of: dict[str, int] = {}  # key -> the running trial's number
        self.held: dict[str, list[tuple[Trial, Any]]] = {}  # key -> waiting (trial, draw)

    def hold(self, key: str, trial: Trial, drawn: Any) -> bool:
        """Whether ``trial`` (and what it ``drawn``) waits, because ``key`` is running
        here."""
        if key not in self.number_of:
            return False
        self.held.setdefault(key, []).append((trial, drawn))
        return True

    def started(self, number: int, key: str) -> None:
        self.key_of[number], self.number_of[key] = key, number

    def ended(self, number: int) -> list[tuple[Trial, Any]]:
        """The trials that waited for trial ``number``, to decide again in draw order."""
        key = self.key_of.pop(number, None)
        if key is None:
            return []
        del self.number_of[key]
        return self.held.pop(key, [])
