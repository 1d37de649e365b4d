"""A search's configuration, grouped by concern: the space, the task, the strategy,
where trials run, and where the search is kept.

Each option is declared once, as a field of its group with its command-line help in
the field's metadata (:func:`option`): :class:`SearchConfig` takes it by its flat name
(``SearchConfig(space, task, trials=7, workers=2)``) and ``dpcc search`` makes its
command-line option from the same field. A new option is one new field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpcdsl.errors import did_you_mean

#: the strategies (``dpcc search --strategy``)
STRATEGIES = ("random", "ers", "evolution", "tpe", "nsga2")
#: each strategy's settings and their defaults (``dpcc search --setting KEY=VALUE``, or
#: the task file's ``[strategy]`` table); the first one of each is its warm-up
SETTINGS: dict[str, dict[str, int | float]] = {
    "random": {},
    # uniform warm-up trials; how many best trials to mutate around; the share of
    # trials that are such mutations
    "ers": {"warmup": 10, "top": 5, "local": 0.5},
    # trials in the population (also the uniform warm-up); contenders per tournament
    "evolution": {"population": 20, "tournament": 5},
    # TPE's uniform start-up trials
    "tpe": {"startup": 10},
    # NSGA-II's generation size (its first generation is uniform)
    "nsga2": {"population": 20},
}
#: the pruners (``dpcc search --prune``), their settings and defaults
#: (``--prune-setting KEY=VALUE``, or the task file's ``[pruner]`` table): the median
#: rule's finished trials before it prunes and evaluations each trial may make first;
#: ASHA's reduction factor and its first rung in evaluations (0: Optuna's estimate)
PRUNERS: dict[str, dict[str, int | float]] = {
    "none": {},
    "median": {"startup": 5, "warmup": 0},
    "asha": {"reduction": 4, "min_steps": 0},
}
#: where trials run (``dpcc search --executor``; auto: see
#: :func:`dpcdsl.search.executors.place`)
EXECUTORS = ("auto", "local", "pool", "ray")
#: what defines a search (:func:`dpcdsl.search.driver.identity`): a resume that changes
#: one is refused unless allowed (``--allow-changed``)
IDENTITY = ("space", "task", "strategy", "prune", "seed", "backend", "max_madds", "latency",
            "max_latency", "evaluator")
#: what a search optimises (dpcdsl.search.objectives), mIOU alone by default
DEFAULT_OBJECTIVES = ("miou",)


def option(default: Any = None, help: str = "", *, flat: str | None = None,
           cli: bool = True, factory: Callable[[], Any] | None = None,
           **typer: Any) -> Any:
    """A field of a group: its default, the help of its command-line option, the flat
    name :class:`SearchConfig` takes it by when that differs from the field's (``flat``),
    and options for the command line's parser (``min=1``, ``choices=...``,
    ``parse=...`` from the option's text, ``metavar``). ``cli=False``: not an option of
    ``dpcc search``."""
    meta = {"help": help, "flat": flat, "cli": cli, **typer}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SpaceOptions:
    """The space searched."""

    file: Path = option(Path(), flat="space_file", cli=False)
    cell: str | None = option(None, "the cell to search (default: the file's last)",
                              cli=False)


@dataclass(frozen=True)
class TaskOptions:
    """The proxy task the trials train on, and a cell to compare with."""

    file: Path = option(Path(), flat="task_file", cli=False)
    # a cell (a file, or a library head or example by name: "aspp") trained once on
    # the same proxy task, for the report to compare with
    baseline: str | Path | None = option(
        None, "a cell trained once on the same proxy task, which the report compares "
              "with: a .dpc file, or a library head or example by name (aspp)",
        kind="head")


@dataclass(frozen=True)
class StrategyOptions:
    """What is tried, how many, and what is stopped or skipped."""

    name: str = option("random", "the search strategy", flat="strategy",
                       choices=STRATEGIES)
    trials: int = option(20, "finished trials to run", min=1)
    seed: int = option(0, "the seed of the strategy's draws")
    # the strategy's settings (dpcdsl.search.strategies.SETTINGS), over the task
    # file's [strategy] table
    settings: Mapping[str, Any] = option(
        help="a strategy setting KEY=VALUE, e.g. population=8 (see docs/search.md; over "
             "the task file's \\[strategy])", factory=dict, cli_name="setting",
        kind="settings")
    prune: str = option("none", "stop weak trials early", choices=tuple(PRUNERS))
    # the pruner's settings (dpcdsl.search.strategies.PRUNERS), over the task file's
    # [pruner] table
    prune_settings: Mapping[str, Any] = option(
        help="a pruner setting KEY=VALUE, e.g. startup=10 (see docs/search.md; over the "
             "task file's \\[pruner])", factory=dict, cli_name="prune-setting",
        kind="settings")
    # mIOU alone, or with costs: a multi-objective study searches for the Pareto front
    # (dpcdsl.search.objectives); fixed when the study starts
    objectives: tuple[str, ...] = option(
        DEFAULT_OBJECTIVES, "what to optimise: miou, or miou with costs for a Pareto front "
        "(miou,madds  miou,params  miou,latency with --latency)", kind="list",
        metavar="OBJECTIVES")
    # a multiply-add budget: a candidate costing more at the task's feature sizes is
    # drawn again, never trained (the cost model decides, before any training)
    max_madds: int | None = option(
        None, "a multiply-add budget (0.5B, 500M, 5e8): candidates over it at the task's "
              "feature sizes are drawn again, never trained", kind="count")
    # a runtime each candidate's forward pass is timed on before it trains
    # (dpcdsl.deploy.latency), in a process of its own on the trial's threads
    latency: str | None = option(
        None, "time each candidate's forward pass on this runtime before it trains "
              "(onnxruntime, torch, torch.compile, jax) and record it as latency_ms",
        metavar="RUNTIME")
    # a latency budget on that runtime, in milliseconds: a slower candidate is drawn
    # again, never trained, as over --max-madds
    max_latency: float | None = option(
        None, "a latency budget on --latency's runtime (20ms, 0.5s): slower candidates "
              "are drawn again, never trained", kind="duration")
    # how a candidate is scored: None, trained on the proxy task; "supernet:DIR", with
    # the weights it inherits from the supernet trained in DIR (dpcc supernet train)
    evaluator: str | None = option(
        None, "score candidates with the weights they inherit from a trained supernet "
              "instead of training each: supernet:RUN_DIR (dpcc supernet train)",
        metavar="supernet:RUN_DIR")
    # train again an architecture whose earlier trial failed for good (cannot be
    # built, diverged); by default its failure is reused, as a finished result is
    retry_failed: bool = option(
        False, "train again an architecture that failed to build or diverged before "
               "(default: reuse its failure)", kind="flag")

    def __post_init__(self) -> None:  # a list, or "miou,madds"; None: the default
        names = self.objectives.split(",") if isinstance(self.objectives, str) \
            else self.objectives
        object.__setattr__(self, "objectives", tuple(names or DEFAULT_OBJECTIVES))


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how trials run."""

    # auto, local, pool or ray, or an executor object (the command line's default is
    # auto: see dpcdsl.search.executors.place)
    executor: Any = option(
        "local", "where trials run; auto: a pool of one worker per CPU on a multi-core "
                 "CPU (or per GPU given), else this process", choices=EXECUTORS,
        cli_default="auto")
    workers: int | None = option(
        None, "pool or Ray workers [default: one per usable CPU, or per GPU given; Ray: "
              "2]", min=1)
    threads: int | None = option(
        None, "CPU threads per trial [default: each worker's share of the usable CPUs]",
        min=1)
    # trials trained fused in each job, their heads in one step (dpcdsl.search.fusion):
    # for GPUs, which one small head leaves mostly idle; 1 trains each alone
    fuse: int = option(1, "trials trained fused in each job, their heads in one step on "
                          "the same batch: for GPUs (results equal training alone)", min=1)
    timeout: float | None = option(None, "seconds per trial")
    gpus: list[str] | None = option(None, "GPU ids for pool workers, e.g. 0,1",
                                    kind="list")
    ray_address: str | None = option(
        None, "a Ray cluster (default: a local Ray for the run)")
    gpus_per_trial: float = option(0.0, "ray: GPUs per trial")
    cpus_per_trial: float = option(1.0, "ray: CPUs per trial")
    # "bar", "log" or "none"; True: a bar on a terminal, else log lines
    progress: bool | str = option(True, cli=False)


