"""What a search leaves in its run folder: ``best.dpc``, ``best.svg``, ``best/`` (the
text of the best cells), ``leaderboard.csv`` (every trial that used budget, with its
state, scores and per-class IoU) and ``report.html``; a multi-objective search also
``pareto/`` (each cell of its Pareto set as text and drawn).

The report is one file that works offline and stays small for searches of tens of
thousands of trials: the trials travel once, as a compact JSON block, and a short
script draws the plots on canvases (a label under the pointer, a click opens the trial)
and pages and sorts the leaderboard. Sections: progress against trials and against
search time (idle gaps between runs left out), Pareto fronts of mIOU against
multiply-adds, parameters and latency (with a multi-objective search's Pareto set and its
hypervolume against trials), learning curves of the top trials, the leaderboard (per-class
IoU under the dataset's class names), the options the best trials share, fANOVA
importances of the choices, the graphs of the top cells, re-ranking, and the failed
trials with their reasons and cells and the pruned ones with where they stopped. A
settings table heads it, and a baseline (``dpcc search --baseline aspp``) is a dashed
line on the progress plots.
"""

from __future__ import annotations

import csv
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from dpcdsl._files import load_json
from dpcdsl.compiler.graph import render, to_svg
from dpcdsl.errors import DpcError, Span
from dpcdsl.lang.space import Space
from dpcdsl.search.objectives import OBJECTIVES, describe, of_study, score
from dpcdsl.search.summary import (
    STATES,
    TOP_SHARE,
    ParetoSet,
    SearchClock,
    Summary,
    choice_shares,
    curve,
    failures,
    pareto,
    pareto_set,
    reason_of,
    state_of,
    summarise,
)
from dpcdsl.search.summary import ranked as _ranked

#: the best distinct cells written to ``best/`` and carried as text in the report
BEST_FILES = 50
#: the top cells drawn as graphs in the report, and the trials with learning curves
GRAPHS = 5
CURVES = 10
#: below this many re-ranked cells a rank correlation says little
MIN_RANKS = 10

COLUMNS = ("rank", "trial", "state", "miou", "params", "madds", "latency_ms", "wall_s",
           "search_h", "hash", "same_as", "duplicate_of", "reason", "cell_file", "pareto")
#: the most cells of a Pareto set written to ``pareto/`` and drawn
PARETO_FILES = 100

__all__ = ["COLUMNS", "pareto", "ranked", "rebuild", "report_html", "write_outputs"]


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The study's finished trials with a score, best first."""
    return _ranked(study.get_trials(deepcopy=False))


def write_outputs(study: optuna.Study, run_dir: Path) -> None:
    """best.dpc, best.svg, best/, leaderboard.csv and report.html in ``run_dir``."""
    summary = summarise(study.get_trials(deepcopy=False))
    rows = summary.rows
    files = _best_files(rows, run_dir)
    front = pareto_set(study, rows)
    on_front = _pareto_files(front, run_dir)
    _write_csv(summary, files, run_dir / "leaderboard.csv", on_front)
    if rows:
        best = rows[0]
        cell = Space.from_text(best.user_attrs["cell"]).concrete()
        header = (f"# The best cell of {len(rows)} finished trials: mIOU {score(best):.2f} "
                  f"(trial {best.number}, {study.user_attrs.get('strategy', '?')} search)\n")
        (run_dir / "best.dpc").write_text(header + best.user_attrs["cell"])
        render(cell, run_dir / "best.svg")
    else:  # no finished trial: no best cell, and none left from an earlier state
        for name in ("best.dpc", "best.svg"):
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "report.html").write_text(report_html(study, rows, run_dir, summary, front))


def _distinct(rows: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in rows if "duplicate_of" not in t.user_attrs]


