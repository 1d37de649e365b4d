"""The interface every executor implements (:mod:`dpcdsl.search.executors` and the
fusing wrapper of :mod:`dpcdsl.search.fusion`), apart from both, so that neither has to
import the other for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from dpcdsl.search.messages import Job, Outcome
from dpcdsl.search.worker import Report


@runtime_checkable
class Executor(Protocol):
    """Where trials run, as the driver uses it: ``name`` and ``slots`` (how many trials
    it runs at once); ``submit`` starts a trial with a free slot, reporting each
    evaluation to ``report`` (which raises ``optuna.TrialPruned`` to stop it) and each
    step to ``on_step``; ``busy`` counts the trials submitted and not yet collected;
    ``collect`` waits until at least one has ended and gives their outcomes; ``close``
    stops what is left. Every executor here (and :class:`~dpcdsl.search.fusion.
    FusingExecutor`, which wraps one) implements it; an executor object of one's own
    passed to the search must too."""

    name: str
    slots: int

    @property
    def busy(self) -> int: ...

    def submit(self, number: int, job: Job, report: Report | None = None,
               on_step: Callable[[int], None] | None = None) -> None: ...

    def collect(self) -> list[tuple[int, Outcome]]: ...

    def close(self) -> None: ...
