"""What long work shows while it runs, in one of three modes:

- ``bar`` (a terminal): a rich progress bar with the work done, what matters so far
  (the loss, the best mIOU) and an ETA;
- ``log`` (output to a file or a pipe): timestamped lines, one per event worth a line
  (an evaluation, a finished trial), and a heartbeat line whenever nothing was said for
  ``heartbeat`` seconds, so a log never goes quiet for long;
- ``none``: nothing.

:class:`Reporter` holds what the modes share; :class:`StepProgress` follows one training
run step by step (``dpcc proxy``, ``train``, ``rerank``), :class:`CountProgress` counted
work (``dpcc cache``), and :class:`dpcdsl.search.progress.SearchProgress` a whole
search.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

MODES = ("bar", "log", "none")


def mode_for(progress: bool | str, stream: TextIO = sys.stderr) -> str:
    """A mode from a setting: a mode name, or True (a bar on a terminal, log lines
    elsewhere) and False (none)."""
    if isinstance(progress, str):
        if progress not in MODES:
            raise ValueError(f"progress must be one of {MODES}, got {progress!r}")
        return progress
    if not progress:
        return "none"
    return "bar" if stream.isatty() else "log"


class Reporter:
    """A bar or log lines with a heartbeat; subclasses say what a line holds."""

    def __init__(self, total: int, show: bool | str, label: str, heartbeat: float = 30.0,
                 stream: TextIO = sys.stderr, log_file: Path | None = None) -> None:
        self.total, self.mode, self.label = total, mode_for(show, stream), label
        self.heartbeat, self.stream = heartbeat, stream
        # the log lines also go here (appended), whatever the mode shows
        self.log_file = log_file
        self.start = time.monotonic()
        self.summary = "starting"
        self.last_line = self.start
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def __enter__(self) -> Any:
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar: Any = Progress("[progress.description]{task.description}", BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        if self.mode == "log":
            self.say(f"{self.label} started: {self.total} {self.unit}")
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        else:
            self.record(f"{self.label} started: {self.total} {self.unit}")
        return self

    unit = "steps"

    def say(self, text: str) -> None:
        """A timestamped line on the stream, and in the log file."""
        with self.lock:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp} {text}", file=self.stream, flush=True)
            self.last_line = time.monotonic()
        self.record(text, stamp)

    def record(self, text: str, stamp: str | None = None) -> None:
        """A timestamped line in the log file alone (when there is one)."""
        if self.log_file is None:
            return
        stamp = stamp or time.strftime("%Y-%m-%d %H:%M:%S")
        with self.lock, open(self.log_file, "a") as f:
            f.write(f"{stamp} {text}\n")

    def line(self, text: str) -> None:
        """A line worth keeping: said in the log mode, recorded in the others."""
        if self.mode == "log":
            self.say(text)
        else:
            self.record(text)

    def _beat(self) -> None:
        while not self.stop.wait(min(self.heartbeat, 1.0)):
            if time.monotonic() - self.last_line >= self.heartbeat:
                self.say(f"{self.label} running: {self.summary}")

    def advance(self, done: int, description: str) -> None:
        if self.mode == "bar":
            self.bar.update(self.task, completed=done, description=description)

    def eta(self, done: int) -> str:
        elapsed = time.monotonic() - self.start
        if not done or done >= self.total or elapsed <= 0:
            return ""
        return f", ETA {(self.total - done) * elapsed / done / 60:.1f} min"

    def __exit__(self, *exc: object) -> None:
        if self.mode == "bar":
            self.bar.stop()
        if self.mode == "log":
            self.stop.set()
            self.thread.join()
        self.line(f"{self.label} {'ended' if exc[0] is None else 'stopped'}: {self.summary}")


class StepProgress(Reporter):
    """One training run: the bar moves every step (with the loss and the last mIOU);
    the log has a line per evaluation and the heartbeat (step, loss, ETA)."""

    def __init__(self, total: int, show: bool | str, label: str = "training",
                 heartbeat: float = 30.0, stream: TextIO = sys.stderr) -> None:
        super().__init__(total, show, label, heartbeat, stream)
        self.miou: float | None = None
        self.loss: float | None = None
        self.k = 0

    def _summarise(self) -> None:
        loss = f", loss {self.loss:.3f}" if self.loss is not None else ""
        miou = f", mIOU {self.miou:.1f}" if self.miou is not None else ""
        self.summary = f"step {self.k}/{self.total}{loss}{miou}{self.eta(self.k)}"

    def step(self, k: int, loss: float) -> None:
        """After step ``k`` with its loss."""
        if self.mode == "none":
            return
        self.k, self.loss = k, loss
        self._summarise()
        miou = f" mIOU {self.miou:.1f}" if self.miou is not None else ""
        self.advance(k, f"{self.label}: loss {loss:.3f}{miou}")

    def evaluated(self, k: int, miou: float) -> None:
        """After the evaluation at step ``k``."""
        self.k, self.miou = k, miou
        if self.mode == "none":
            return
        self._summarise()
        if self.mode == "log":
            self.say(f"{self.label} evaluated: {self.summary}")
        else:
            self.advance(k, f"{self.label}: mIOU {miou:.1f}")


class CountProgress(Reporter):
    """Work counted in items (``dpcc cache``: images through the backbone): the bar moves
    with each batch; the log has a line at every tenth of the work, and the heartbeat."""

    def __init__(self, total: int, show: bool | str, label: str, unit: str = "images",
                 heartbeat: float = 30.0, stream: TextIO = sys.stderr) -> None:
        super().__init__(total, show, label, heartbeat, stream)
        self.unit = unit
        self.done = 0
        self.tenth = 1  # the next tenth of the work that gets a log line

    def add(self, n: int) -> None:
        """``n`` more items done."""
        if self.mode == "none":
            return
        self.done += n
        self.summary = f"{self.done}/{self.total} {self.unit}{self.eta(self.done)}"
        if self.mode == "bar":
            self.advance(self.done, self.label)
        elif self.total and self.done * 10 >= self.tenth * self.total:
            self.say(f"{self.label}: {self.summary}")
            self.tenth = self.done * 10 // self.total + 1


__all__ = ["MODES", "CountProgress", "Reporter", "StepProgress", "mode_for"]