def _best_files(rows: list[FrozenTrial], run_dir: Path) -> dict[int, str]:
    """The text of the best distinct cells, one file each in ``best/`` (stale ones
    removed); returns trial number -> path relative to the run folder."""
    folder = run_dir / "best"
    folder.mkdir(exist_ok=True)
    out = {}
    for rank, t in enumerate(_distinct(rows)[:BEST_FILES], 1):
        name = f"best/trial-{t.number}.dpc"
        (run_dir / name).write_text(f"# rank {rank} of the distinct finished cells: mIOU "
                                    f"{score(t):.2f} (trial {t.number})\n" + t.user_attrs["cell"])
        out[t.number] = name
    for old in folder.glob("trial-*.dpc"):
        if f"best/{old.name}" not in out.values():
            old.unlink()
    return out


def value_text(name: str, value: float) -> str:
    """One objective's value as the report shows it: ``61.20``, ``1.31B``, ``4.2 ms``."""
    unit = OBJECTIVES[name].unit
    if name == "miou":
        return f"{value:.2f}"
    if unit:
        return f"{value:.4g}{unit}"
    return f"{value / 1e9:.3g}B" if value >= 1e8 else f"{value / 1e6:.3g}M"


def values_text(t: FrozenTrial, names: tuple[str, ...]) -> str:
    """``mIOU 61.20, multiply-adds 1.31B``: a trial's values, as a sentence gives them."""
    return ", ".join(f"{OBJECTIVES[n].label} {value_text(n, v)}"
                     for n, v in zip(names, t.values, strict=True))


def _pareto_files(front: ParetoSet | None, run_dir: Path) -> set[int]:
    """A multi-objective search's Pareto set in ``pareto/``: each cell's text, with its
    values, and its drawing (drawn again only when its text changed); stale files are
    removed. Returns the trials on the front."""
    if front is None:
        return set()
    folder = run_dir / "pareto"
    folder.mkdir(exist_ok=True)
    kept: set[str] = set()
    for t in front.trials[:PARETO_FILES]:
        text = (f"# on the Pareto front of {describe(front.objectives)}: "
                f"{values_text(t, front.objectives)} (trial {t.number})\n" + t.user_attrs["cell"])
        dpc, svg = folder / f"trial-{t.number}.dpc", folder / f"trial-{t.number}.svg"
        if not (svg.is_file() and dpc.is_file() and dpc.read_text() == text):
            render(Space.from_text(t.user_attrs["cell"]).concrete(), svg)
            dpc.write_text(text)
        kept.update((dpc.name, svg.name))
    for old in folder.glob("trial-*"):
        if old.name not in kept:
            old.unlink()
    return {t.number for t in front.trials}


def _write_csv(summary: Summary, files: dict[int, str], path: Path,
               on_front: set[int] | None = None) -> None:
    clock, rows = summary.clock, summary.board
    classes = max((len(t.user_attrs.get("per_class_iou") or []) for t in rows), default=0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, *(f"iou_{c}" for c in range(classes))])
        for rank, t in enumerate(rows, 1):
            a, done = t.user_attrs, state_of(t) in ("complete", "duplicate")
            iou = list(a.get("per_class_iou") or [])
            iou += [None] * (classes - len(iou))  # every row as wide as the header
            w.writerow([rank if done else "", t.number, state_of(t),
                        f"{score(t):.3f}" if done and score(t) is not None else "",
                        a.get("params", ""), a.get("madds", ""),
                        "" if a.get("latency_ms") is None else f"{a['latency_ms']:.4g}",
                        f"{a.get('wall_s') or 0:.2f}",
                        f"{clock.at(t.datetime_complete) / 3600:.4f}", a.get("hash", ""),
                        a.get("same_as", ""), a.get("duplicate_of", ""),
                        "" if done else reason_of(t), files.get(t.number, ""),
                        "" if not on_front else int(t.number in on_front),
                        *("" if v is None else f"{v:.2f}" for v in iou)])


# ------------------------------------------------------------------ the page
def _asset(name: str) -> str:
    return resources.files("dpcdsl.search").joinpath(name).read_text(encoding="utf-8")


def _link(number: int) -> str:
    return f"<a class='trial' href='#leaderboard' data-trial='{number}'>#{number}</a>"