@dataclass(frozen=True)
class StorageOptions:
    """Where the search is kept, and how a run folder is continued."""

    run_dir: Path = option(Path("runs/search"), "the run folder")
    url: str | None = option(
        None, "an Optuna storage URL (default: SQLite in the run folder)", flat="storage")
    resume: bool = option(False, "continue the run folder's study", kind="flag")
    # what a --resume may change from the study's identity (space, task, strategy...)
    allow_changed: tuple[str, ...] = option(
        (), "with --resume: what may differ from the study's start (recorded in the "
            "study)", choices=IDENTITY, kind="many")

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))


#: the groups of a :class:`SearchConfig`, by the attribute that holds each
GROUPS: dict[str, type] = {"space": SpaceOptions, "task": TaskOptions,
                           "strategy": StrategyOptions, "execution": ExecutionOptions,
                           "storage": StorageOptions}


@dataclass(frozen=True)
class Field:
    """One option as declared: its group, its field there, and its metadata."""

    group: str
    name: str  # in the group
    flat: str  # in SearchConfig(...) and, with dashes, on the command line
    default: Any
    meta: Mapping[str, Any]


def fields() -> Iterator[Field]:
    """Every option of every group, in declaration order."""
    for group, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            factory = f.default_factory
            default = f.default if factory is dataclasses.MISSING else factory()
            yield Field(group, f.name, f.metadata["flat"] or f.name, default, f.metadata)


