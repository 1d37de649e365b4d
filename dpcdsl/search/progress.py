"""A rich progress bar for a search: trials finished, the best so far, ETA."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial, TrialState


class SearchProgress:
    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show = total, show

    def __enter__(self) -> SearchProgress:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar: Any = Progress("[progress.description]{task.description}", BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     transient=False)
            self.bar.start()
            self.task = self.bar.add_task("search", total=self.total)
        return self

    def update(self, done: list[FrozenTrial]) -> None:
        if not self.show:
            return
        scores = [t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None]
        best = f"best mIOU {max(scores):.1f}" if scores else "no result yet"
        failed = sum(t.state == TrialState.FAIL for t in done)
        extra = f", {failed} failed" if failed else ""
        self.bar.update(self.task, completed=len(done), description=f"search: {best}{extra}")

    def __exit__(self, *exc: object) -> None:
        if self.show:
            self.bar.stop()