def _header(study: optuna.Study, trials: list[FrozenTrial], rows: list[FrozenTrial],
            clock: SearchClock, pareto_front: ParetoSet | None = None) -> list[str]:
    e, attrs = html.escape, study.user_attrs
    multi = pareto_front is not None
    states = [state_of(t) for t in trials if t.state.is_finished()]
    fails = failures(trials)
    not_run = fails.over_budget + fails.over_latency + fails.unbuildable + fails.interrupted
    budget = (f" {fails.over_budget} drawn over the multiply-add budget of "
              f"{int(attrs['identity']['max_madds']) / 1e9:.3g}B, not trained."
              if fails.over_budget and "max_madds" in attrs.get("identity", {}) else "")
    budget += (f" {fails.over_latency} drawn slower than the latency budget of "
               f"{float(attrs['identity']['max_latency']):g} ms on "
               f"{e(str(attrs['identity'].get('latency')))}, not trained."
               if fails.over_latency and "max_latency" in attrs.get("identity", {}) else "")
    budget += (f" {fails.unbuildable} drawn that cannot be built at the task's feature "
               "sizes, not trained." if fails.unbuildable else "")
    rate = len(rows) / (clock.total / 3600) if clock.total > 0 else 0.0
    best = (f" Best: mIOU <b>{score(rows[0]):.2f}</b> ({_link(rows[0].number)})."
            if rows else " <b>No trial finished.</b>")
    base = _baseline(study)
    if base is not None:
        best += (f" Baseline: {e(str(base.get('name', '?')))} reaches mIOU "
                 f"<b>{base['miou']:.2f}</b> on the same proxy task (the dashed line).")
    if pareto_front is not None:
        best += (f" Objectives: {e(describe(pareto_front.objectives))}; "
                 f"<a href='#pareto-set'>{len(pareto_front.trials)} cells on the Pareto front"
                 f"</a>, hypervolume <b>{pareto_front.hypervolume:.4f}</b>.")
    return [
        f"<h1>Search: {e(str(attrs.get('cell', '')))}</h1>",
        f"<p>Space <code>{e(str(attrs.get('space_file', '')))}</code>, task "
        f"<code>{e(str(attrs.get('task_file', '')))}</code>, strategy "
        f"<b>{e(str(attrs.get('strategy', '')))}</b>. {len(rows)} finished trials "
        f"({states.count('duplicate')} of them duplicates, trained once), "
        f"{states.count('failed') - not_run}"
        " failed, "
        f"{states.count('pruned')} pruned.{budget} Search time {clock.total / 3600:.2f} h "
        f"(idle time between runs left out), {rate:.0f} finished trials an hour.{best}</p>",
        "<nav><a href='#settings'>settings</a> · <a href='#progress'>progress</a> · "
        "<a href='#pareto'>Pareto fronts</a> · "
        + ("<a href='#pareto-set'>Pareto set</a> · " if multi else "") +
        "<a href='#curves'>learning curves</a> · <a href='#leaderboard'>leaderboard</a> · "
        "<a href='#choices'>choices</a> · <a href='#importance'>importance</a> · "
        "<a href='#cells'>top cells</a> · <a href='#failures'>failures</a></nav>",
    ]


#: the costs whose fronts against mIOU the report plots, by the objective that each is
FRONTS = ("madds", "params", "latency")


def _fronts(rows: list[FrozenTrial]) -> tuple[dict[str, list[int]], list[str]]:
    """The front of mIOU against each cost the trials recorded (latency only where
    measured), by the cost's attribute."""
    out, parts = {}, []
    for name in FRONTS:
        key, what = OBJECTIVES[name].attr, OBJECTIVES[name].label
        points = [(float(t.user_attrs[key]), float(score(t) or 0), t.number)
                  for t in _distinct(rows) if t.user_attrs.get(key) is not None]
        if name == "latency" and not points:
            continue
        front = pareto(points)
        out[key] = [n for _, _, n in front]
        parts.append(f"<p>Front against {what}: " + (", ".join(
            f"{_link(n)} ({value:.1f} at {value_text(name, cost)})"
            for cost, value, n in front) or "none") + "</p>")
    return out, parts


