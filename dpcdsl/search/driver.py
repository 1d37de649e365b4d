"""The search driver: Optuna ask/tell over a space, with one executor running trials.

The driver alone writes the study (SQLite in the run folder by default, or any Optuna
storage URL). Each trial records its cell's ``.dpc`` text, canonical hash, parameters,
multiply-adds, mIOU, wall time, and any failure reason. A duplicate architecture is not
trained again: its result is copied and the trial marked ``duplicate_of``. Duplicates
are found at the task's feature sizes (``same_as``, :func:`dpcdsl.compiler.rewrite.at_size`):
cells that differ only in rates reading padding there are one computation. After a
kill, ``resume`` continues the same study: finished trials stay, trials that were
running are marked failed ("interrupted") and run again, and the budget counts finished
trials only.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from dpcdsl import backends
from dpcdsl.compiler.rewrite import at_size
from dpcdsl.deploy.latency import check_runtime
from dpcdsl.errors import Diagnostic, DpcError, Span, did_you_mean
from dpcdsl.lang.analysis import cost
from dpcdsl.lang.printer import format_module
from dpcdsl.lang.program import standalone_text
from dpcdsl.lang.space import Space, option_values
from dpcdsl.search.config import ExecutionOptions, SearchConfig, StrategyOptions
from dpcdsl.search.executors import EXECUTORS, Executor, Placement, make_executor, place
from dpcdsl.search.ledger import InFlight, Ledger
from dpcdsl.search.messages import Job, Outcome
from dpcdsl.search.objectives import check as check_objectives
from dpcdsl.search.objectives import describe, directions, of_study, values_of
from dpcdsl.search.progress import SearchProgress
from dpcdsl.search.strategies import (
    PRUNERS,
    SETTINGS,
    STRATEGIES,
    ArchitectureSampler,
    make_pruner,
    make_sampler,
    settings_for,
)
from dpcdsl.search.study import STUDY, open_storage, orphaned, record_storage, run_lock
from dpcdsl.train.data.datasets import open_split
from dpcdsl.train.data.task import Task, load_task
from dpcdsl.train.proxy import ensure_cache, fed, head_cell

#: the study attribute ``params`` of studies whose parameters are option labels (older
#: ones hold option indices, and keep them on resume)
LABELLED = "labels"
#: ... and of studies whose numeric options are ordered numbers (int or float
#: distributions), the others labels: every study started now
ORDERED = "ordered"

#: draws in a row over the budget before a search gives up
MAX_REJECTED = 1000
#: how _launch says that a draw was not trained and the search draws again
REDRAWN = ("over budget", "over latency", "unbuildable")


def _check_names(cfg: SearchConfig) -> None:
    """The strategy, pruner and executor names, with "did you mean"; a search that would
    fail on one of them fails before it writes a study, a cache or a run folder."""
    st, ex = cfg.strategy, cfg.execution
    for what, name, known in (("strategy", st.name, STRATEGIES),
                              ("pruner", st.prune, PRUNERS),
                              ("executor", ex.executor, EXECUTORS)):
        if isinstance(name, str) and name not in known:
            raise DpcError.at(None, f"unknown {what} '{name}'.{did_you_mean(name, known)}"
                              .rstrip("."), hint=f"{what}s: " + ", ".join(known),
                              code="DPC801")
    names = check_objectives(st.objectives, st.latency)
    if len(names) > 1 and st.prune != "none":
        raise DpcError.at(None, f"--prune {st.prune} rules on one objective's intermediate "
                          "values, and Optuna prunes no multi-objective study",
                          hint="leave --prune out with several --objectives", code="DPC801")
    if st.latency is not None:  # known and installed, before anything is written
        check_runtime(st.latency)
    elif st.max_latency is not None:
        raise DpcError.at(None, "a latency budget (max_latency) needs a runtime to time "
                          "candidates on", hint="add --latency onnxruntime (or torch, "
                          "torch.compile, jax)", code="DPC801")
    for what, value, default in (("timeout", ex.timeout, "no limit"),
                                 ("max_madds", st.max_madds, "no limit"),
                                 ("max_latency", st.max_latency, "no limit"),
                                 ("workers", ex.workers, "one per usable CPU"),
                                 ("threads", ex.threads, "each worker's share of the CPUs"),
                                 ("fuse", ex.fuse, "1, each trial alone")):
        if value is not None and not value > 0:
            raise DpcError.at(None, f"{what} must be positive, got {value:g}",
                              hint=f"leave --{what.replace('_', '-')} out for {default}",
                              code="DPC801")


def supernet_dir(evaluator: str) -> Path:
    """The run folder an evaluator ``supernet:DIR`` names, or an error that shows the
    form."""
    kind, sep, where = evaluator.partition(":")
    if kind != "supernet" or not sep or not where:
        raise DpcError.at(None, f"unknown evaluator '{evaluator}'",
                          hint="give supernet:RUN_DIR, the run folder of dpcc supernet "
                               "train (or leave --evaluator out to train each candidate)",
                          code="DPC801")
    return Path(where).resolve()


def _check_evaluator(cfg: SearchConfig, space: Space, task: Task, trainer: str) -> str | None:
    """The supernet folder that scores the trials (None: they train), checked against
    the search's space and task before anything is written."""
    st = cfg.strategy
    if st.evaluator is None:
        return None
    folder = supernet_dir(st.evaluator)
    if st.prune != "none":
        raise DpcError.at(None, f"--prune {st.prune} stops trainings early, and a supernet "
                          "scores candidates without training them",
                          hint="leave --prune out with --evaluator", code="DPC801")
    from dpcdsl.train.oneshot import check_supernet

    check_supernet(folder, space, task, trainer)
    return str(folder)


