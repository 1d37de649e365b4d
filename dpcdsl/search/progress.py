"""What a search shows while it runs.

- ``bar`` (a terminal): a rich progress bar with trials finished, the best so far and an
  ETA;
- ``log`` (output to a file or a pipe): one timestamped line per finished trial, and a
  heartbeat line when nothing was said for ``heartbeat`` seconds (a trial can run for a
  long time without finishing);
- ``none``: nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from optuna.trial import FrozenTrial, TrialState

MODES = ("bar", "log", "none")


def mode_for(progress: bool | str, stream: TextIO = sys.stderr) -> str:
    """A mode from ``SearchConfig.progress``: a mode name, or True (a bar on a terminal,
    log lines elsewhere) and False (none)."""
    if isinstance(progress, str):
        if progress not in MODES:
            raise ValueError(f"progress must be one of {MODES}, got {progress!r}")
        return progress
    if not progress:
        return "none"
    return "bar" if stream.isatty() else "log"


class SearchProgress:
    def __init__(self, total: int, show: bool | str, heartbeat: float = 30.0,
                 stream: TextIO = sys.stderr) -> None:
        self.total, self.mode = total, mode_for(show, stream)
        self.heartbeat, self.stream = heartbeat, stream
        self.start = time.monotonic()
        self.seen: set[int] = set()
        self.summary = "0 finished"
        self.last_line = self.start
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def __enter__(self) -> SearchProgress:
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar: Any = Progress("[progress.description]{task.description}", BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     transient=False)
            self.bar.start()
            self.task = self.bar.add_task("search", total=self.total)
        elif self.mode == "log":
            self.say(f"search started: {self.total} trials")
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def say(self, text: str) -> None:
        with self.lock:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp} {text}", file=self.stream, flush=True)
            self.last_line = time.monotonic()

    def _beat(self) -> None:
        while not self.stop.wait(min(self.heartbeat, 1.0)):
            if time.monotonic() - self.last_line >= self.heartbeat:
                self.say(f"search running: {self.summary}")

    def update(self, done: list[FrozenTrial]) -> None:
        if self.mode == "none":
            return
        scores = [t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None]
        best = f"best mIOU {max(scores):.1f}" if scores else "no result yet"
        failed = sum(t.state == TrialState.FAIL for t in done)
        extra = f", {failed} failed" if failed else ""
        if self.mode == "bar":
            self.bar.update(self.task, completed=len(done),
                            description=f"search: {best}{extra}")
            return
        hours = (time.monotonic() - self.start) / 3600
        rate = len(done) / hours if hours > 0 else 0.0
        left = (self.total - len(done)) / rate * 60 if rate else float("nan")
        eta = f", ETA {left:.0f} min" if rate and len(done) < self.total else ""
        self.summary = (f"{len(done)}/{self.total} finished, {best}{extra}, "
                        f"{rate:.0f} trials/h{eta}")
        for t in sorted(done, key=lambda t: t.number):
            if t.number in self.seen:
                continue
            self.seen.add(t.number)
            how = f"mIOU {t.value:.1f}" if t.state == TrialState.COMPLETE and t.value is not None \
                else t.user_attrs.get("failure") or t.state.name.lower()
            self.say(f"trial {t.number} finished ({how}): {self.summary}")

    def __exit__(self, *exc: object) -> None:
        if self.mode == "bar":
            self.bar.stop()
        elif self.mode == "log":
            self.stop.set()
            self.thread.join()
            self.say(f"search ended: {self.summary}")