def _pareto_section(front: ParetoSet | None) -> list[str]:
    """A multi-objective search's Pareto set: its cells with their values, and its
    hypervolume against finished trials."""
    if front is None:
        return []
    e, names = html.escape, front.objectives
    ref = ", ".join(f"{OBJECTIVES[n].label} {value_text(n, v)}"
                    for n, v in zip(names, front.reference))
    out = [f"<h2 id='pareto-set'>Pareto set</h2><p>The search optimised "
           f"{e(describe(names))}: {len(front.trials)} distinct cells are on its Pareto "
           "front (no other finished cell is as good on every objective and better on one; "
           "their text and drawings are in <code>pareto/</code>). Hypervolume "
           f"<b>{front.hypervolume:.4f}</b>: the share of the box from the ideal (mIOU 100 at "
           f"no cost) to the reference point ({e(ref)}: 1.1 times the costliest finished "
           "cell) that the finished cells dominate; the plot shows it as the search went."
           "</p>", "<div class='plots'><canvas id='plot-hv'></canvas></div>",
           "<table class='compact'><tr><th>trial</th>" + "".join(
               f"<th>{e(OBJECTIVES[n].label)}</th>" for n in names) + "</tr>"]
    for t in front.trials:
        out.append(f"<tr><td>{_link(t.number)}</td>" + "".join(
            f"<td>{e(value_text(n, v))}</td>" for n, v in zip(names, t.values)) + "</tr>")
    out.append("</table>")
    return out


def _choices(rows: list[FrozenTrial]) -> list[str]:
    k, shares = choice_shares(rows)
    if not shares:
        return ["<p>No finished trial yet.</p>"]
    e = html.escape
    out = [f"<p>How often each option is taken among the best {k} distinct finished trials "
           f"(the top {TOP_SHARE:.0%}) against all of them; options that the best trials "
           "take more often come first.</p><table class='compact'><tr><th>choice</th>"
           "<th>option</th><th>top</th><th>all</th></tr>"]
    for s in shares:
        out.append(f"<tr><td>{e(s.group)}</td><td>{e(s.option)}</td><td>{s.top:.0f}%</td>"
                   f"<td>{s.all:.0f}%</td></tr>")
    out.append("</table>")
    return out


def _cells(rows: list[FrozenTrial]) -> list[str]:
    out = []
    for rank, t in enumerate(_distinct(rows)[:GRAPHS], 1):
        try:
            svg = to_svg(Space.from_text(t.user_attrs["cell"]).concrete())
            svg = svg[svg.index("<svg"):]
        except DpcError as err:
            svg = f"<p>{html.escape(err.render())}</p>"
        out.append(f"<h3 id='cell-{t.number}'>#{rank}: trial {t.number}, mIOU {score(t):.2f}"
                   f"</h3><details><summary>cell text</summary><pre>"
                   f"{html.escape(t.user_attrs['cell'])}</pre></details>{svg}")
    return out or ["<p>No finished trial yet.</p>"]


def _failures(trials: list[FrozenTrial]) -> list[str]:
    fails, e = failures(trials), html.escape
    if not fails.groups:
        return ["<p>None.</p>"]
    cells = {t.number: t.user_attrs.get("cell") for t in trials}
    out = ["<table><tr><th>trials</th><th>reason</th><th>e.g.</th><th>its cell</th></tr>"]
    for reason, n, numbers in fails.groups:
        shown = ", ".join(_link(k) for k in numbers[:8]) + (" ..." if n > 8 else "")
        text = cells.get(numbers[0])
        cell = f"<details><summary>trial {numbers[0]}</summary><pre>{e(text)}</pre></details>" \
            if text else ""
        out.append(f"<tr><td>{n}</td><td>{e(reason)}</td><td>{shown}</td><td>{cell}</td></tr>")
    out.append("</table>")
    return out


