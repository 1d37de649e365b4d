"""Search strategies as Optuna samplers. Parameter names are the space's choice paths
(``b2.op``, ``b2.rate.h``), values are option indices.

- ``random``: uniform over whole architectures (:meth:`Space.sample`), not per choice.
- ``ers``, the paper's efficient random search: the first ``warmup`` trials are uniform;
  after that each trial is, with probability 1/2, a uniform draw, and otherwise a
  mutation (one decision changed, :meth:`Space.mutate`) of one of the ``top`` best
  finished trials, picked uniformly.
- ``evolution``: regularized (aging) evolution. Until ``population`` trials have
  finished, uniform draws; then the population is the ``population`` most recently
  finished trials, ``tournament`` of them are drawn, and the best one's mutation is the
  child. Old trials leave the population by age, not by score.
- ``tpe``: Optuna's multivariate TPE with grouped (conditional) parameters.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.space import Decisions, Space

STRATEGIES = ("random", "ers", "evolution", "tpe")
#: trials each strategy draws uniformly before it starts to act on what it has seen
WARMUP = {"random": 0, "ers": 10, "evolution": 20, "tpe": 10}


class ArchitectureSampler(BaseSampler):
    """Draws a whole architecture's decisions when a trial starts, then answers each
    of the trial's suggestions from them."""

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.rng = random.Random(seed)
        self._plans: dict[int, Decisions] = {}

    def propose(self, study: optuna.Study) -> Decisions:
        return self.space.sample(self.rng)[1]

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._plans[trial.number] = self.propose(study)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._plans.get(trial.number, {}).get(param_name, 0)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._plans.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self.rng = random.Random()


def finished(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials with a score, oldest first."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]


class ERSSampler(ArchitectureSampler):
    def __init__(self, space: Space, seed: int | None = None,
                 warmup: int = WARMUP["ers"], top: int = 5, local: float = 0.5) -> None:
        super().__init__(space, seed)
        self.warmup, self.top, self.local = warmup, top, local

    def propose(self, study: optuna.Study) -> Decisions:
        done = finished(study)
        if len(done) < self.warmup or self.rng.random() >= self.local:
            return super().propose(study)
        best = sorted(done, key=lambda t: t.value, reverse=True)[:self.top]  # type: ignore
        parent = self.rng.choice(best)
        return self.space.mutate(parent.params, self.rng)[1]


class EvolutionSampler(ArchitectureSampler):
    def __init__(self, space: Space, seed: int | None = None,
                 population: int = WARMUP["evolution"], tournament: int = 5) -> None:
        super().__init__(space, seed)
        self.population, self.tournament = population, tournament

    def propose(self, study: optuna.Study) -> Decisions:
        done = finished(study)
        if len(done) < self.population:
            return super().propose(study)
        alive = done[-self.population:]  # aging: the most recent ones
        contenders = self.rng.sample(alive, min(self.tournament, len(alive)))
        parent = max(contenders, key=lambda t: t.value)  # type: ignore[arg-type,return-value]
        return self.space.mutate(parent.params, self.rng)[1]


def room_warning(name: str, trials: int, done: int = 0) -> str | None:
    """A warning when a budget of ``trials`` (``done`` of them already finished) leaves
    the strategy no trial in which it acts differently from uniform random search."""
    warmup = WARMUP.get(name, 0)
    if warmup and trials <= warmup:
        return (f"strategy '{name}' draws its first {warmup} trials uniformly at random, so "
                f"a budget of {trials} trials is plain random search; give more than "
                f"{warmup} trials")
    return None


def make_sampler(name: str, space: Space, seed: int | None = None) -> BaseSampler:
    if name == "random":
        return ArchitectureSampler(space, seed)
    if name == "ers":
        return ERSSampler(space, seed)
    if name == "evolution":
        return EvolutionSampler(space, seed)
    if name == "tpe":
        with warnings.catch_warnings():  # multivariate, grouped TPE is what conditional
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # spaces need
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=WARMUP["tpe"])
    raise DpcError.at(None, f"unknown strategy '{name}'.{did_you_mean(name, STRATEGIES)}"
                      .rstrip("."), hint="strategies: " + ", ".join(STRATEGIES))
