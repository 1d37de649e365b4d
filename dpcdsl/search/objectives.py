"""What a search optimises: mIOU alone, or mIOU with costs (``--objectives
miou,latency``), and the Pareto arithmetic every part of a search shares.

Each objective is declared once in :data:`OBJECTIVES`: the trial attribute that holds
it, whether higher or lower is better, and how the report names it. A study's values
are its objectives in order, mIOU first, so :func:`score` reads mIOU from any study, of
one objective or several.

The functions below work on points in minimisation form (:func:`minimised`: mIOU
negated), where a point dominates another when it is no worse in every coordinate and
better in one:

- :func:`fronts`: non-dominated sorting (NSGA-II's fronts), as many as asked for;
- :func:`crowding`: NSGA-II's crowding distance within a front (the ends are
  infinitely far, so a selection keeps the front's extremes);
- :func:`pareto_order`: the points by front, then by crowding distance;
- :func:`hypervolume`: the volume a set of points dominates below a reference point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dpcdsl.errors import DpcError, did_you_mean

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Objective:
    name: str  # as --objectives spells it
    attr: str  # the trial attribute that holds its value
    direction: Direction  # as Optuna spells it
    label: str  # as the report and the command line name it
    unit: str = ""  # of a value, where it has one


#: every objective a search can optimise; mIOU is always the first
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("miou", "miou", "maximize", "mIOU"),
    Objective("madds", "madds", "minimize", "multiply-adds"),
    Objective("params", "params", "minimize", "parameters"),
    Objective("latency", "latency_ms", "minimize", "latency", " ms"),
)}
#: the objective every search has, and the first value of every study
SCORE = "miou"


def check(names: Sequence[str], latency: str | None = None) -> tuple[str, ...]:
    """The objectives named, mIOU first: each known, none twice, mIOU among them, and
    latency only with a runtime to measure it on."""
    names = tuple(n.strip() for n in names)
    for name in names:
        if name not in OBJECTIVES:
            raise DpcError.at(None, f"unknown objective '{name}'.{did_you_mean(name, OBJECTIVES)}"
                              .rstrip("."), hint="objectives: " + ", ".join(OBJECTIVES) +
                              " (e.g. --objectives miou,latency)", code="DPC801")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DpcError.at(None, f"objective '{twice[0]}' is named twice", code="DPC801")
    if SCORE not in names:
        raise DpcError.at(None, "every search maximises mIOU: the objectives must include "
                          "miou", hint=f"--objectives miou,{','.join(names)}", code="DPC801")
    if "latency" in names and latency is None:
        raise DpcError.at(None, "the latency objective needs a runtime to time candidates on",
                          hint="add --latency onnxruntime (or torch, torch.compile, jax)",
                          code="DPC801")
    return (SCORE, *(n for n in names if n != SCORE))


def directions(names: Sequence[str]) -> list[Direction]:
    return [OBJECTIVES[n].direction for n in names]


def describe(names: Sequence[str]) -> str:
    """``mIOU and multiply-adds``, as a sentence names the objectives."""
    labels = [OBJECTIVES[n].label for n in names]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def score(trial: Any) -> float | None:
    """A finished trial's mIOU: its first value, in a study of any number of objectives
    (None where it has none)."""
    values = trial.values
    return float(values[0]) if values else None


def values_of(attrs: Mapping[str, Any], names: Sequence[str]) -> list[float]:
    """The values of ``names`` in a trial's attributes, in order; a missing one is an
    error that names it."""
    out = []
    for name in names:
        value = attrs.get(OBJECTIVES[name].attr)
        if value is None:
            raise ValueError(f"the trial has no {OBJECTIVES[name].attr} to optimise")
        out.append(float(value))
    return out


def minimised(values: Sequence[float], dirs: Sequence[str]) -> tuple[float, ...]:
    """``values`` with the maximised ones negated, so that lower is better in each."""
    return tuple(-v if d == "maximize" else v for v, d in zip(values, dirs, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def fronts(points: Sequence[Sequence[float]], k: int | None = None) -> list[list[int]]:
    """Non-dominated sorting: the indices of ``points`` by front, the first front the
    points nothing dominates; sorting stops once ``k`` points are placed. Each front is
    found in one pass over the remaining points in lexicographic order, where a point
    can only be dominated by one that comes before it."""
    left = sorted(range(len(points)), key=lambda i: (tuple(points[i]), i))
    out: list[list[int]] = []
    placed = 0
    while left and (k is None or placed < k):
        front: list[int] = []
        rest: list[int] = []
        if len(points[left[0]]) == 2:  # a sweep: in this order, y must fall (or repeat)
            for i in left:
                last = points[front[-1]] if front else None
                ok = last is None or points[i][1] < last[1] or tuple(points[i]) == tuple(last)
                (front if ok else rest).append(i)
        else:
            for i in left:
                (rest if any(dominates(points[j], points[i]) for j in front)
                 else front).append(i)
        out.append(sorted(front))
        placed += len(front)
        left = rest
    return out


def crowding(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each point of ``front``: the sum over objectives
    of the gap between its neighbours, as a share of the front's range; the ends of
    each objective are infinitely far."""
    out = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for m in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: (points[i][m], i))
        lo, hi = points[order[0]][m], points[order[-1]][m]
        out[order[0]] = out[order[-1]] = math.inf
        if hi == lo:
            continue
        for before, i, after in zip(order, order[1:], order[2:]):
            out[i] += (points[after][m] - points[before][m]) / (hi - lo)
    return out


