"""What a report says about a study, worked out once from its trials in linear time:
one row per trial that used budget (columnar, for the page's leaderboard and plots),
the search time of each trial without the idle gaps between runs, the Pareto fronts,
the share of each option among the best trials against all, and the failures grouped
by reason. The report (``report.py``) only lays these out."""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from dpcdsl.search.objectives import (
    dominates,
    fronts,
    minimised,
    normalised_hypervolume,
    of_study,
    reference_of,
    score,
)
from dpcdsl.search.study import counted

#: the states a leaderboard row can have, as the page and leaderboard.csv spell them
STATES = ("complete", "duplicate", "failed", "pruned")

#: the share of the finished trials whose options are compared with all trials'
TOP_SHARE = 0.1


def state_of(t: FrozenTrial) -> str:
    if t.state == TrialState.COMPLETE:
        return "duplicate" if "duplicate_of" in t.user_attrs else "complete"
    return "pruned" if t.state == TrialState.PRUNED else "failed"


def reason_of(t: FrozenTrial) -> str:
    """Why a trial did not finish: its failure, or the pruner's note."""
    text = t.user_attrs.get("failure") or t.user_attrs.get("pruned") or t.state.name.lower()
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else "unknown"


def ranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials with a score, best first (ties: the earlier trial first)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and score(t) is not None]
    return sorted(done, key=lambda t: (-float(score(t) or 0), t.number))