def identity(cfg: SearchConfig, space: Space, task: Task, backend: str) -> dict[str, str]:
    """What defines a search, so that a resume can be checked against it: the space's
    canonical text (with what it imports), the task's content, strategy, pruner, seed
    and the backend that trains. Paths are left out: a run folder may move."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    program = space.program
    sources = [format_module(program.module)] + [
        text for file, text in sorted(program.sources.items()) if file != program.file]
    # the strategy's and the pruner's settings count under their own keys
    task_data = task.model_dump(mode="json", exclude={"file", "cache_dir", "strategy",
                                                      "pruner"})
    st = cfg.strategy
    out = {"space": digest("\n".join([space.name, *sources])),
           "task": digest(json.dumps(task_data, sort_keys=True)),
           "strategy": st.name, "prune": st.prune, "seed": str(st.seed), "backend": backend}
    for key, value in (("max_madds", st.max_madds), ("latency", st.latency),
                       ("max_latency", st.max_latency)):
        if value is not None:
            out[key] = str(value)
    if st.evaluator is not None:  # the supernet as trained, wherever its folder is
        from dpcdsl.train.oneshot import describe_supernet

        out["evaluator"] = describe_supernet(supernet_dir(st.evaluator))
    for key, name, table, given in (
            ("strategy", st.name, SETTINGS, cfg.strategy_settings(task)),
            ("prune", st.prune, PRUNERS, cfg.pruner_settings(task))):
        defaults = table.get(name, {})
        changed = {k: v for k, v in settings_for(name, given, table, key).items()
                   if v != defaults.get(k)}
        if changed:  # left out at the defaults, so studies from before settings resume
            out[key] += " " + json.dumps(changed, sort_keys=True)
    return out


def _check_resume(study: optuna.Study, current: dict[str, str],
                  allow: tuple[str, ...]) -> None:
    """Refuse a resume that changes what defines the search, naming each difference,
    unless the change is allowed (and then recorded)."""
    recorded = study.user_attrs.get("identity")
    if recorded is None:  # a study from before identities were recorded
        study.set_user_attr("identity", current)
        return
    changed = {k: (recorded.get(k), v) for k, v in current.items() if recorded.get(k) != v}
    refused = {k: d for k, d in changed.items() if k not in allow}
    if refused:
        raise DpcError([Diagnostic(span=Span(file=""), code="DPC803", message=(
            f"--resume with a different {k}: the study has {old}, this run {new}"),
            hint=f"resume with what the study was started with, or allow it explicitly "
                 f"with --allow-changed {k}") for k, (old, new) in refused.items()])
    if changed:
        log = list(study.user_attrs.get("changes", []))
        log.append({k: [old, new] for k, (old, new) in changed.items()})
        study.set_user_attr("changes", log)
        study.set_user_attr("identity", {**recorded, **current})


def _open_study(cfg: SearchConfig, space: Space, current: dict[str, str],
                settings: dict[str, Any], prune_settings: dict[str, Any]) -> optuna.Study:
    kept, st = cfg.storage, cfg.strategy
    url = open_storage(kept.run_dir, kept.url)
    names = [s.study_name for s in optuna.get_all_study_summaries(url)] \
        if kept.url or (kept.run_dir / "study.db").exists() else []
    if STUDY in names and not kept.resume:
        raise DpcError.at(None, f"{kept.run_dir} already holds a search",
                          hint="continue it with --resume, or choose another --run-dir",
                          code="DPC802")
    if kept.resume and STUDY not in names:
        raise DpcError.at(None, f"nothing to resume in {kept.run_dir}: no study there",
                          code="DPC802")
    record_storage(kept.run_dir, kept.url)
    objectives = check_objectives(st.objectives, st.latency)
    try:
        study = optuna.create_study(study_name=STUDY, storage=url,
                                    load_if_exists=kept.resume,
                                    directions=directions(objectives),
                                    sampler=make_sampler(st.name, space, st.seed, settings),
                                    pruner=make_pruner(st.prune, prune_settings))
    except optuna.exceptions.DuplicatedStudyError:  # another driver created it just now
        raise DpcError.at(None, f"the storage of {cfg.storage.run_dir} already holds a search "
                          "(another driver started it at the same moment)",
                          hint="join it with --resume", code="DPC802") from None
    if not cfg.storage.resume:
        study.set_user_attr("space_file", str(Path(cfg.space.file).resolve()))
        study.set_user_attr("cell", space.name)
        study.set_user_attr("task_file", str(Path(cfg.task.file).resolve()))
        study.set_user_attr("strategy", cfg.strategy.name)
        study.set_user_attr("identity", current)
        study.set_user_attr("params", ORDERED)
        study.set_user_attr("objectives", list(objectives))
    else:
        _check_objectives(study, objectives)
        _check_resume(study, current, cfg.storage.allow_changed)
    # what the report's settings table shows, as this run uses them
    study.set_user_attr("settings", {"strategy": settings, "pruner": prune_settings,
                                     "trials": st.trials})
    if kept.resume:
        if not isinstance(study.sampler, ArchitectureSampler):
            # TPE draws on from where the study is, not from its first draw again (which
            # would propose the same architectures after every resume); the
            # architecture samplers seed each trial's draw by its number instead
            seed = st.seed * 1_000_003 + len(study.get_trials(deepcopy=False))
            study.sampler = make_sampler(st.name, space, seed, settings)
    return study


def _check_objectives(study: optuna.Study, names: tuple[str, ...]) -> None:
    """A study's objectives are its values: a resume cannot change them."""
    had = of_study(study)
    if had != names:
        raise DpcError.at(None, f"--resume with other objectives: the study optimises "
                          f"{','.join(had)} ({describe(had)}), this run {','.join(names)}",
                          hint=f"resume with --objectives {','.join(had)}, or start another "
                               "--run-dir", code="DPC803")


