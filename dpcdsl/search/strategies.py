"""Search strategies as Optuna samplers. Parameter names are the space's choice paths
(``b2.op``, ``b2.rate.h``), values are the options' labels (``6``, ``b0``,
``sepconv(kernel = 3, rate = (rates, rates))``); :func:`decisions_of` turns them back
into option indices.

- ``random``: uniform over whole architectures (:meth:`Space.sample`), not per choice.
- ``ers``, the paper's efficient random search: the first ``warmup`` trials are uniform;
  after that each trial is, with probability 1 - ``local``, a uniform draw, and otherwise a
  mutation (one decision changed, :meth:`Space.mutate`) of one of the ``top`` best
  finished trials, picked uniformly.
- ``evolution``: regularized (aging) evolution. Until ``population`` trials have
  finished, uniform draws; then the population is the ``population`` most recently
  finished trials, ``tournament`` of them are drawn, and the best one's mutation is the
  child. Old trials leave the population by age, not by score.
- ``tpe``: Optuna's multivariate TPE with grouped (conditional) parameters, after
  ``startup`` uniform trials (with several objectives, Optuna's MOTPE).
- ``nsga2``: Optuna's NSGA-II, generations of ``population`` trials, the first uniform:
  the multi-objective genetic algorithm (with one objective, a plain genetic one).

With several objectives (:mod:`dpcdsl.search.objectives`), ERS's "best trials" and
evolution's tournament winner are the Pareto-best: by non-dominated front, then by
crowding distance (:meth:`Ledger.top`, :meth:`Ledger.fittest`).

:data:`SETTINGS` lists every setting with its default.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from dpcdsl.errors import DpcError, did_you_mean
from dpcdsl.lang.space import Decisions, Space, option_values

# the strategies, pruners and their settings are declared with the search's options
from dpcdsl.search.config import PRUNERS, SETTINGS, STRATEGIES  # noqa: E402
from dpcdsl.search.ledger import Ledger

#: settings that are a fraction in [0, 1], and integers that may be 0; every other one
#: is a positive integer
FRACTIONS = {"local"}
ZERO_OK = {"warmup", "min_steps"}
#: settings with a larger least value, by strategy (NSGA-II crosses two parents)
AT_LEAST = {"nsga2": {"population": 2}}
#: trials each strategy draws uniformly (with its default settings) before it starts to
#: act on what it has seen
WARMUP = {name: int(next(iter(s.values()), 0)) for name, s in SETTINGS.items()}


def settings_for(name: str, given: Mapping[str, Any] | None = None,
                 table: Mapping[str, Mapping[str, int | float]] = SETTINGS,
                 what: str = "strategy") -> dict[str, Any]:
    """The settings of strategy (or, with ``table=PRUNERS``, pruner) ``name``: its
    defaults, with ``given`` checked and applied."""
    known = table.get(name, {})
    out: dict[str, Any] = dict(known)
    for key, value in (given or {}).items():
        if key not in known:
            hint = f"settings of '{name}': " + (", ".join(known) or "none")
            raise DpcError.at(None, f"{what} '{name}' has no setting '{key}'."
                              f"{did_you_mean(key, known)}".rstrip("."), hint=hint, code="DPC801")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in FRACTIONS:
            ok, want = number and 0 <= value <= 1, "a fraction between 0 and 1"
        else:
            least = AT_LEAST.get(name, {}).get(key, 0 if key in ZERO_OK else 1)
            ok = number and isinstance(value, int) and value >= least
            want = "a positive integer" if least == 1 else f"an integer of at least {least}"
        if not ok:
            raise DpcError.at(None, f"{what} setting {key} = {value!r}: expected {want}",
                              code="DPC801")
        out[key] = value
    return out


def make_pruner(name: str, given: Mapping[str, Any] | None = None
                ) -> optuna.pruners.BasePruner:
    """The pruner ``name`` (:data:`PRUNERS`) with its settings."""
    if name not in PRUNERS:
        raise DpcError.at(None, f"unknown pruner '{name}'.{did_you_mean(name, PRUNERS)}"
                          .rstrip("."), hint="pruners: " + ", ".join(PRUNERS), code="DPC801")
    s = settings_for(name, given, PRUNERS, "pruner")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=s["startup"],
                                           n_warmup_steps=s["warmup"])
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=s["min_steps"] or "auto", reduction_factor=s["reduction"])
    return optuna.pruners.NopPruner()


def parse_settings(pairs: Sequence[str]) -> dict[str, int | float]:
    """``["population=8", "local=0.25"]`` as a mapping of numbers."""
    out: dict[str, int | float] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        try:
            if not eq:
                raise ValueError
            out[key.strip()] = int(text) if text.strip().lstrip("-").isdigit() else float(text)
        except ValueError:
            raise DpcError.at(None, f"a setting reads KEY=NUMBER, got {pair!r}",
                              hint="e.g. --setting population=8", code="DPC801") from None
    return out


class ArchitectureSampler(BaseSampler):
    """Draws a whole architecture's decisions when a trial starts, then answers each
    of the trial's suggestions from them."""

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self._plans: dict[int, Decisions] = {}
        self._values: dict[int, dict[str, list[Any]]] = {}
        self.ledger: Ledger | None = None  # the driver's, when it runs the search
        # numeric choices are numbers (suggest_cell's ordered parameters); the driver
        # turns this off for a study from before them, whose parameters are labels
        self.ordered = True

    def propose(self, study: optuna.Study) -> Decisions:
        return self.space.sample(self.rng)[1]

    def view(self, study: optuna.Study) -> Ledger:
        """The study's finished trials: the driver's ledger, kept in step at a constant
        cost per trial, or a fresh read of the study."""
        return self.ledger if self.ledger is not None else Ledger(study)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # each trial's draw is seeded by the seed and the trial's number: a resumed
        # search draws on instead of repeating its first draws, and drivers sharing a
        # study (each trial number is given out once) never draw in step
        if self.seed is not None:
            self.rng = random.Random(f"{self.seed}:{trial.number}")
        self._plans[trial.number] = self.propose(study)
        if self.ordered:  # here, not while the trial's cell is being decided
            self._values[trial.number] = self._numbers(self._plans[trial.number])

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        index = self._plans.get(trial.number, {}).get(param_name, 0)
        if isinstance(param_distribution, CategoricalDistribution) or not self.ordered:
            return param_distribution.to_external_repr(index)  # the label, or the index
        return self._values[trial.number][param_name][index]  # the option's number

    def _numbers(self, plan: Decisions) -> dict[str, list[Any]]:
        """The numbers of each choice among numbers that ``plan`` reaches."""
        found: dict[str, list[Any]] = {}

        def choose(path: str, counts: list[int], labels: list[str]) -> int:
            values = option_values(labels)
            if values is not None:
                found[path] = values
            return plan.get(path, next(i for i, c in enumerate(counts) if c))

        self.space.decide(choose, labelled=True)
        return found

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._plans.pop(trial.number, None)
        self._values.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self.rng = random.Random()