#: each flat option name, and the field that holds it
FLAT: dict[str, Field] = {f.flat: f for f in fields()}


class SearchConfig:
    """A search's configuration: ``SearchConfig(space_file, task_file, **options)`` with
    any option by its flat name (``trials=7``, ``workers=2``, ``storage=URL``), held in
    groups: ``cfg.space``, ``cfg.task``, ``cfg.strategy``, ``cfg.execution``,
    ``cfg.storage``."""

    space: SpaceOptions
    task: TaskOptions
    strategy: StrategyOptions
    execution: ExecutionOptions
    storage: StorageOptions

    def __init__(self, space_file: Path | str, task_file: Path | str,
                 **options: Any) -> None:
        unknown = [k for k in options if k not in FLAT or k in ("space_file", "task_file")]
        if unknown:
            raise TypeError(f"SearchConfig has no option '{unknown[0]}'."
                            f"{did_you_mean(unknown[0], FLAT)}".rstrip("."))
        given: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        options = {**options, "space_file": Path(space_file), "task_file": Path(task_file)}
        for flat, value in options.items():
            f = FLAT[flat]
            given[f.group][f.name] = value
        for group, cls in GROUPS.items():
            setattr(self, group, cls(**given[group]))

    def __repr__(self) -> str:
        return "SearchConfig(" + ", ".join(repr(getattr(self, g)) for g in GROUPS) + ")"

    def strategy_settings(self, task: Any) -> dict[str, Any]:
        """The settings given for the strategy, the task file's under the config's."""
        return {**task.strategy, **self.strategy.settings}

    def pruner_settings(self, task: Any) -> dict[str, Any]:
        """The settings given for the pruner, the task file's under the config's."""
        return {**task.pruner, **self.strategy.prune_settings}