def pareto(points: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """The points (cost, score, trial) that no other point beats on both cost (lower)
    and score (higher), cheapest first; of equal points, the first trial."""
    front, best = [], float("-inf")
    for cost, value, number in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if value > best:
            front.append((cost, value, number))
            best = value
    return front


@dataclass
class ParetoSet:
    """A multi-objective study's result: its objectives, the distinct finished trials
    no other one dominates (best mIOU first), and the hypervolume of the finished
    trials as they came (at up to ``CHECKPOINTS`` points), against ``reference``."""

    objectives: tuple[str, ...]
    trials: list[FrozenTrial]
    reference: list[float]
    hypervolume: float
    curve: list[tuple[int, float]]  # (finished trials, hypervolume then)


#: the points of the hypervolume-over-trials curve a report works out
CHECKPOINTS = 200


def pareto_set(study: Any, rows: Sequence[FrozenTrial]) -> ParetoSet | None:
    """The Pareto set of a multi-objective study (None for one of one objective);
    ``rows``: its finished trials."""
    names = of_study(study)
    if len(names) < 2:
        return None
    dirs = [d.name.lower() for d in study.directions]
    distinct = sorted((t for t in rows if "duplicate_of" not in t.user_attrs),
                      key=lambda t: t.number)
    first = fronts([minimised(t.values, dirs) for t in distinct], 1)
    best = sorted((distinct[i] for i in (first[0] if first else [])),
                  key=lambda t: (-(score(t) or 0), t.number))
    reference = reference_of([t.values for t in distinct], names)
    done = sorted(rows, key=lambda t: (t.datetime_complete or datetime.max, t.number))
    marks = {max(1, round(len(done) * k / CHECKPOINTS)) for k in range(1, CHECKPOINTS + 1)}
    curve: list[tuple[int, float]] = []
    front: list[tuple[tuple[float, ...], list[float]]] = []  # so far: (point, values)
    for n, t in enumerate(done, 1):
        p = minimised(t.values, dirs)
        if not any(dominates(q, p) for q, _ in front):
            front = [(q, v) for q, v in front if not dominates(p, q)] + [(p, t.values)]
        if n in marks:
            hv = normalised_hypervolume([v for _, v in front], names, reference)
            curve.append((n, round(hv, 5)))
    return ParetoSet(names, best, reference, curve[-1][1] if curve else 0.0, curve)


class SearchClock:
    """Seconds of search time, not wall-clock: the union of the intervals in which some
    trial ran, so the idle time between a killed run and its resume does not count."""

    def __init__(self, trials: Sequence[FrozenTrial]) -> None:
        spans = sorted((t.datetime_start.timestamp(), t.datetime_complete.timestamp())
                       for t in trials if t.datetime_start and t.datetime_complete)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.busy: list[float] = []  # search time before each merged span
        total = 0.0
        for start, end in spans:
            if self.ends and start <= self.ends[-1]:
                if end > self.ends[-1]:
                    total += end - self.ends[-1]
                    self.ends[-1] = end
                continue
            self.starts.append(start)
            self.ends.append(end)
            self.busy.append(total)
            total += end - start
        self.total = total

    def at(self, when: datetime | None) -> float:
        """The search time that had passed at ``when``."""
        if when is None or not self.starts:
            return 0.0
        ts = when.timestamp()
        k = bisect.bisect_right(self.starts, ts) - 1
        if k < 0:
            return 0.0
        return self.busy[k] + min(ts, self.ends[k]) - self.starts[k]


@functools.lru_cache(maxsize=4096)
def choice_group(path: str) -> str:
    """A choice path with its branch numbers left out (``b3.rate.h`` -> ``b*.rate.h``),
    so that every branch's choice of the same kind is counted together."""
    return re.sub(r"(?<=[A-Za-z_])\d+", "*", path)


@dataclass
class ChoiceShare:
    group: str
    option: str
    top: float  # share among the top trials, in percent
    all: float  # share among all finished trials


def choice_shares(rows: Sequence[FrozenTrial], top_share: float = TOP_SHARE,
                  per_group: int = 12) -> tuple[int, list[ChoiceShare]]:
    """For each kind of choice (op, rate, grid, input, ...), how often each option is
    taken among the best ``top_share`` of the finished, distinct trials against all of
    them. Returns the number of top trials and the shares, most over-represented first
    within each group."""
    distinct = [t for t in rows if "duplicate_of" not in t.user_attrs]
    if not distinct:
        return 0, []
    k = max(1, math.ceil(len(distinct) * top_share))
    counts: dict[str, list[Counter[str]]] = {}
    for i, t in enumerate(distinct):
        for path, value in t.params.items():
            c = counts.setdefault(choice_group(path), [Counter(), Counter()])
            c[1][str(value)] += 1
            if i < k:
                c[0][str(value)] += 1
    out = []
    for group in sorted(counts):
        top, every = counts[group]
        n_top, n_all = sum(top.values()) or 1, sum(every.values())
        shares = [ChoiceShare(group, option, 100 * top[option] / n_top, 100 * n / n_all)
                  for option, n in every.items()]
        shares.sort(key=lambda s: (-(s.top - s.all), s.option))
        out += shares[:per_group]
    return k, out


@dataclass
class Failures:
    """Trials that failed or were pruned, grouped by reason (most frequent first)."""

    groups: list[tuple[str, int, list[int]]] = field(default_factory=list)
    over_budget: int = 0
    over_latency: int = 0  # slower than the latency budget on its runtime
    unbuildable: int = 0  # drawn, but not buildable at the task's feature sizes
    interrupted: int = 0


def failures(trials: Sequence[FrozenTrial]) -> Failures:
    out = Failures()
    by_reason: dict[str, list[int]] = {}
    for t in trials:
        if "over_budget" in t.user_attrs:
            out.over_budget += 1
        elif "over_latency" in t.user_attrs:
            out.over_latency += 1
        elif "unbuildable" in t.user_attrs:
            out.unbuildable += 1
        elif t.state == TrialState.FAIL and "failure" not in t.user_attrs:
            out.interrupted += 1  # run again by a resume, or surplus; it used no budget
        elif t.state in (TrialState.FAIL, TrialState.PRUNED):
            by_reason.setdefault(reason_of(t), []).append(t.number)
    out.groups = sorted(((r, len(ns), ns) for r, ns in by_reason.items()),
                        key=lambda g: (-g[1], g[0]))
    return out


@dataclass
class Summary:
    """A study's trials, worked out once for every output of a report."""

    trials: list[FrozenTrial]
    rows: list[FrozenTrial]  # finished, best first
    clock: SearchClock
    board: list[FrozenTrial]  # every trial that used budget, in leaderboard order
    cols: dict[str, list[Any]]  # the board's columns


def summarise(trials: Sequence[FrozenTrial]) -> Summary:
    clock = SearchClock(trials)
    rows = ranked(trials)
    board, cols = leaderboard(trials, clock, rows)
    return Summary(list(trials), rows, clock, board, cols)


def leaderboard(trials: Sequence[FrozenTrial], clock: SearchClock,
                done: list[FrozenTrial] | None = None
                ) -> tuple[list[FrozenTrial], dict[str, list[Any]]]:
    """Every trial that used budget, ranked (finished ones by mIOU, then the failed
    and pruned ones by number), and its columns: the page's data, in one pass.
    ``done``: the trials already ranked, when known."""
    done = ranked(trials) if done is None else done
    rest = sorted((t for t in trials if counted(t) and t.state != TrialState.COMPLETE),
                  key=lambda t: t.number)
    rows = done + rest
    cols: dict[str, list[Any]] = {k: [] for k in (
        "trial", "state", "miou", "params", "madds", "latency_ms", "wall_s", "hours", "dup",
        "iou")}
    for t in rows:
        a = t.user_attrs
        cols["trial"].append(t.number)
        cols["state"].append(STATES.index(state_of(t)))
        cols["miou"].append(number(score(t), 2) if t.state == TrialState.COMPLETE else None)
        cols["params"].append(a.get("params"))
        cols["madds"].append(a.get("madds"))
        cols["latency_ms"].append(number(a.get("latency_ms"), 4))
        cols["wall_s"].append(number(a.get("wall_s") or 0, 1))
        cols["hours"].append(number(clock.at(t.datetime_complete) / 3600, 4))
        cols["dup"].append(a.get("duplicate_of"))
        cols["iou"].append([number(v, 1) for v in a.get("per_class_iou") or []])
    return rows, cols


def number(v: Any, digits: int) -> float | None:
    """``v`` rounded, or None where it is missing or not finite (JSON has no NaN)."""
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def curve(evals: Any) -> list[tuple[int, float]]:
    """A trial's recorded evaluations (step, mIOU), the finite ones."""
    out = []
    for item in evals or []:
        if isinstance(item, list | tuple) and len(item) == 2:
            score = number(item[1], 2)
            if score is not None:
                out.append((int(item[0]), score))
    return out