def _settings(study: optuna.Study, run_dir: Path | None) -> list[str]:
    """What the search ran: its space, task and search settings, from the study and the
    task the run folder keeps."""
    e, attrs = html.escape, study.user_attrs
    task: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "task.json").is_file():
        try:
            loaded = load_json(run_dir / "task.json", "task record")
            task = loaded if isinstance(loaded, dict) else {}
        except DpcError:
            task = {}
    data, backbone, train = (task.get(k) or {} for k in ("dataset", "backbone", "train"))
    names = attrs.get("class_names") or []
    search = attrs.get("settings") or {}
    identity = attrs.get("identity") or {}

    def settings(group: str) -> str:
        given = search.get(group) or {}
        return ", ".join(f"{k} = {v}" for k, v in given.items()) or "defaults"

    rows = [
        ("space", f"cell {attrs.get('cell', '?')} of {attrs.get('space_file', '?')}"),
        ("dataset", f"{data.get('kind', '?')}"
                    + (f" at {data['root']}" if data.get("root") else "")
                    + (f", {len(names)} classes: {', '.join(names)}" if names else
                       f", {data.get('num_classes', '?')} classes")),
        ("backbone", f"{backbone.get('name', '?')} at output stride "
                     f"{backbone.get('output_stride', '?')}"
                     + (", pretrained" if backbone.get("pretrained") else "")),
        ("proxy training", f"{train.get('steps', '?')} steps, batch {train.get('batch', '?')}"
                           f", crop {train.get('crop', '?')}, lr {train.get('lr', '?')}, "
                           f"evaluated every {train.get('eval_every', '?')} steps, on "
                           f"{task.get('device', '?')} with the {identity.get('backend', '?')}"
                           " backend"),
        ("strategy", f"{attrs.get('strategy', '?')} ({settings('strategy')}), seed "
                     f"{identity.get('seed', '?')}"),
        ("pruner", f"{identity.get('prune', 'none')} ({settings('pruner')})"),
        ("budget", f"{search.get('trials', '?')} trials"
                   + (f", at most {int(identity['max_madds']) / 1e9:.3g}B multiply-adds"
                      if identity.get("max_madds") else "")
                   + (f", at most {float(identity['max_latency']):g} ms"
                      if identity.get("max_latency") else "")),
        ("scored by", "the weights each candidate inherits from a "
                      f"{identity['evaluator']}, BatchNorm recalibrated (not trained)"
                      if identity.get("evaluator") else "training each on the proxy task"),
        ("objectives", describe(of_study(study))
                       + (f" (latency on {identity['latency']})" if identity.get("latency")
                          else "")),
    ]
    return ["<table class='settings'>"] + [
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows] + ["</table>"]


#: the trials fANOVA's importances are computed from (the most recent finished ones)
IMPORTANCE_TRIALS = 500


def _importance(study: optuna.Study, rows: list[FrozenTrial]) -> list[str]:
    """Optuna's fANOVA importance of each choice that every finished trial made: how
    much of the mIOU's variance it explains."""
    done = sorted(_distinct(rows), key=lambda t: t.number)[-IMPORTANCE_TRIALS:]
    if len(done) < 4:
        return [f"<p>Too few distinct finished trials ({len(done)}) to weigh the choices; "
                "fANOVA needs at least 4.</p>"]
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line for the copy
    try:
        copy = optuna.create_study(directions=study.directions)
        copy.add_trials(done)
        weights = get_param_importances(copy, evaluator=FanovaImportanceEvaluator(seed=0),
                                        target=lambda t: float(t.values[0]))  # mIOU
    except (RuntimeError, ValueError, ImportError) as err:
        return [f"<p>No importance: {html.escape(str(err))}</p>"]
    finally:
        optuna.logging.set_verbosity(level)
    if not weights:
        return ["<p>No choice is made by every finished trial, so none can be weighed.</p>"]
    out = [f"<p>fANOVA importance (Optuna's evaluator) of the choices every one of the last "
           f"{len(done)} distinct finished trials made: the share of the mIOU's variance each "
           "explains.</p><table class='compact'><tr><th>choice</th><th>importance</th></tr>"]
    out += [f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in weights.items()]
    out.append("</table>")
    return out


