"""The spaces beyond the DPC (examples/spaces/): each checks, counts exactly, samples
cells that re-parse, and searches end to end on the proxy task with a multi-level
feature cache; the mobile one under a multiply-add budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from dpcdsl.lang.analysis import cost
from dpcdsl.lang.checker import check_file
from dpcdsl.lang.space import Space
from dpcdsl.search.driver import SearchConfig, search
from dpcdsl.search.study import counted
from dpcdsl.train.data.cache import open_cache
from dpcdsl.train.data.task import task_from_text
from dpcdsl.train.proxy import fed, head_cell
from tests.conftest import EXAMPLES

SPACES = EXAMPLES / "spaces"


@pytest.fixture
def write_task(task_file):
    """The small task at a ``size`` crop, trained for 4 steps."""
    def make(size: int) -> Path:
        return task_file(dataset={"image_size": size},
                         train={"crop": size, "steps": 4, "eval_every": 4})
    return make


@pytest.mark.parametrize("name, count", [("decoders", 8 * (1 + 19 ** 3 * 6)),
                                         ("mobile_heads", 2 * 3 * (1 + 1 + 12 * 24))])
def test_the_space_checks_and_counts(name: str, count: int) -> None:
    assert not check_file(SPACES / f"{name}.dpc")
    space = Space.from_file(SPACES / f"{name}.dpc")
    assert space.count() == count
    for seed in range(5):
        cell, decisions = space.sample(seed)
        assert Space.from_text(cell.canonical_text()).concrete() == cell
        assert space.decode(decisions) == cell


def test_every_mobile_head_is_distinct() -> None:
    space = Space.from_file(SPACES / "mobile_heads.dpc")
    hashes = {cell.hash for cell in space.enumerate()}
    assert len(hashes) == space.count()


@pytest.mark.slow
def test_a_search_over_decoders_on_three_cached_levels(tmp_path: Path, write_task) -> None:
    """The space reads strides 16, 8 and 4, as its inputs say; no task setting."""
    task = write_task(64)
    study = search(SearchConfig(SPACES / "decoders.dpc", task, trials=3,
                                run_dir=tmp_path / "run", progress=False))
    done = [t for t in study.trials if counted(t)]
    assert len(done) == 3 and all(t.value is not None for t in done)
    cache = open_cache(fed(Space.from_file(SPACES / "decoders.dpc").cell_def,
                           task_from_text(task.read_text())))
    assert cache is not None and cache.strides == (16, 8, 4)


@pytest.mark.slow
def test_a_search_under_a_multiply_add_budget(tmp_path: Path, write_task) -> None:
    task_file = write_task(128)
    space = Space.from_file(SPACES / "mobile_heads.dpc")
    task = fed(space.cell_def, task_from_text(task_file.read_text()))
    sizes = {"low": (16, 16), "high": (8, 8)}  # the tiny backbone at a 128 crop
    costs = sorted(cost(head_cell(c, task), {"low": 32, "high": 64}, sizes).madds
                   for c in space.enumerate())
    budget = costs[len(costs) // 4]  # three draws in four are over it
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search",
                        str(SPACES / "mobile_heads.dpc"), "--task", str(task_file),
                        "--trials", "3", "--run-dir", str(tmp_path / "run"),
                        "--max-madds", str(budget)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    trials = optuna.load_study(study_name="dpcdsl",
                               storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    done = [t for t in trials if counted(t)]
    over = [t for t in trials if "over_budget" in t.user_attrs]
    assert len(done) == 3 and all(t.user_attrs["madds"] <= budget for t in done)
    assert over and all(int(t.user_attrs["over_budget"]) > budget for t in over)
    assert not any("miou" in t.user_attrs for t in over)  # never trained
    assert "drawn over the multiply-add budget" in (tmp_path / "run" / "report.html").read_text()
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", "search",
                        str(SPACES / "mobile_heads.dpc"), "--task", str(task_file),
                        "--run-dir", str(tmp_path / "none"), "--max-madds", "banana"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "expected a count such as 0.5B" in r.stderr


@pytest.mark.slow
def test_a_budget_no_candidate_meets_is_a_clear_error(tmp_path: Path, write_task,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dpcdsl.errors import DpcError
    from dpcdsl.search import driver

    monkeypatch.setattr(driver, "MAX_REJECTED", 5)
    task = write_task(128)
    with pytest.raises(DpcError, match="5 draws in a row cost more than the budget of "
                                       r"1e-09B multiply-adds \(the cheapest: "):
        search(SearchConfig(SPACES / "mobile_heads.dpc", task, trials=2, max_madds=1,
                            run_dir=tmp_path / "run", progress=False))