def decisions_of(trial: FrozenTrial) -> Decisions:
    """A trial's decisions (choice path -> option index): as recorded when its cell was
    suggested, or, in studies from before that, from its parameters (option labels, or
    the indices themselves in studies from before labels)."""
    recorded = trial.user_attrs.get("decisions")
    if isinstance(recorded, dict):
        return {str(k): int(v) for k, v in recorded.items()}
    return {name: int(trial.distributions[name].to_internal_repr(value))
            for name, value in trial.params.items()}



class ERSSampler(ArchitectureSampler):
    def __init__(self, space: Space, seed: int | None = None,
                 warmup: int = WARMUP["ers"], top: int = 5, local: float = 0.5) -> None:
        super().__init__(space, seed)
        self.warmup, self.top, self.local = warmup, top, local

    def propose(self, study: optuna.Study) -> Decisions:
        view = self.view(study)
        if len(view.finished) < self.warmup or self.rng.random() >= self.local:
            return super().propose(study)
        parent = self.rng.choice(view.top(self.top))
        return self.space.mutate(decisions_of(parent), self.rng)[1]


class EvolutionSampler(ArchitectureSampler):
    def __init__(self, space: Space, seed: int | None = None,
                 population: int = WARMUP["evolution"], tournament: int = 5) -> None:
        super().__init__(space, seed)
        self.population, self.tournament = population, tournament

    def propose(self, study: optuna.Study) -> Decisions:
        view = self.view(study)
        done = view.finished
        if len(done) < self.population:
            return super().propose(study)
        alive = done[-self.population:]  # aging: the most recent ones
        contenders = self.rng.sample(alive, min(self.tournament, len(alive)))
        parent = view.fittest(contenders, alive)
        return self.space.mutate(decisions_of(parent), self.rng)[1]


def room_warning(name: str, trials: int, settings: Mapping[str, Any] | None = None
                 ) -> str | None:
    """A warning when a budget of ``trials`` leaves the strategy no trial in which it
    acts differently from uniform random search."""
    chosen = settings_for(name, settings) if name in SETTINGS else {}
    key = next(iter(SETTINGS.get(name, {})), None)
    warmup = int(chosen[key]) if key is not None else 0
    if warmup and trials <= warmup:
        return (f"strategy '{name}' draws its first {warmup} trials uniformly at random, so "
                f"a budget of {trials} trials is plain random search; give more than "
                f"{warmup} trials, or lower it with --setting {key}=N")
    return None


def make_sampler(name: str, space: Space, seed: int | None = None,
                 settings: Mapping[str, Any] | None = None) -> BaseSampler:
    if name in SETTINGS:
        chosen = settings_for(name, settings)
    if name == "random":
        return ArchitectureSampler(space, seed)
    if name == "ers":
        return ERSSampler(space, seed, **chosen)
    if name == "evolution":
        return EvolutionSampler(space, seed, **chosen)
    if name == "tpe":
        with warnings.catch_warnings():  # multivariate, grouped TPE is what conditional
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # spaces need
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=chosen["startup"])
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=chosen["population"], seed=seed)
    raise DpcError.at(None, f"unknown strategy '{name}'.{did_you_mean(name, STRATEGIES)}"
                      .rstrip("."), hint="strategies: " + ", ".join(STRATEGIES), code="DPC801")
