"""Multi-objective searches, run for real: the study's values are mIOU and the costs
the trials measured, the run folder holds the Pareto set drawn, a resume keeps the
objectives, and ``dpcc rerank`` retrains the front. Bad objectives are refused before
anything is written."""

from __future__ import annotations

import csv
import json
import re

import optuna
import pytest
from optuna.trial import TrialState

from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.search.config import SearchConfig
from dpcdsl.search.driver import search
from dpcdsl.search.objectives import dominates
from tests.search.conftest import dpcc, trials_of


def brute_front(trials: list[optuna.trial.FrozenTrial], costs: str) -> set[int]:
    """The distinct finished trials that no other beats on mIOU and ``costs``, by the
    definition of dominance."""
    done = [t for t in trials if t.state == TrialState.COMPLETE
            and "duplicate_of" not in t.user_attrs]
    point = {t.number: (-t.user_attrs["miou"], float(t.user_attrs[costs])) for t in done}
    return {n for n in point if not any(dominates(q, point[n]) for q in point.values())}


@pytest.mark.slow
def test_a_pareto_search_on_a_pool_resumes_and_reranks_its_front(files, tmp_path):
    space, task = files()
    run = tmp_path / "run"
    common = ("--task", task, "--run-dir", run, "--objectives", "miou,madds", "--strategy",
              "evolution", "--setting", "population=3", "--executor", "pool", "--workers", 2)
    r = dpcc("search", space, *common, "--trials", 4)
    assert r.returncode == 0, r.stderr
    r = dpcc("search", space, *common, "--trials", 7, "--resume")
    assert r.returncode == 0, r.stderr
    assert "cells on the Pareto front of mIOU and multiply-adds" in r.stdout
    study = optuna.load_study(study_name="dpcdsl", storage=f"sqlite:///{run}/study.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = trials_of(run)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 7
    for t in done:  # the values are the trained mIOU and the cost model's multiply-adds
        assert t.values == [t.user_attrs["miou"], t.user_attrs["madds"]]
    front = brute_front(trials, "madds")
    files_on_front = {int(re.search(r"\d+", p.name).group()) for p in
                      (run / "pareto").glob("trial-*.dpc")}
    assert front and files_on_front == front
    for n in front:  # each a cell that parses, with its drawing
        text = (run / "pareto" / f"trial-{n}.dpc").read_text()
        assert text.startswith("# on the Pareto front of mIOU and multiply-adds: mIOU ")
        assert Space.from_text(text).is_concrete
        assert (run / "pareto" / f"trial-{n}.svg").read_text().lstrip().startswith("<")
    with open(run / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["trial"]) for r in rows if r["pareto"] == "1"} == front
    page = (run / "report.html").read_text()
    data = json.loads(re.search(r"id='data'>(.*?)</script>", page, re.S).group(1))
    hv = [v for _, v in data["hv"]]
    assert hv and hv == sorted(hv) and 0 < hv[-1] <= 1  # it never falls as trials come
    assert f"{len(front)} distinct cells are on its Pareto front" in page
    # a resume cannot change what the study optimises, and says what it has
    other = [a if a != "miou,madds" else "miou,params" for a in common]
    r = dpcc("search", space, *other, "--trials", 8, "--resume")
    assert r.returncode == 1 and "the study optimises miou,madds" in r.stderr, r.stderr
    assert len(trials_of(run)) == len(trials)
    # re-ranking retrains the whole front, and says which cells stay on it
    r = dpcc("rerank", run, "--steps", 4, "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.loads((run / "rerank.json").read_text())
    assert {row["trial"] for row in record["rows"]} == front
    assert record["pareto"] == {"objectives": ["miou", "madds"], "size": len(front)}
    assert any(row["front"] for row in record["rows"])
    assert "still on the front" in (run / "report.html").read_text()


@pytest.mark.slow
def test_nsga2_searches_mIOU_against_measured_latency(files, tmp_path):
    space, task = files()
    run = tmp_path / "run"
    study = search(SearchConfig(space, task, run_dir=run, trials=4, strategy="nsga2",
                                settings={"population": 2}, objectives="miou,latency",
                                latency="torch", executor="local", progress=False))
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4
    for t in done:  # the latency measured before training is the second value
        assert t.values == [t.user_attrs["miou"], t.user_attrs["latency_ms"]]
        assert t.user_attrs["latency_runtime"] == "torch"
    front = brute_front(study.trials, "latency_ms")
    assert {int(re.search(r"\d+", p.name).group()) for p in
            (run / "pareto").glob("trial-*.dpc")} == front
    page = (run / "report.html").read_text()
    assert "id='plot-latency'" in page and "Front against latency" in page


@pytest.mark.parametrize("options, message", [
    ({"objectives": ["miou", "flops"]}, "unknown objective 'flops'"),
    ({"objectives": ["madds"]}, "the objectives must include miou"),
    ({"objectives": ["miou", "latency"]}, "the latency objective needs a runtime"),
    ({"objectives": ["miou", "madds"], "prune": "median"}, "Optuna prunes no multi-objective"),
    ({"objectives": ["miou", "madds"], "strategy": "nsga2", "settings": {"population": 1}},
     "population = 1: expected an integer of at least 2"),
])
def test_bad_objectives_are_refused_before_anything_is_written(files, tmp_path, options,
                                                               message):
    space, task = files()
    run = tmp_path / "run"
    with pytest.raises(DpcError, match=message):
        search(SearchConfig(space, task, run_dir=run, progress=False, **options))
    assert not run.exists()
