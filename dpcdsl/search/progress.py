"""What a search shows while it runs (the modes of :mod:`dpcdsl.train.progress`): a bar with
trials finished, the best so far, an ETA and where each running trial is (its step and
latest mIOU) on a terminal; elsewhere one timestamped line per finished trial (its
mIOU or failure, the best so far, trials per hour and the ETA) and a heartbeat line
with the running trials when nothing was said for ``heartbeat`` seconds (a trial can
run for a long time without finishing)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from optuna.trial import FrozenTrial, TrialState

from dpcdsl.search.objectives import score
from dpcdsl.train.progress import MODES, Reporter, mode_for

__all__ = ["MODES", "SearchProgress", "mode_for"]


class SearchProgress(Reporter):
    unit = "trials"

    def __init__(self, total: int, show: bool | str, heartbeat: float = 30.0,
                 stream: TextIO = sys.stderr, log_file: Path | None = None) -> None:
        super().__init__(total, show, "search", heartbeat, stream, log_file)
        self.summary = self.base = "0 finished"
        self.finished = 0
        # trials a resumed study had finished before this run: not part of its rate
        self.before: int | None = None
        self.best = "no result yet"
        # running trials: number -> (step, steps, latest mIOU or None)
        self.running: dict[int, tuple[int, int, float | None]] = {}

    def within(self, number: int, steps: int) -> Callable[..., None]:
        """``moved(k, miou=None)`` after step ``k`` of trial ``number`` (of ``steps``),
        with the mIOU when it was just evaluated: per step for a trial run in this
        process, at each evaluation for one in a worker. The bar moves inside the
        trials, and the heartbeat and bar say where each running one is."""

        def moved(k: int, miou: float | None = None) -> None:
            last = self.running.get(number, (0, steps, None))[2]
            self.running[number] = (k, steps, last if miou is None else miou)
            self._show_running()

        return moved

    def _show_running(self) -> None:
        shown = ", ".join(f"trial {n} at step {k}/{steps}"
                          + (f" (mIOU {m:.1f})" if m is not None else "")
                          for n, (k, steps, m) in sorted(self.running.items())[:4])
        more = len(self.running) - 4
        if more > 0:
            shown += f" and {more} more"
        if self.mode == "bar":
            done = sum(k / steps for k, steps, _ in self.running.values())
            self.bar.update(self.task, completed=self.finished + done,
                            description=f"search: {self.best}, {shown}")
        elif self.mode == "log":
            self.summary = f"{self.base}; {shown}" if shown else self.base

    def update(self, finished: int, best_score: float | None, failed: int,
               fresh: list[FrozenTrial]) -> None:
        """``finished`` trials count against the budget, ``failed`` of them failed;
        ``fresh`` are those finished since the last update (one log line each)."""
        if self.mode == "none" and self.log_file is None:
            return
        best = self.best = f"best mIOU {best_score:.1f}" if best_score is not None \
            else "no result yet"
        self.finished = finished
        for t in fresh:
            self.running.pop(t.number, None)
        extra = f", {failed} failed" if failed else ""
        if self.mode == "bar":
            self.advance(finished, f"search: {best}{extra}")
        if self.before is None:  # the driver's first update comes before any trial runs
            self.before = finished
        hours = (time.monotonic() - self.start) / 3600
        rate = (finished - self.before) / hours if hours > 0 else 0.0
        left = (self.total - finished) / rate * 60 if rate else float("nan")
        eta = f", ETA {left:.0f} min" if rate and finished < self.total else ""
        self.summary = self.base = (f"{finished}/{self.total} finished, {best}{extra}, "
                                    f"{rate:.0f} trials/h{eta}")
        for t in fresh:
            value = score(t) if t.state == TrialState.COMPLETE else None
            how = f"mIOU {value:.1f}" if value is not None \
                else t.user_attrs.get("failure") or t.state.name.lower()
            self.line(f"trial {t.number} finished ({how}): {self.summary}")
        self._show_running()  # the heartbeat says where the running ones are
