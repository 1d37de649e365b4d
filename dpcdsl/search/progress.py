"""What a search shows while it runs (the modes of :mod:`dpcdsl.progress`): a bar with
trials finished, the best so far and an ETA on a terminal; elsewhere one timestamped
line per finished trial (its mIOU or failure, the best so far, trials per hour and the
ETA) and a heartbeat line when nothing was said for ``heartbeat`` seconds (a trial can
run for a long time without finishing)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from optuna.trial import FrozenTrial, TrialState

from dpcdsl.progress import MODES, Reporter, mode_for

__all__ = ["MODES", "SearchProgress", "mode_for"]


class SearchProgress(Reporter):
    unit = "trials"

    def __init__(self, total: int, show: bool | str, heartbeat: float = 30.0,
                 stream: TextIO = sys.stderr) -> None:
        super().__init__(total, show, "search", heartbeat, stream)
        self.summary = self.base = "0 finished"
        self.finished = 0
        self.best = "no result yet"

    def within(self, number: int, steps: int) -> Callable[[int], None]:
        """``moved(k)`` after step ``k`` of trial ``number`` (of ``steps``), run in this
        process: the bar moves inside the trial, and the heartbeat says where it is."""

        def moved(k: int) -> None:
            if self.mode == "bar":
                self.bar.update(self.task, completed=self.finished + k / steps,
                                description=f"search: {self.best}, trial {number} at "
                                            f"step {k}/{steps}")
            elif self.mode == "log":
                self.summary = f"{self.base}; trial {number} at step {k}/{steps}"

        return moved

    def update(self, finished: int, best_score: float | None, failed: int,
               fresh: list[FrozenTrial]) -> None:
        """``finished`` trials count against the budget, ``failed`` of them failed;
        ``fresh`` are those finished since the last update (one log line each)."""
        if self.mode == "none":
            return
        best = self.best = f"best mIOU {best_score:.1f}" if best_score is not None \
            else "no result yet"
        self.finished = finished
        extra = f", {failed} failed" if failed else ""
        if self.mode == "bar":
            self.advance(finished, f"search: {best}{extra}")
            return
        hours = (time.monotonic() - self.start) / 3600
        rate = finished / hours if hours > 0 else 0.0
        left = (self.total - finished) / rate * 60 if rate else float("nan")
        eta = f", ETA {left:.0f} min" if rate and finished < self.total else ""
        self.summary = self.base = (f"{finished}/{self.total} finished, {best}{extra}, "
                                    f"{rate:.0f} trials/h{eta}")
        for t in fresh:
            how = f"mIOU {t.value:.1f}" if t.state == TrialState.COMPLETE and t.value is not None \
                else t.user_attrs.get("failure") or t.state.name.lower()
            self.say(f"trial {t.number} finished ({how}): {self.summary}")
