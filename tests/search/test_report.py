"""The search report: what it works out from a study, the files it writes, and the page
itself in a real headless browser (Debian's Chromium, driven through chromedriver)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from dpcdsl.search.report import write_outputs
from dpcdsl.search.summary import (
    SearchClock,
    choice_group,
    choice_shares,
    failures,
    leaderboard,
    pareto,
    ranked,
)
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_report import CLASSES, synthetic_study  # noqa: E402

T0 = dt.datetime(2026, 1, 1, 9)


def trial(number: int, start_s: float, end_s: float, value: float | None = None,
          state: TrialState = TrialState.COMPLETE, **attrs) -> optuna.trial.FrozenTrial:
    t = create_trial(state=state, value=value, user_attrs=attrs)
    t.number = number
    t.datetime_start = T0 + dt.timedelta(seconds=start_s)
    t.datetime_complete = T0 + dt.timedelta(seconds=end_s)
    return t


def test_search_time_leaves_out_idle_gaps_and_counts_overlaps_once():
    trials = [trial(0, 0, 100, 1.0), trial(1, 50, 150, 2.0),  # two workers at once
              trial(2, 10_000, 10_060, 3.0)]  # a resume hours later
    clock = SearchClock(trials)
    assert clock.total == pytest.approx(210)
    assert clock.at(trials[0].datetime_complete) == pytest.approx(100)
    assert clock.at(trials[1].datetime_complete) == pytest.approx(150)
    assert clock.at(trials[2].datetime_complete) == pytest.approx(210)
    assert clock.at(T0 + dt.timedelta(seconds=5000)) == pytest.approx(150)  # idle


def test_pareto_front_keeps_the_points_nothing_beats():
    points = [(1.0, 50.0, 0), (2.0, 60.0, 1), (2.0, 55.0, 2), (3.0, 58.0, 3), (4.0, 70.0, 4)]
    assert [n for _, _, n in pareto(points)] == [0, 1, 4]


def test_choice_shares_compare_the_top_trials_with_all():
    assert choice_group("b3.rate.h") == "b*.rate.h" and choice_group("b12.op") == "b*.op"
    rows = []
    for n in range(20):
        op = "sepconv" if n < 2 else ("conv" if n % 2 else "pool")
        t = create_trial(state=TrialState.COMPLETE, value=100.0 - n,
                         params={"b0.op": op, "b1.op": op},
                         distributions={p: CategoricalDistribution(["conv", "sepconv", "pool"])
                                        for p in ("b0.op", "b1.op")})
        t.number = n
        rows.append(t)
    k, shares = choice_shares(ranked(rows))
    assert k == 2
    first = shares[0]
    assert (first.group, first.option, first.top, first.all) == ("b*.op", "sepconv", 100.0, 10.0)


def test_failures_are_grouped_by_reason_and_interrupted_ones_apart():
    trials = [trial(0, 0, 1, state=TrialState.FAIL, failure="diverged: loss NaN"),
              trial(1, 1, 2, state=TrialState.FAIL, failure="diverged: loss NaN"),
              trial(2, 2, 3, state=TrialState.PRUNED, pruned="pruned at step 4 (mIOU 3.0)"),
              trial(3, 3, 4, state=TrialState.FAIL),  # interrupted, run again
              trial(4, 4, 5, state=TrialState.FAIL, failure="over budget", over_budget=10)]
    f = failures(trials)
    assert f.groups[0] == ("diverged: loss NaN", 2, [0, 1])
    assert f.groups[1][0].startswith("pruned at step 4")
    assert (f.interrupted, f.over_budget) == (1, 1)


def test_leaderboard_ranks_finished_trials_then_the_rest():
    trials = [trial(0, 0, 1, 50.0, per_class_iou=[40.0, None]),
              trial(1, 1, 2, state=TrialState.FAIL, failure="error: x"),
              trial(2, 2, 3, 70.0, per_class_iou=[60.0, float("nan")]),
              trial(3, 3, 4, 70.0, duplicate_of=2)]
    rows, cols = leaderboard(trials, SearchClock(trials))
    assert [t.number for t in rows] == [2, 3, 0, 1]
    assert cols["state"] == [0, 1, 0, 2]  # complete, duplicate, complete, failed
    assert cols["miou"][3] is None and cols["dup"][1] == 2
    assert cols["iou"][0] == [60.0, None]  # NaN has no place in JSON


# the tests share a large study's outputs and one browser: one xdist worker runs them
pytestmark = pytest.mark.xdist_group("report")


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("report")
    write_outputs(synthetic_study(400, seed=1), run)
    return run


def test_the_outputs_of_a_large_search(report_run):
    with open(report_run / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 400  # every trial that used budget, one line each
    assert {"state", "reason", "cell_file", "iou_0", f"iou_{CLASSES - 1}"} <= set(rows[0])
    states = [r["state"] for r in rows]
    assert {"complete", "duplicate", "failed", "pruned"} <= set(states)
    done = [r for r in rows if r["state"] in ("complete", "duplicate")]
    assert [float(r["miou"]) for r in done] == sorted((float(r["miou"]) for r in done),
                                                      reverse=True)
    assert all("\n" not in v for r in rows for v in r.values())  # cells live in best/
    files = [r["cell_file"] for r in rows if r["cell_file"]]
    assert len(files) == 50 and all((report_run / f).is_file() for f in files)
    assert sorted(p.name for p in (report_run / "best").iterdir()) == \
        sorted(Path(f).name for f in files)
    failed = [r for r in rows if r["state"] == "failed"]
    assert failed and all(r["reason"] and not r["rank"] for r in failed)
    page = (report_run / "report.html").read_text()
    data = json.loads(re.search(r"<script type='application/json' id='data'>(.*?)</script>",
                                page, re.S).group(1))
    assert len(data["cols"]["trial"]) == 400 and len(data["classes"]) == CLASSES
    assert data["front"]["madds"] and data["front"]["params"] and len(data["curves"]) == 10
    for h in ("Settings", "Progress", "Pareto fronts", "Leaderboard",
              "Choices of the best trials", "Importance of the choices", "The top cells",
              "Failed and pruned trials"):
        assert f">{h}</h2>" in page
    # the dataset's class names head the per-class columns, and the settings are shown
    assert data["classes"][:2] == ["IoU class 0", "IoU class 1"]
    assert "<th>strategy</th><td>ers (warmup = 10), seed" in page
    assert "<th>budget</th><td>400 trials</td>" in page
    # fANOVA weighs the choices every trial made (the op of each branch)
    weights = re.findall(r"<tr><td>(b\d\.[a-z]+)</td><td>([\d.]+)</td></tr>", page)
    assert {name for name, _ in weights} >= {f"b{i}.op" for i in range(5)}
    assert abs(sum(float(w) for _, w in weights) - 1.0) < 0.01
    # the baseline, failed cells' text, and where pruned trials stopped
    assert "Baseline: aspp reaches mIOU <b>55.00</b>" in page and data["baseline"]["miou"] == 55
    assert re.search(r"<details><summary>trial \d+</summary><pre>cell dpc_paper", page)
    assert "<h3>Pruned trials</h3>" in page
    assert re.search(r"<td>100</td><td>31\.20</td><td>40\.0</td><td>[\d.]+B</td>", page)
    assert "diverged: the loss is NaN at step 120" in page and "b*.op" in page
    assert "search time" in page.lower() and "idle time between runs left out" in page


def test_a_rank_correlation_over_few_cells_carries_a_warning(report_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_run, run)
    rows = [{"trial": n, "proxy_miou": 60.0 - n, "rerank_miou": 50.0 + n} for n in range(3)]
    (run / "rerank.json").write_text(json.dumps({"end_to_end": True, "rows": rows,
                                                 "spearman": -1.0, "steps": 10}))
    write_outputs(synthetic_study(30, seed=2), run)
    page = (run / "report.html").read_text()
    assert "over K = 3: <b>-1.000</b>" in page and "Warning:</b> a rank correlation" in page


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="session")
def browser():
    assert CHROMIUM and CHROMEDRIVER, (
        "the report is tested in Debian's Chromium: apt-get install chromium chromium-driver "
        "(scripts/setup.sh does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def board_column(driver, title: str) -> list[str]:
    heads = [th.text.rstrip(" ▲▼") for th in driver.find_elements("css selector", "#board th")]
    i = heads.index(title)
    return [tr.find_elements("css selector", "td")[i].text
            for tr in driver.find_elements("css selector", "#board tr.row")]


@pytest.mark.slow
def test_the_page_loads_without_errors_draws_and_sorts(browser, report_run):
    browser.get((report_run / "report.html").as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # every plot has drawn something
    for canvas in ("plot-trials", "plot-time", "plot-madds", "plot-params", "plot-curves"):
        inked = browser.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;",
            canvas)
        assert inked > 500, canvas
    # the baseline's dashed line on both progress plots, in its own green
    for canvas in ("plot-trials", "plot-time"):
        green = browser.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4)"
            " if (d[i] < 80 && d[i + 1] > 100 && d[i + 2] < 110 && d[i + 3] > 200) n++;"
            "return n;", canvas)
        assert green > 100, canvas
    for section in ("settings", "progress", "pareto", "curves", "leaderboard", "choices",
                    "importance", "cells", "failures"):
        assert browser.find_element("id", section).is_displayed(), section
    assert len(browser.find_elements("css selector", "#board tr.row")) == 100  # one page
    ranks = board_column(browser, "rank")
    assert ranks[:3] == ["1", "2", "3"]
    # sort by mIOU: the header's first click is the best first, the second the other way
    def header(title):
        return next(th for th in browser.find_elements("css selector", "#board th")
                    if th.text.rstrip(" ▲▼") == title)

    header("mIOU").click()
    header("mIOU").click()
    assert header("mIOU").get_attribute("aria-sort") == "ascending"
    low = [float(v) for v in board_column(browser, "mIOU") if v]
    assert low == sorted(low) and low
    header("trial").click()
    assert board_column(browser, "trial")[:3] == ["0", "1", "2"]
    header("IoU class 3").click()
    iou = [float(v) for v in board_column(browser, "IoU class 3") if v]
    assert iou == sorted(iou, reverse=True) and iou
    # a row opens its cell; the next page turns
    browser.find_elements("css selector", "#board tr.row")[0].click()
    assert browser.find_elements("css selector", "#board tr.detail")
    browser.find_element("id", "board-next").click()
    assert browser.find_element("id", "board-page").text.startswith("rows 101-200 of 400")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def inked(driver, canvas: str) -> int:
    return driver.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;", canvas)


@pytest.fixture(scope="session")
def pareto_run(tmp_path_factory) -> Path:
    """The outputs of a multi-objective study of mIOU against latency."""
    run = tmp_path_factory.mktemp("pareto")
    write_outputs(synthetic_study(300, seed=3, objectives=("miou", "latency")), run)
    return run


@pytest.mark.slow
def test_a_multi_objective_report_shows_its_front_and_hypervolume(browser, pareto_run):
    from dpcdsl.search.objectives import dominates

    with open(pareto_run / "leaderboard.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "complete"]
    point = {int(r["trial"]): (-float(r["miou"]), float(r["latency_ms"])) for r in rows}
    front = {n for n, p in point.items() if not any(dominates(q, p) for q in point.values())}
    assert {int(r["trial"]) for r in rows if r["pareto"] == "1"} == front
    assert {f"trial-{n}.{ext}" for n in front for ext in ("dpc", "svg")} == \
        {p.name for p in (pareto_run / "pareto").iterdir()}
    browser.get((pareto_run / "report.html").as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    for canvas in ("plot-latency", "plot-hv"):
        assert inked(browser, canvas) > 500, canvas
    assert browser.find_element("id", "pareto-set").is_displayed()
    table = browser.find_element("css selector", "#pareto-set ~ table")
    assert len(table.find_elements("css selector", "tr")) == len(front) + 1
    # the leaderboard gains the latency column; a click on a front point opens its trial
    assert "latency ms" in [th.text.rstrip(" ▲▼")
                            for th in browser.find_elements("css selector", "#board th")]
    first = min(front)
    browser.find_element("css selector", f"#pareto-set ~ table a[data-trial='{first}']").click()
    opened = browser.find_elements("css selector", "#board tr.detail")
    assert opened and browser.find_element(
        "css selector", f"#board tr.row[data-trial='{first}']").is_displayed()