def pareto_order(points: Sequence[Sequence[float]], k: int | None = None) -> list[int]:
    """The indices of ``points`` best first, as NSGA-II ranks them: by front, then by
    crowding distance (larger first), then by index; the first ``k`` (all: None)."""
    out: list[int] = []
    for front in fronts(points, k):
        far = crowding(points, front)
        out += sorted(front, key=lambda i: (-far[i], i))
    return out if k is None else out[:k]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (minimisation:
    the region between each point and the reference); points not better than the
    reference in every coordinate add nothing. Exact: a sweep in two dimensions,
    slicing along the first coordinate in more."""
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference))]
    if not inside:
        return 0.0
    front = [inside[i] for i in fronts(inside, None)[0]] if len(inside) > 1 else inside
    front = sorted(set(front))
    if len(reference) == 1:
        return reference[0] - front[0][0]
    if len(reference) == 2:  # ascending first coordinate: the second descends
        total, top = 0.0, reference[1]
        for x, y in front:
            if y < top:
                total += (reference[0] - x) * (top - y)
                top = y
        return total
    total = 0.0
    for i, p in enumerate(front):  # the slab between this point and the next
        upper = front[i + 1][0] if i + 1 < len(front) else reference[0]
        if upper > p[0]:
            total += (upper - p[0]) * hypervolume([q[1:] for q in front[:i + 1]],
                                                  reference[1:])
    return total


def normalised_hypervolume(values: Sequence[Sequence[float]], names: Sequence[str],
                           reference: Sequence[float]) -> float:
    """The hypervolume of trials' ``values`` (as the study holds them: mIOU first) as a
    share of the box from the ideal (mIOU 100, every cost 0) to ``reference`` (mIOU and
    each cost, as values too): 1 would be a cell of mIOU 100 at no cost."""
    dirs = directions(names)
    ideal = [100.0 if d == "maximize" else 0.0 for d in dirs]
    lo, ref = minimised(ideal, dirs), minimised(reference, dirs)
    box = math.prod(r - i for r, i in zip(ref, lo))
    if box <= 0:
        return 0.0
    return hypervolume([minimised(v, dirs) for v in values], ref) / box


def reference_of(values: Sequence[Sequence[float]], names: Sequence[str],
                 margin: float = 1.1) -> list[float]:
    """The reference point a report measures hypervolume against: mIOU 0, and each cost
    ``margin`` times the largest of ``values`` (so the costliest cells still count)."""
    out = []
    for m, name in enumerate(names):
        if OBJECTIVES[name].direction == "maximize":
            out.append(0.0)
        else:
            out.append(margin * max((v[m] for v in values), default=1.0) or 1.0)
    return out


def of_study(study: Any) -> tuple[str, ...]:
    """The objectives a study optimises (studies from before objectives: mIOU)."""
    return tuple(study.user_attrs.get("objectives") or (SCORE,))