def _rerun_interrupted(study: optuna.Study) -> None:
    """Trials a killed driver left running: one whose scores were already stored (the
    driver died between storing them and telling the study; ``final_loss`` is stored
    last) is told with them; any other is marked failed and queued to run again. The
    trials of a driver still alive (several drivers on one shared storage), or of one
    on another machine, are left to it."""
    others = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        gone = orphaned(t)
        if not gone:
            others.append(t.number)
            continue
        if "final_loss" in t.user_attrs and t.user_attrs.get("miou") is not None:
            study.tell(t.number, values_of(t.user_attrs, of_study(study)))
            continue
        study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number})
        study.tell(t.number, state=TrialState.FAIL)
    if others:
        warnings.warn(f"trials {', '.join(map(str, others))} are running under other "
                      "drivers (alive, or on other machines); they are left to them",
                      RuntimeWarning, stacklevel=2)


def search(cfg: SearchConfig) -> optuna.Study:
    """Run (or resume) a search; returns the Optuna study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = Space.from_file(cfg.space.file, cfg.space.cell)
    task = load_task(cfg.task.file)
    _check_names(cfg)  # every option, before anything is written
    if cfg.strategy.name in SETTINGS:
        settings_for(cfg.strategy.name, cfg.strategy_settings(task))
    settings_for(cfg.strategy.prune, cfg.pruner_settings(task), PRUNERS, "pruner")
    task = fed(space.cell_def, task)  # the task feeds every input of the space's cells
    # the trials' backend, resolved once here, so that a worker loads that one alone
    trainer = backends.resolve(task.backend, "proxy_steps").name
    evaluator = _check_evaluator(cfg, space, task, trainer)
    cfg.storage.run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(cfg.storage.run_dir):
        return _search(cfg, space, task, trainer, evaluator)


def _placement(ex: ExecutionOptions, task: Task) -> Placement | None:
    """Where the trials run (None for an executor object, which places itself)."""
    if not isinstance(ex.executor, str):
        return None
    return place(ex.executor, ex.workers, ex.threads, task.device, ex.gpus, ex.cpus_per_trial)


def _describe(p: Placement, fuse: int = 1) -> str:
    threads = f"{p.threads} CPU thread{'s' * (p.threads != 1)}"
    fused = f", up to {fuse} trained fused in each job" if fuse > 1 else ""
    if p.executor == "local":
        return f"in this process, {threads}{fused}"
    return (f"on {p.executor} ({p.workers} worker{'s' * (p.workers != 1)}, {threads} "
            f"each){fused}")


def _executor(ex: ExecutionOptions, placed: Placement | None) -> Executor:
    if placed is None:  # an executor object
        return make_executor(ex, 1)
    return make_executor(replace(ex, executor=placed.executor), placed.workers,
                         placed.threads)


def _prepare(cfg: SearchConfig, space: Space, task: Task, trainer: str
             ) -> tuple[optuna.Study, Any]:
    """The study, opened or resumed; the run folder's copies of the space and the task;
    the feature cache, built once; the baseline, trained once."""
    kept = cfg.storage
    study = _open_study(cfg, space, identity(cfg, space, task, trainer),
                        cfg.strategy_settings(task), cfg.pruner_settings(task))
    # the task as this run uses it, paths resolved: report and rerank read it from the
    # run folder, wherever they are started
    (kept.run_dir / "space.dpc").write_text(standalone_text(space.program))
    (kept.run_dir / "task.json").write_text(
        json.dumps({**task.model_dump(mode="json"), "file": task.file}, indent=1) + "\n")
    if kept.resume:
        _rerun_interrupted(study)
    cache = ensure_cache(task, progress=cfg.execution.progress)  # once, first
    names = cache.meta.get("class_names") or list(open_split(task, "train").class_names)
    if names and study.user_attrs.get("class_names") != names:
        study.set_user_attr("class_names", names)  # the report's per-class columns
    if cfg.task.baseline is not None:
        _train_baseline(study, cfg.task.baseline, task, trainer, cfg.execution.progress)
    return study, cache


def _search(cfg: SearchConfig, space: Space, task: Task, trainer: str,
            evaluator: str | None = None) -> optuna.Study:
    study, cache = _prepare(cfg, space, task, trainer)
    placed = _placement(cfg.execution, task)
    run = _Run(study, space, _executor(cfg.execution, placed),
               {**task.model_dump(mode="json"), "file": task.file, "backend": trainer},
               cfg, _ledger(study),
               vet=_Vet(task, cache, cfg.strategy, placed.threads if placed else 1),
               same=_same_key(task, cache), steps=1 if evaluator else task.train.steps,
               evaluator=evaluator)
    start = time.time()
    with SearchProgress(cfg.strategy.trials, cfg.execution.progress,
                        log_file=cfg.storage.run_dir / LOG) as bar:
        if placed is not None:  # on the terminal too, above the bar
            (bar.say if bar.mode != "none" else bar.record)(
                f"trials run {_describe(placed, cfg.execution.fuse)}")
        try:
            run.loop(bar)
        finally:
            run.executor.close()
    study.set_user_attr("last_run_s", time.time() - start)
    from dpcdsl.search.report import write_outputs

    write_outputs(study, cfg.storage.run_dir)
    return study


def _ledger(study: optuna.Study) -> Ledger:
    """The study's ledger, in the study's style of parameters, shared with its
    architecture sampler."""
    style = study.user_attrs.get("params")
    ledger = Ledger(study, labelled=style in (LABELLED, ORDERED), ordered=style == ORDERED)
    if isinstance(study.sampler, ArchitectureSampler):
        study.sampler.ledger = ledger
        study.sampler.ordered = ledger.ordered
    return ledger


def suggest_cell(trial: Trial, space: Space, labelled: bool = True,
                 ordered: bool = True) -> Any:
    """The trial's cell, each choice point suggested through the study's sampler as a
    parameter named by its path. A choice among numbers (``rate = {1, 3, 6}``,
    ``p = {0.1, 0.2}``) is an ordered parameter: an int distribution (with its step,
    when the numbers are evenly spaced) or a float one, and a value between options
    picks the nearest; any other choice is categorical over the options' readable
    labels (``b0.op = sepconv(kernel = 3, ...)``, ``b0.input = x``). So Optuna's plots,
    importances and optuna-dashboard read as the space does. The decisions are kept in
    the trial's ``decisions`` attribute.

    Studies from before ordered numbers (``ordered=False``) keep labels for numbers
    too, and studies from before labels (``labelled=False``) integer option indices.

    Use it in an objective of your own::

        space = dpcdsl.Space.from_file("examples/dpc_paper.dpc")

        def objective(trial):
            cell = suggest_cell(trial, space)
            return my_score(dpcdsl.compile(cell, backend="torch", in_channels=2048))

        optuna.create_study(direction="maximize").optimize(objective, n_trials=20)
    """

    def choose(path: str, counts: list[int], labels: list[str]) -> int:
        if len(counts) == 1:
            return 0
        values = option_values(labels) if ordered else None
        if values is not None:
            i = _nearest(values, _suggest_number(trial, path, values))
        elif labelled:
            i = labels.index(trial.suggest_categorical(path, labels))
        else:
            i = trial.suggest_int(path, 0, len(counts) - 1)
        if counts[i] == 0:
            raise DpcError.at(None, f"{path} = {labels[i]} is an empty option here", code="DPC602")
        return i

    cell, decisions = space.decide(choose, labelled=True)
    trial.set_user_attr("decisions", decisions)
    return cell


def number_distribution(values: list[int] | list[float]) -> BaseDistribution:
    """The ordered distribution of a choice among ``values``: ints with their step when
    evenly spaced, ints without one, or floats."""
    lo, hi = min(values), max(values)
    if all(isinstance(v, int) for v in values):
        ordered = sorted(values)
        steps = {b - a for a, b in zip(ordered, ordered[1:])}
        step = steps.pop() if len(steps) == 1 else 1
        return IntDistribution(int(lo), int(hi), step=int(step))
    return FloatDistribution(float(lo), float(hi))


def _suggest_number(trial: Trial, path: str, values: list[int] | list[float]) -> float:
    dist = number_distribution(values)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(path, dist.low, dist.high, step=dist.step)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(path, dist.low, dist.high)


def _nearest(values: list[int] | list[float], value: float) -> int:
    """The option nearest ``value`` (the smaller on a tie)."""
    return min(range(len(values)), key=lambda i: (abs(values[i] - value), values[i]))


#: failure reasons that a second run of the same architecture would give again
DETERMINISTIC = ("error: ", "diverged: ")


def _as_trained(cell: Any, task: Task, cache: Any) -> tuple[Any, Any, Any]:
    """The cell's head as the task trains it (at the backbone's output stride), with
    the channels and sizes of the cached features that feed it."""
    head = head_cell(cell, task)
    return head, cache.in_channels(head, task), cache.sizes(head, task)


def _train_baseline(study: optuna.Study, baseline: str | Path, task: Task, trainer: str,
                    progress: bool | str) -> None:
    """Train the baseline cell once on the search's proxy task (again only when the
    cell or the task changed) and keep its result in the study for the report."""
    from dpcdsl.lang.heads import resolve
    from dpcdsl.train.proxy import train

    cell = Space.from_file(resolve(baseline)).concrete()
    known = study.user_attrs.get("baseline")
    key = f"{cell.hash}:{study.user_attrs.get('identity', {}).get('task', '')}"
    if isinstance(known, dict) and known.get("key") == key:
        return
    result = train(cell, task, backend=trainer, progress=progress,
                   label=f"baseline {cell.name}")
    study.set_user_attr("baseline", {"name": cell.name, "key": key, "miou": result.miou,
                                     "madds": result.madds, "params": result.params,
                                     "cell": cell.canonical_text()})


class _Vet:
    """``vet(cell)``: why the search draws again instead of training the cell, as
    ``(outcome, detail)``: ``("unbuildable", why)`` at the task's feature sizes (a pool
    grid larger than the map, widths that do not add up), ``("over budget", madds)``
    over ``max_madds``; None to train it. One cost computation at the task's sizes
    serves both. It keeps the architectures it found unbuildable, so a small space
    that holds nothing buildable ends the search at once."""

    def __init__(self, task: Task, cache: Any, st: StrategyOptions, threads: int) -> None:
        self.task, self.cache, self.max_madds = task, cache, st.max_madds
        self.runtime, self.max_latency, self.threads = st.latency, st.max_latency, threads
        self.refused: set[str] = set()
        self.latency_ms: dict[str, float] = {}  # by the hash of the head as trained

    def __call__(self, cell: Any) -> tuple[str, Any] | None:
        try:
            head, channels, sizes = _as_trained(cell, self.task, self.cache)
            madds = cost(head, channels, sizes).madds
        except DpcError as e:
            self.refused.add(cell.hash)
            return "unbuildable", e.diagnostics[0].message
        if self.max_madds is not None and madds > self.max_madds:
            return "over budget", madds
        if self.runtime is None:
            return None
        ms = self.measured(head, channels, sizes)
        if self.max_latency is not None and ms > self.max_latency:
            return "over latency", ms
        return None

    def measured(self, head: Any, channels: Any, sizes: Any) -> float:
        """The head's median forward time on the runtime, in ms: measured once per
        head (a batch of one at the task's feature sizes, on the trial's threads)."""
        if head.hash not in self.latency_ms:
            from dpcdsl.deploy.latency import latency

            self.latency_ms[head.hash] = latency(
                head, str(self.runtime), in_channels=channels, sizes=sizes,
                threads=self.threads, warmup=3, runs=10).median_ms
        return self.latency_ms[head.hash]

    def latency_of(self, cell: Any) -> float | None:
        """The latency measured for ``cell``, if it was."""
        try:
            return self.latency_ms.get(head_cell(cell, self.task).hash)
        except DpcError:
            return None


def _same_key(task: Task, cache: Any) -> Callable[[Any], str]:
    """``key(cell)``: the hash of the computation the cell is at the task's feature
    sizes (:func:`dpcdsl.compiler.rewrite.at_size`), so that architectures differing only in
    rates that read padding there are trained once. A cell whose shapes do not fit
    keeps its own hash (its trial fails and says why)."""

    def key(cell: Any) -> str:
        try:
            return str(at_size(*_as_trained(cell, task, cache)).hash)
        except DpcError:
            return str(cell.hash)

    return key


def _no_room(study: optuna.Study, st: StrategyOptions, none_fit: bool = False) -> DpcError:
    """Why the search stopped drawing: the last draws were all over a budget, or
    could not be built at the task's feature sizes (``none_fit``: no architecture of
    the space can)."""
    last = study.trials[-MAX_REJECTED:]
    unbuildable = [t.user_attrs["unbuildable"] for t in last if "unbuildable" in t.user_attrs]
    slow = [float(t.user_attrs["over_latency"]) for t in last if "over_latency" in t.user_attrs]
    if none_fit or len(unbuildable) * 2 >= len(last) or \
            (st.max_madds is None and st.max_latency is None):
        common = max(set(unbuildable), key=unbuildable.count) if unbuildable else "?"
        what = "no architecture of the space can be built" if none_fit else \
            f"{MAX_REJECTED} draws in a row cannot be built"
        return DpcError.at(None, f"{what} at the task's feature sizes, e.g.: {common}",
                           hint="a larger crop or a lower backbone output stride, or "
                                "narrow the space to options that fit", code="DPC803")
    if slow and st.max_latency is not None:
        return DpcError.at(None, f"{MAX_REJECTED} draws in a row were over the budgets; "
                           f"{len(slow)} of them slower than {st.max_latency:g} ms on "
                           f"{st.latency} (the fastest: {min(slow):.3g} ms)",
                           hint="raise --max-latency, or narrow the space to faster options",
                           code="DPC803")
    costs = [int(t.user_attrs["over_budget"]) for t in study.trials
             if "over_budget" in t.user_attrs]
    return DpcError.at(None, f"{MAX_REJECTED} draws in a row cost more than the budget of "
                       f"{(st.max_madds or 0) / 1e9:.3g}B multiply-adds (the cheapest: "
                       f"{min(costs, default=0) / 1e9:.3g}B)",
                       hint="raise --max-madds, or narrow the space to cheaper options",
                       code="DPC803")


@dataclass
class _Run:
    """One driver's search loop: it draws trials while the executor has room and the
    budget allows, and tells the study what each ended with. A drawn cell that cannot
    be built at the task's sizes or is over the budget is told at once and drawn again;
    a duplicate of a finished computation is told its result; one of a computation
    running here waits for it (:class:`~dpcdsl.search.ledger.InFlight`)."""

    study: optuna.Study
    space: Space
    executor: Executor
    task_json: dict[str, Any]
    cfg: SearchConfig
    ledger: Ledger
    flight: InFlight = field(default_factory=InFlight)
    vet: _Vet | None = None
    same: Callable[[Any], str] | None = None
    steps: int = 0  # the task's training steps, for the progress line
    pending: dict[int, Trial] = field(default_factory=dict)  # running, or held
    rejected: int = 0  # draws in a row over the budget, or that cannot be built
    evaluator: str | None = None  # a supernet's run folder that scores the trials

    def __post_init__(self) -> None:
        self.size = self.space.count()  # a space whose every architecture was refused
        self.objectives = of_study(self.study)  # what each finished trial is told

    def loop(self, bar: SearchProgress) -> None:
        trials, ledger = self.cfg.strategy.trials, self.ledger
        while True:
            ledger.refresh()
            bar.update(len(ledger.counted), ledger.best, ledger.failures, ledger.take_fresh())
            if ledger.spent(trials):
                return
            self.fill(bar)
            if not self.pending:  # the rest of the budget runs under other drivers
                time.sleep(1.0)
                ledger.sync()
            self.collect(bar)

    def fill(self, bar: SearchProgress) -> None:
        """Draw and start trials while a slot is free and the budget has room."""
        trials, ledger, study = self.cfg.strategy.trials, self.ledger, self.study
        while self.executor.busy < self.executor.slots \
                and ledger.room(trials, self.pending) > 0:
            trial = ledger.ask()
            if ledger.beyond(trial.number, trials, self.pending):
                trial.set_user_attr("surplus", True)  # another driver took it
                ledger.told(study.tell(trial, state=TrialState.FAIL))
                return
            outcome = self.launch(trial, bar.within(trial.number, self.steps))
            self.rejected = self.rejected + 1 if outcome in REDRAWN else 0
            none_fit = self.vet is not None and len(self.vet.refused) >= self.size
            if self.rejected >= MAX_REJECTED or none_fit:
                raise _no_room(study, self.cfg.strategy, none_fit)
            if outcome in (None, "held"):
                self.pending[trial.number] = trial
            if ledger.spent(trials):
                return

    def collect(self, bar: SearchProgress) -> None:
        """Tell the study what ended, then start the trials that waited for it."""
        for number, result in self.executor.collect():
            self.ledger.told(_tell(self.study, self.pending.pop(number), result,
                                   self.objectives))
            if result.traceback:
                _keep_traceback(self.cfg.storage.run_dir, number, result.traceback)
            for trial, drawn in self.flight.ended(number):  # they waited for it
                on_step = bar.within(trial.number, self.steps)
                if self.start(trial, drawn, on_step) not in (None, "held"):
                    del self.pending[trial.number]

    def launch(self, trial: Trial, on_step: Callable[..., None] | None = None
               ) -> str | None:
        """Decide the trial's cell and start it; a cell that cannot be built at the
        task's sizes or is over the budget is told at once, and so is what
        :meth:`start` tells (returns how it ended; None: running, "held": waiting for
        a running trial of the same computation)."""
        study, ledger = self.study, self.ledger
        try:
            cell = suggest_cell(trial, self.space, ledger.labelled, ledger.ordered)
        except DpcError as e:
            trial.set_user_attr("failure", f"error: {e.diagnostics[0].message}")
            ledger.told(study.tell(trial, state=TrialState.FAIL))
            return "failed"
        trial.set_user_attr("cell", cell.canonical_text())
        trial.set_user_attr("hash", cell.hash)
        verdict = self.vet(cell) if self.vet is not None else None
        ms = self.vet.latency_of(cell) if self.vet is not None else None
        if ms is not None:
            trial.set_user_attr("latency_ms", ms)
            trial.set_user_attr("latency_runtime", self.cfg.strategy.latency)
        if verdict is not None:  # not trained, and not counted: the search draws again
            outcome, detail = verdict
            trial.set_user_attr(outcome.replace(" ", "_"), detail)
            ledger.told(study.tell(trial, state=TrialState.FAIL))
            return str(outcome)
        key = cell.hash if self.same is None else self.same(cell)
        trial.set_user_attr("same_as", key)
        return self.start(trial, (cell, key), on_step)

    def start(self, trial: Trial, drawn: tuple[Any, str],
              on_step: Callable[..., None] | None = None) -> str | None:
        """Train the trial's cell, unless its computation was trained (a duplicate,
        told at once), failed for good (told), or is running here (held until it
        ends). ``drawn`` is the cell and the key of its computation."""
        cell, key = drawn
        told = self._reuse(trial, key)
        if told is not None:
            return told
        if self.flight.hold(key, trial, drawn):
            return "held"
        job = Job(cell=cell.canonical_text(), task=self.task_json, evaluator=self.evaluator)

        def report(step: int, miou: float, part: int = 0) -> None:
            if on_step is not None:  # where the trial is, whichever process runs it
                on_step(step, miou)
            trial.report(miou, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (mIOU {miou:.1f})")

        # every evaluation's mIOU is the trial's intermediate value (Optuna's learning
        # curves, optuna-dashboard), and the pruner, if any, rules on it
        reports = self.executor.name in ("local", "pool", "ray") and not self.ledger.multi
        try:
            self.executor.submit(trial.number, job, report if reports else None,
                                 on_step=on_step)
        except optuna.TrialPruned:
            self.ledger.told(self.study.tell(trial, state=TrialState.PRUNED))
            return "pruned"
        self.flight.started(trial.number, key)
        return None

    def _reuse(self, trial: Trial, key: str) -> str | None:
        """Tell the trial what a finished trial of the same computation scored, or its
        failure where that would repeat; None where it must train."""
        done = self.ledger.completed.get(key)  # the same computation at the task's sizes
        if done is not None:
            for attr in ("miou", "params", "madds", "computed_madds", "wall_s",
                         "per_class_iou"):
                if attr in done.user_attrs:
                    trial.set_user_attr(attr, done.user_attrs[attr])
            trial.set_user_attr("duplicate_of", done.number)
            self.ledger.told(self.study.tell(trial, done.values))
            return "duplicate"
        failed = self.ledger.failed.get(key)
        # a cell that cannot be built, or diverges with this seed, fails the same way
        # again; a timeout or a dead worker may not
        if failed is not None and not self.cfg.strategy.retry_failed \
                and str(failed.user_attrs.get("failure", "")).startswith(DETERMINISTIC):
            trial.set_user_attr("failure", failed.user_attrs["failure"])
            trial.set_user_attr("duplicate_of", failed.number)
            self.ledger.told(self.study.tell(trial, state=TrialState.FAIL))
            return "failed"
        return None


#: the folder of a run that holds one traceback file per failed trial, and its log (the
#: lines of the log mode, whatever the terminal shows)
FAILURES = "failures"
LOG = "search.log"


def _keep_traceback(run_dir: Path, number: int, text: str) -> None:
    folder = run_dir / FAILURES
    folder.mkdir(exist_ok=True)
    (folder / f"trial-{number}.txt").write_text(text)


def _tell(study: optuna.Study, trial: Trial, outcome: Outcome,
          objectives: tuple[str, ...] = ("miou",)) -> FrozenTrial:
    trial.set_user_attr("wall_s", outcome.wall_s)
    if outcome.attempts > 1:
        trial.set_user_attr("attempts", outcome.attempts)
    if outcome.device:
        trial.set_user_attr("device", outcome.device)
    if outcome.fused:  # trained in one job with these trials
        trial.set_user_attr("fused_with", [n for n in outcome.fused if n != trial.number])
    if outcome.pruned:
        trial.set_user_attr("pruned", outcome.failure)
        return study.tell(trial, state=TrialState.PRUNED)
    if outcome.scores is None:
        trial.set_user_attr("failure", outcome.failure)
        return study.tell(trial, state=TrialState.FAIL)
    scores = asdict(outcome.scores)
    for key, value in scores.items():
        trial.set_user_attr(key, value)
    if len(objectives) == 1:
        return study.tell(trial, outcome.scores.miou)
    # a cost measured before training (latency) is in the trial's attributes
    return study.tell(trial, values_of({**trial.user_attrs, **scores}, objectives))
