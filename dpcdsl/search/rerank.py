"""Re-ranking: the top K cells of a search trained longer on the proxy task, or end to
end as full models, and the Spearman rank correlation between proxy and re-ranked
scores (the DPC paper's figure 4). Results go to ``rerank.json`` in the run folder and
into the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from pydantic import ValidationError

from dpcdsl._files import load_json
from dpcdsl.errors import DpcError, Span
from dpcdsl.lang.space import Space
from dpcdsl.search.objectives import directions, fronts, minimised
from dpcdsl.search.objectives import score as miou_of
from dpcdsl.search.report import ranked, write_outputs
from dpcdsl.search.study import STUDY, find_storage, open_storage
from dpcdsl.search.summary import ParetoSet, pareto_set
from dpcdsl.train.data.task import Task, load_task
from dpcdsl.train.progress import StepProgress

#: the best cells a single-objective search re-ranks when not told how many
TOP = 5


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN below two points."""
    if len(a) < 2:
        return float("nan")

    def ranks(x: list[float]) -> np.ndarray:
        values = np.asarray(x, np.float64)
        order = values.argsort(kind="stable")
        r = np.empty(len(values))
        r[order] = np.arange(len(values), dtype=np.float64)
        for v in np.unique(values):  # ties share their mean rank
            r[values == v] = r[values == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _retrain(t: optuna.trial.FrozenTrial, task: Task, run_dir: Path, end_to_end: bool,
             progress: bool | str, label: str) -> float:
    """The mIOU of trial ``t``'s cell trained again under ``task``."""
    cell = Space.from_text(t.user_attrs["cell"]).concrete()
    if not end_to_end:
        from dpcdsl.train.proxy import train

        return train(cell, task, progress=progress, label=label).miou
    from dpcdsl.backends import resolve

    trainer = resolve(task.backend, "train_model")
    with StepProgress(task.train.steps, progress, label) as shown:
        record = trainer.train_model(cell, task, run_dir / "rerank" / f"trial-{t.number}",
                                     overwrite=True,  # a re-ranking is recomputed
                                     callback=shown.evaluated)
    return float(record["evals"][-1][1])


def _stays_on_front(front: ParetoSet, trials: list[optuna.trial.FrozenTrial],
                    rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mark the re-ranked rows of a Pareto front with their costs and whether they stay
    on the front with their re-ranked mIOU; returns what the record says of the front."""
    dirs = directions(front.objectives)
    points = []
    for t, r in zip(trials, rows, strict=True):
        r["costs"] = dict(zip(front.objectives[1:], t.values[1:], strict=True))
        points.append(minimised([r["rerank_miou"], *t.values[1:]], dirs))
    kept = set(fronts(points, 1)[0])
    for i, r in enumerate(rows):
        r["front"] = i in kept
    return {"objectives": list(front.objectives), "size": len(front.trials)}


def run_task(run_dir: Path, study: optuna.Study) -> Task:
    """The task a search ran with: its copy in the run folder (paths resolved), or, for
    a run folder from before copies were kept, the task file it names."""
    copy = run_dir / "task.json"
    if copy.is_file():
        try:
            return Task.model_validate(load_json(copy, "task record"))
        except ValidationError as e:
            raise DpcError.at(Span(file=str(copy)), f"the task record is damaged: "
                              f"{e.errors()[0]['msg']}",
                              hint="restore it from the task file the search ran with",
                              code="DPC701") from None
    return load_task(study.user_attrs["task_file"])


def rerank(run_dir: Path, top: int | None = None, steps: int | None = None,
           end_to_end: bool = False,
           storage: str | None = None, task: Task | None = None,
           progress: bool | str = False,
           runtime: Callable[[Task], Task] | None = None) -> dict[str, Any]:
    """Retrain the ``top`` best distinct cells of the search in ``run_dir`` for ``steps``
    steps each, on the proxy task or ``end_to_end``, under ``task`` (default: the
    search's own; the paper re-ranks with another backbone, e.g.
    ``examples/tasks/cityscapes_end_to_end.toml``). ``steps`` defaults to the given
    task's, or 1000 on the search's.

    A multi-objective search retrains its Pareto front (the first ``top`` of it by
    mIOU; all of it by default, else the top 5), and the record says which re-trained
    cells stay on the front with their re-ranked mIOU."""
    storage = find_storage(run_dir, storage)
    study = optuna.load_study(study_name=STUDY, storage=open_storage(run_dir, storage))
    if steps is None:
        steps = task.train.steps if task is not None else 1000
    task = task if task is not None else run_task(run_dir, study)
    if runtime is not None:  # the command's device, seed and threads
        task = runtime(task)
    task = task.model_copy(update={"train": task.train.model_copy(
        update={"steps": steps, "eval_every": steps})})
    front = pareto_set(study, ranked(study))
    if front is not None:
        unique = front.trials[:top]
    else:
        unique = [t for t in ranked(study) if "duplicate_of" not in t.user_attrs][:top or TOP]
    if not unique:
        raise DpcError.at(None, f"{run_dir} has no finished trial to re-rank", code="DPC803")
    rows = []
    for i, t in enumerate(unique, 1):
        label = f"rerank {i}/{len(unique)} (trial {t.number})"
        rows.append({"trial": t.number, "proxy_miou": float(miou_of(t) or 0),
                     "rerank_miou": _retrain(t, task, run_dir, end_to_end, progress, label)})
    scored_by = "supernet" if study.user_attrs.get("identity", {}).get("evaluator") \
        else "proxy"
    result = {"top": top, "steps": steps, "end_to_end": end_to_end, "task": task.file,
              "scored_by": scored_by,
              "backbone": task.backbone.name, "rows": rows,
              "spearman": spearman([r["proxy_miou"] for r in rows],
                                   [r["rerank_miou"] for r in rows]),
              "pareto": None if front is None else _stays_on_front(front, unique, rows)}
    (run_dir / "rerank.json").write_text(json.dumps(result, indent=1))
    write_outputs(study, run_dir)
    return result