def _baseline(study: optuna.Study) -> dict[str, Any] | None:
    base = study.user_attrs.get("baseline")
    return base if isinstance(base, dict) and isinstance(base.get("miou"), int | float) \
        else None


def _pruned(trials: list[FrozenTrial]) -> list[str]:
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    if not pruned:
        return []
    out = ["<h3>Pruned trials</h3><table class='compact'><tr><th>trial</th><th>stopped at "
           "step</th><th>its mIOU</th><th>train s</th><th>MAdds</th></tr>"]
    for t in pruned[:200]:
        step = max(t.intermediate_values, default=None)
        value = t.intermediate_values.get(step) if step is not None else None
        madds = t.user_attrs.get("madds")
        out.append(f"<tr><td>{_link(t.number)}</td><td>{step if step is not None else ''}</td>"
                   f"<td>{'' if value is None else f'{value:.2f}'}</td>"
                   f"<td>{t.user_attrs.get('wall_s') or 0:.1f}</td>"
                   f"<td>{'' if madds is None else f'{int(madds) / 1e9:.3g}B'}</td></tr>")
    if len(pruned) > 200:
        out.append(f"<tr><td colspan='5'>and {len(pruned) - 200} more</td></tr>")
    out.append("</table>")
    return out


def _rerank_section(run_dir: Path | None) -> list[str]:
    path = None if run_dir is None else run_dir / "rerank.json"
    if path is None or not path.exists():
        return []
    data = load_json(path, "re-ranking record")
    if not isinstance(data, dict) or not {"end_to_end", "rows", "spearman"} <= set(data):
        raise DpcError.at(Span(file=str(path)), "the re-ranking record is damaged: it holds "
                          "no re-ranking", hint=f"remove {path}, or run dpcc rerank again",
                          code="DPC802")
    how = "end to end" if data["end_to_end"] else f"on the proxy task for {data['steps']} steps"
    k = len(data["rows"])
    warn = (f" <b>Warning:</b> a rank correlation over K = {k} cells says little; re-rank "
            f"at least {MIN_RANKS} (dpcc rerank --top {MIN_RANKS})." if k < MIN_RANKS else "")
    front = data.get("pareto")
    which = f"The top {k} cells" if not front else (
        f"{k} cells of the Pareto front of {k if k == front['size'] else front['size']}")
    stays = "" if not front else (
        f" {sum(bool(r.get('front')) for r in data['rows'])} of them stay on the front of "
        f"{html.escape(describe(front['objectives']))} with their re-ranked mIOU.")
    scored = "supernet" if data.get("scored_by") == "supernet" else "proxy"
    out = [f"<h2 id='rerank'>Re-ranking</h2><p>{which} trained {how}. "
           f"Spearman rank correlation between {scored} and re-ranked mIOU over K = {k}: "
           f"<b>{data['spearman']:.3f}</b>.{stays}{warn}</p><table><tr><th>trial</th>"
           f"<th>{scored} mIOU</th><th>re-ranked mIOU</th><th>new rank</th>"
           + ("<th>still on the front</th>" if front else "") + "</tr>"]
    order = sorted(data["rows"], key=lambda r: -r["rerank_miou"])
    for r in data["rows"]:
        kept = f"<td>{'yes' if r.get('front') else 'no'}</td>" if front else ""
        out.append(f"<tr><td>{_link(r['trial'])}</td><td>{r['proxy_miou']:.2f}</td>"
                   f"<td>{r['rerank_miou']:.2f}</td><td>{order.index(r) + 1}</td>{kept}</tr>")
    out.append("</table>")
    return out


