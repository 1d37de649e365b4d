"""Each strategy on a cheap objective over decisions, with a planted optimum: the
number of choice points where a cell agrees with a planted architecture."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import optuna
import pytest

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space, option_labels
from dpcdsl.search.driver import suggest_cell
from dpcdsl.search.strategies import (
    STRATEGIES,
    ArchitectureSampler,
    decisions_of,
    make_sampler,
)
from tests.conftest import EXAMPLES

SPACE = Space.from_file(EXAMPLES / "dpc_paper.dpc")
PLANTED = SPACE.sample(12345)[1]


def best_after(strategy: str, seed: int, budget: int = 120) -> float:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(strategy, SPACE, seed))
    for _ in range(budget):
        trial = study.ask()
        suggest_cell(trial, SPACE)
        chosen = decisions_of(study._storage.get_trial(trial._trial_id))
        score = sum(chosen.get(p) == v for p, v in PLANTED.items())
        study.tell(trial, score)
    return float(study.best_value)


@pytest.mark.slow
def test_evolution_and_ers_beat_random_on_a_planted_optimum():
    seeds = range(4)
    mean = {s: statistics.mean(best_after(s, k) for k in seeds)
            for s in ("random", "ers", "evolution")}
    assert mean["evolution"] > mean["random"] + 1, mean
    assert mean["ers"] > mean["random"] + 1, mean


#: a second planted architecture: agreeing with both at once is impossible where they
#: differ, so two objectives (agree with PLANTED, disagree little with OTHER) trade off
OTHER = SPACE.sample(777)[1]


def hypervolume_after(strategy: str, seed: int, budget: int = 120) -> float:
    """A two-objective search like a multi-objective study runs it: the hypervolume
    of (agreement with PLANTED, disagreement with OTHER) after ``budget`` trials."""
    from dpcdsl.search.ledger import Ledger
    from dpcdsl.search.objectives import hypervolume

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(strategy, SPACE, seed, {"population": 12} if strategy in (
        "evolution", "nsga2") else None)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    if isinstance(sampler, ArchitectureSampler):
        sampler.ledger = Ledger(study)  # as the driver shares its ledger
    for _ in range(budget):
        trial = study.ask()
        suggest_cell(trial, SPACE)
        chosen = decisions_of(study._storage.get_trial(trial._trial_id))
        told = study.tell(trial, [sum(chosen.get(p) == v for p, v in PLANTED.items()),
                                  sum(chosen.get(p) != v for p, v in OTHER.items())])
        if isinstance(sampler, ArchitectureSampler):
            sampler.ledger.told(told)
    return hypervolume([(-t.values[0], t.values[1]) for t in study.trials],
                       (0.0, len(OTHER) + 1.0))


def test_pareto_selection_beats_random_on_two_planted_objectives():
    """ERS and evolution pick parents by Pareto rank and crowding with several
    objectives; NSGA-II is Optuna's. Each must find a larger hypervolume than uniform
    draws, on average over seeds."""
    seeds = range(3)
    mean = {s: statistics.mean(hypervolume_after(s, k) for k in seeds)
            for s in ("random", "ers", "evolution", "nsga2")}
    for s in ("ers", "evolution", "nsga2"):
        assert mean[s] > mean["random"] * 1.1, mean


def test_tpe_runs_on_conditional_parameters():
    assert best_after("tpe", 0, budget=25) > 0


def test_random_is_uniform_over_architectures():
    """The sampler draws whole architectures through Space.sample: on a small space
    every architecture turns up about equally often."""
    space = Space.from_text("cell c(x) { a = one_of(conv(x, kernel = {1, 3}), "
                            "sepconv(x, rate = {1, 2, 3, 4, 5, 6})) return a }")
    study = optuna.create_study(sampler=ArchitectureSampler(space, seed=0))
    counts: Counter[str] = Counter()
    for _ in range(800):
        trial = study.ask()
        counts[suggest_cell(trial, space).hash] += 1
        study.tell(trial, 0.0)
    assert len(counts) == 8
    assert max(counts.values()) < 2 * min(counts.values())


def test_trial_params_are_the_choice_paths_and_decode():
    study = optuna.create_study(sampler=make_sampler("random", SPACE, 0))
    trial = study.ask()
    cell = suggest_cell(trial, SPACE)
    assert "b0.op" in trial.params and "b4.input" in trial.params
    frozen = study._storage.get_trial(trial._trial_id)
    assert SPACE.decode(decisions_of(frozen)) == cell


def test_trial_params_carry_readable_option_labels():
    """What Optuna's plots and optuna-dashboard show: the options as the space writes
    them, not their indices."""
    study = optuna.create_study(sampler=make_sampler("random", SPACE, 0))
    for _ in range(40):
        trial = study.ask()
        suggest_cell(trial, SPACE)
        study.tell(trial, 0.0)
    dists = study.trials[-1].distributions
    ops = {t.params["b1.op"] for t in study.trials if "b1.op" in t.params}
    assert dists["b0.op"].choices == ("conv(kernel = 1)",
                                      "sepconv(kernel = 3, rate = (rates, rates))",
                                      "pool(grid = (grids, grids))")
    assert ops <= set(dists["b0.op"].choices) and len(ops) > 1
    assert dists["b3.input"].choices == ("x", "b0", "b1", "b2")
    # numbers are ordered parameters, and a drawn value is one of the options
    rates = next(t.distributions["b0.rate.h"] for t in study.trials
                 if "b0.rate.h" in t.params)
    assert isinstance(rates, optuna.distributions.IntDistribution)
    assert (rates.low, rates.high, rates.step) == (1, 21, 1)
    drawn = {t.params[k] for t in study.trials for k in t.params if k.endswith(".rate.h")}
    assert drawn <= {1, 3, 6, 9, 12, 15, 18, 21} and len(drawn) > 2
    for t in study.trials:  # the recorded decisions are the cell's
        assert SPACE.decode(t.user_attrs["decisions"]).canonical_text() == \
            SPACE.decode(decisions_of(t)).canonical_text()


@pytest.mark.parametrize("values, kind, bounds", [
    ("{6, 12, 18}", "IntDistribution", (6, 18, 6)),
    ("{1, 2, 4, 8}", "IntDistribution", (1, 8, 1)),
])
def test_numbers_are_int_distributions_and_values_between_options_pick_the_nearest(
        values, kind, bounds):
    space = Space.from_text(f"cell c(x) {{\n  return conv(x, kernel = 3, rate = {values})\n}}\n")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    suggest_cell(trial, space)
    [(name, dist)] = trial.distributions.items()
    assert type(dist).__name__ == kind and (dist.low, dist.high, dist.step) == bounds
    # a value that TPE may suggest between two options decides the nearest one
    options = [int(v) for v in values.strip("{}").split(", ")]
    for value in range(bounds[0], bounds[1] + 1, bounds[2]):
        cell = suggest_cell(optuna.trial.FixedTrial({name: value}), space)
        nearest = min(options, key=lambda o: (abs(o - value), o))
        assert dict(cell.nodes[0].attrs)["rate"] == (nearest, nearest)


def test_a_float_choice_is_a_float_distribution():
    space = Space.from_text("cell c(x) {\n  return dropout(x, p = {0.1, 0.25, 0.5})\n}\n")
    study = optuna.create_study()
    trial = study.ask()
    suggest_cell(trial, space)
    [dist] = trial.distributions.values()
    assert isinstance(dist, optuna.distributions.FloatDistribution)
    assert (dist.low, dist.high) == (0.1, 0.5)
    cell = suggest_cell(optuna.trial.FixedTrial({"out.p": 0.3}), space)
    assert "p = 0.25" in cell.canonical_text()


def test_a_study_from_before_ordered_numbers_keeps_labels():
    study = optuna.create_study(sampler=make_sampler("random", SPACE, 0))
    study.sampler.ordered = False
    trial = study.ask()
    suggest_cell(trial, SPACE, labelled=True, ordered=False)
    assert all(isinstance(d, optuna.distributions.CategoricalDistribution)
               for d in trial.distributions.values())


def test_option_labels_keep_equal_texts_apart():
    assert option_labels([1, 2.5, True, "paper", (1, 2)]) == ["1", "2.5", "true", "paper",
                                                              "(1, 2)"]
    assert option_labels(["b0", "b0"]) == ["b0 #0", "b0 #1"]


@pytest.mark.slow
def test_unknown_strategy_says_did_you_mean():
    with pytest.raises(DpcError, match="unknown strategy 'evolutoin'. Did you mean 'evolution'"):
        make_sampler("evolutoin", SPACE)


def test_mutation_children_differ_from_parents_by_one_decision():
    rng = random.Random(0)
    parent = SPACE.sample(rng)[1]
    child = SPACE.mutate(parent, rng)[1]
    changed = [p for p in parent if p in child and parent[p] != child[p]]
    assert len(changed) == 1


def test_a_budget_without_room_for_the_strategy_is_warned():
    from dpcdsl.search.strategies import WARMUP, room_warning

    assert set(WARMUP) == set(STRATEGIES)
    assert room_warning("random", 5) is None
    assert room_warning("evolution", 20) == (
        "strategy 'evolution' draws its first 20 trials uniformly at random, so a budget of "
        "20 trials is plain random search; give more than 20 trials, or lower it with "
        "--setting population=N")
    assert room_warning("evolution", 21) is None and room_warning("ers", 10) is not None
    assert room_warning("evolution", 5, {"population": 3}) is None


def test_strategy_settings_are_checked_and_reach_the_sampler():
    from dpcdsl.search.strategies import SETTINGS, parse_settings

    assert set(SETTINGS) == set(STRATEGIES)
    evolution = make_sampler("evolution", SPACE, 0, {"population": 3, "tournament": 2})
    assert (evolution.population, evolution.tournament) == (3, 2)
    ers = make_sampler("ers", SPACE, 0, parse_settings(["warmup=2", "top=1", "local=0.25"]))
    assert (ers.warmup, ers.top, ers.local) == (2, 1, 0.25)
    assert make_sampler("tpe", SPACE, 0, {"startup": 4})._n_startup_trials == 4
    for strategy, bad, message in [("evolution", {"popluation": 3}, "Did you mean 'population'"),
                                   ("evolution", {"population": 0}, "a positive integer"),
                                   ("ers", {"local": 2}, "a fraction between 0 and 1"),
                                   ("random", {"top": 2}, "settings of 'random': none")]:
        with pytest.raises(DpcError) as e:
            make_sampler(strategy, SPACE, 0, bad)
        assert message in e.value.render()
    with pytest.raises(DpcError, match="KEY=NUMBER"):
        parse_settings(["population"])
