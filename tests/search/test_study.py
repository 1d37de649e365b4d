"""Where a search's state lives: opening its storage from several processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from dpcdsl.search.study import open_storage


def _open(run_dirs: list[Path], barrier: Any, out: Any) -> None:
    for run_dir in run_dirs:
        barrier.wait()  # every process opens the new database at the same moment
        try:
            storage = open_storage(run_dir, None)
            out.put((run_dir.name, "ok", len(storage.get_all_studies())))
        except Exception as e:  # reported to the test, not lost in the child
            out.put((run_dir.name, "failed", repr(e)))


@pytest.mark.slow
def test_processes_that_open_a_new_database_at_once_all_get_it(tmp_path):
    """Opening a new database creates Optuna's tables; drivers started together (or a
    report read while a search starts) used to fail on each other's half-made schema."""
    context = multiprocessing.get_context("spawn")
    runs = [tmp_path / f"run{round_}" for round_ in range(6)]  # six new databases
    for run in runs:
        run.mkdir()
    barrier, out = context.Barrier(4), context.Queue()
    procs = [context.Process(target=_open, args=(runs, barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in range(4 * len(runs)))
    for p in procs:
        p.join(timeout=60)
    assert results == sorted((run.name, "ok", 0) for run in runs for _ in procs), results


def test_a_race_optuna_wraps_in_its_own_error_is_still_a_race() -> None:
    import optuna
    from sqlalchemy.exc import OperationalError

    from dpcdsl.search.study import _schema_race

    try:
        try:
            raise OperationalError("INSERT INTO version_info", {}, Exception("database is locked"))
        except OperationalError as inner:
            raise optuna.exceptions.StorageInternalError("An exception is raised during "
                                                         "the commit.") from inner
    except optuna.exceptions.StorageInternalError as e:
        assert _schema_race(e)
    assert not _schema_race(ValueError("no such table: trials"))