def _data(summary: Summary, front: dict[str, list[int]], names: list[str],
          baseline: dict[str, Any] | None = None, pareto_front: ParetoSet | None = None
          ) -> str:
    rows, board, cols = summary.rows, summary.board, summary.cols
    classes = max((len(v) for v in cols["iou"]), default=0)
    data: dict[str, Any] = {
        "states": STATES, "cols": cols, "front": front,
        "classes": [f"IoU {names[c] if len(names) == classes else c}"
                    for c in range(classes)],
        "cells": {t.number: t.user_attrs["cell"] for t in _distinct(rows)[:BEST_FILES]},
        "reasons": {t.number: reason_of(t) for t in board
                    if state_of(t) in ("failed", "pruned")},
        "curves": [{"trial": t.number, "evals": curve(t.user_attrs.get("evals"))}
                   for t in _distinct(rows)[:CURVES]],
        "baseline": baseline,
        # a multi-objective search's hypervolume as it went: [finished trials, hv]
        "hv": None if pareto_front is None else pareto_front.curve,
    }
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")  # never ends the script block early


def report_html(study: optuna.Study, rows: list[FrozenTrial],
                run_dir: Path | None = None, summary: Summary | None = None,
                pareto_front: ParetoSet | None = None) -> str:
    summary = summary or summarise(study.get_trials(deepcopy=False))
    trials, clock = summary.trials, summary.clock
    pareto_front = pareto_front or pareto_set(study, rows)
    front, front_text = _fronts(rows)
    data = _data(summary, front, list(study.user_attrs.get("class_names") or []),
                 _baseline(study), pareto_front)
    latency = "<canvas id='plot-latency'></canvas>" if "latency_ms" in front else ""
    plots = "<div class='plots'>{}</div>".format
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dpcdsl search: {html.escape(str(study.user_attrs.get('cell', '')))}</title>",
        f"<style>{_asset('report_page.css')}</style></head><body>",
        *_header(study, trials, rows, clock, pareto_front),
        "<h2 id='settings'>Settings</h2>", *_settings(study, run_dir),
        "<h2 id='progress'>Progress</h2>",
        plots("<canvas id='plot-trials'></canvas><canvas id='plot-time'></canvas>"),
        "<h2 id='pareto'>Pareto fronts</h2>",
        plots(f"<canvas id='plot-madds'></canvas><canvas id='plot-params'></canvas>{latency}"),
        *front_text, *_pareto_section(pareto_front),
        "<h2 id='curves'>Learning curves of the top trials</h2>",
        plots("<canvas id='plot-curves'></canvas>"), "<p id='curves-legend'></p>",
        "<h2 id='leaderboard'>Leaderboard</h2>",
        "<p>Click a column to sort by it (again: the other way), a row for its cell.</p>",
        "<div class='pager'><button id='board-prev'>previous</button> <span id='board-page'>"
        "</span> <button id='board-next'>next</button></div>",
        "<table id='board' class='compact'><thead><tr></tr></thead><tbody></tbody></table>",
        "<noscript><p>The leaderboard and the plots need JavaScript; leaderboard.csv holds "
        "the same rows.</p></noscript>",
        "<h2 id='choices'>Choices of the best trials</h2>", *_choices(rows),
        "<h2 id='importance'>Importance of the choices</h2>", *_importance(study, rows),
        "<h2 id='cells'>The top cells</h2>", *_cells(rows),
        *_rerank_section(run_dir),
        "<h2 id='failures'>Failed and pruned trials</h2>", *_failures(trials),
        *_pruned(trials),
        "<div id='tip'></div>",
        f"<script type='application/json' id='data'>{data}</script>",
        f"<script>{_asset('report_page.js')}</script>",
        "</body></html>",
    ])


def rebuild(run_dir: Path, storage: str | None = None) -> Path:
    """``dpcc report``: write the outputs again from the study in ``run_dir``."""
    from dpcdsl.search.study import STUDY, find_storage, open_storage

    storage = find_storage(run_dir, storage)
    study = optuna.load_study(study_name=STUDY, storage=open_storage(run_dir, storage))
    write_outputs(study, run_dir)
    return run_dir / "report.html"
