"""The Pareto arithmetic of multi-objective searches, against its definitions: fronts
against the pairwise definition of dominance, hypervolume against counting the unit
cells a set of integer points dominates, and the ledger's front kept in step against
sorting every finished trial again."""

from __future__ import annotations

import itertools
import math
import random

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

from dpcdsl.errors import DpcError
from dpcdsl.search.ledger import Ledger
from dpcdsl.search.objectives import (
    check,
    crowding,
    dominates,
    fronts,
    hypervolume,
    normalised_hypervolume,
    pareto_order,
)

points_2d = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25)
points_3d = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)),
                     max_size=15)


@given(st.one_of(points_2d, points_3d))
@settings(max_examples=150, deadline=None)
def test_fronts_are_the_layers_of_the_dominance_order(points):
    layers = fronts(points)
    assert sorted(i for f in layers for i in f) == list(range(len(points)))
    left = set(range(len(points)))
    for front in layers:  # each front: exactly what nothing left dominates
        expected = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        assert set(front) == expected
        left -= expected


@given(st.one_of(points_2d, points_3d))
@settings(max_examples=150, deadline=None)
def test_hypervolume_counts_the_dominated_cells(points):
    m = len(points[0]) if points else 2
    reference = (5,) * m  # some points lie on or beyond it and add nothing
    cells = sum(1 for c in itertools.product(range(5), repeat=m)
                if any(all(p[k] <= c[k] for k in range(m)) for p in points))
    assert hypervolume(points, reference) == pytest.approx(cells)


def test_crowding_keeps_the_ends_and_measures_the_gaps():
    points = [(0.0, 4.0), (1.0, 2.0), (3.0, 1.0), (4.0, 0.0)]
    far = crowding(points, [0, 1, 2, 3])
    assert far[0] == far[3] == math.inf
    assert far[1] == pytest.approx(3 / 4 + 3 / 4) and far[2] == pytest.approx(3 / 4 + 2 / 4)
    # the ends first, then the most isolated; a dominated point after the front
    assert pareto_order([*points, (5.0, 5.0)]) == [0, 3, 1, 2, 4]


def test_normalised_hypervolume_is_a_share_of_the_box():
    names = ("miou", "madds")
    # one cell of mIOU 50 at half the reference cost dominates a quarter of the box
    assert normalised_hypervolume([[50.0, 1e9]], names, [0.0, 2e9]) == pytest.approx(0.25)
    assert normalised_hypervolume([[50.0, 3e9]], names, [0.0, 2e9]) == 0.0


@pytest.mark.parametrize("names, latency, message", [
    (["miou", "latncy"], None, "unknown objective 'latncy'. Did you mean 'latency'"),
    (["madds"], None, "the objectives must include miou"),
    (["miou", "madds", "madds"], None, "objective 'madds' is named twice"),
    (["miou", "latency"], None, "the latency objective needs a runtime"),
])
def test_bad_objectives_are_named(names, latency, message):
    with pytest.raises(DpcError, match=message):
        check(names, latency)


def test_objectives_put_miou_first():
    assert check(["latency", "miou"], "onnxruntime") == ("miou", "latency")


def _study(values: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([create_trial(state=TrialState.COMPLETE, values=list(v),
                                   user_attrs={"hash": str(i)})
                      for i, v in enumerate(values)])
    return study


def test_the_ledger_keeps_the_pareto_best_in_step():
    rng = random.Random(0)
    values = [(rng.uniform(20, 80), rng.uniform(1, 9)) for _ in range(300)]
    study = _study(values[:100])
    ledger = Ledger(study)
    for v in values[100:]:  # told one by one, as the driver tells them
        ledger.told(study.tell(study.ask(), list(v)))
    everything = Ledger(study)  # read in full
    assert ledger.multi and ledger.best == max(v[0] for v in values)
    for k in (1, 3, len(everything.front), len(everything.front) + 4, 40):
        expected = pareto_order([(-v[0], v[1]) for v in values], k)
        assert [t.number for t in ledger.top(k)] == expected
        assert [t.number for t in everything.top(k)] == expected
    # a tournament: the contender ranked first in the population wins, not the best mIOU
    alive = everything.finished[-20:]
    points = {t.number: (-t.values[0], t.values[1]) for t in alive}
    winner = ledger.fittest(alive[:5], alive)
    assert not any(dominates(points[t.number], points[winner.number]) for t in alive)


def test_one_objective_keeps_the_best_miou():
    study = optuna.create_study(direction="maximize")
    study.add_trials([create_trial(state=TrialState.COMPLETE, value=v, user_attrs={"hash": v})
                      for v in (10.0, 30.0, 20.0)])
    ledger = Ledger(study)
    assert not ledger.multi
    assert [t.value for t in ledger.top(2)] == [30.0, 20.0]
    assert ledger.fittest(ledger.finished, ledger.finished).value == 30.0
