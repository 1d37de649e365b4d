"""Where a search's state lives: the Optuna study's name, its storage, and which trials
count against the budget. The driver, the report and re-ranking all read it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

#: the study's name in its storage
STUDY = "dpcdsl"


def storage_url(run_dir: Path, storage: str | None) -> str:
    """The storage URL given, or SQLite in the run folder."""
    return storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial uses up budget: finished, pruned, or failed with a reason (an
    interrupted trial is run again instead)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "failure" in trial.user_attrs
