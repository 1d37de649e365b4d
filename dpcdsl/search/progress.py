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
        self.seen: set[int] = set()
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

    def update(self, done: list[FrozenTrial]) -> None:
        if self.mode == "none":
            return
        scores = [t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None]
        best = self.best = f"best mIOU {max(scores):.1f}" if scores else "no result yet"
        self.finished = len(done)
        failed = sum(t.state == TrialState.FAIL for t in done)
        extra = f", {failed} failed" if failed else ""
        if self.mode == "bar":
            self.advance(len(done), f"search: {best}{extra}")
            return
        hours = (time.monotonic() - self.start) / 3600
        rate = len(done) / hours if hours > 0 else 0.0
        left = (self.total - len(done)) / rate * 60 if rate else float("nan")
        eta = f", ETA {left:.0f} min" if rate and len(done) < self.total else ""
        self.summary = self.base = (f"{len(done)}/{self.total} finished, {best}{extra}, "
                                    f"{rate:.0f} trials/h{eta}")
        for t in sorted(done, key=lambda t: t.number):
            if t.number in self.seen:
                continue
            self.seen.add(t.number)
            how = f"mIOU {t.value:.1f}" if t.state == TrialState.COMPLETE and t.value is not None \
                else t.user_attrs.get("failure") or t.state.name.lower()
            self.say(f"trial {t.number} finished ({how}): {self.summary}")
