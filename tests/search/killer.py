"""``python -m tests.search.killer MOMENT [dpcc arguments...]``: run the real ``dpcc``
and SIGKILL its own process at one moment of a search, as ``kill -9`` would. Kept out
of the package: the moments are reached by wrapping the project's own functions here.

Moments: ``cache`` (after the first batch of features is written), ``mid_trial`` (at
the first evaluation of the second trial trained in this process), ``after_trial``
(the second trial's scores stored, the study not yet told), ``report`` (the leaderboard
and best cell written, report.html not) and ``random:SECONDS`` (a timer). One moment
is no kill: ``hold:FILE`` holds the first trial at its first evaluation until FILE
exists, so that another driver can meet it running.

The moments are reached in this process, so the trials run here (``--executor local``)
unless the arguments say otherwise."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(moment: str) -> None:
    calls = [0]

    def nth(n: int) -> bool:
        calls[0] += 1
        return calls[0] == n

    if moment == "cache":
        from dpcdsl.train.data import cache

        write = cache._write_split

        def write_split(folder: Any, name: str, data: Any, extract: Any, dtype: str,
                        batch: int, advance: Any) -> Any:
            def step(n: int) -> None:
                advance(n)
                _die()
            return write(folder, name, data, extract, dtype, batch, step)

        cache._write_split = write_split
    elif moment == "mid_trial":
        from dpcdsl.train import proxy

        train = proxy.train

        def mid(*args: Any, callback: Any = None, **kwargs: Any) -> Any:
            second = nth(2)

            def report(step: int, miou: float) -> None:
                if second:
                    _die()
                if callback is not None:
                    callback(step, miou)
            return train(*args, callback=report, **kwargs)

        proxy.train = mid
    elif moment == "after_trial":
        from dpcdsl.search import driver

        tell = driver._tell

        def told(study: Any, trial: Any, outcome: Any, *rest: Any) -> Any:
            if nth(2):
                study.tell = lambda *a, **k: _die()
            return tell(study, trial, outcome, *rest)

        driver._tell = told
    elif moment == "report":
        from dpcdsl.search import report

        def report_html(*args: Any, **kwargs: Any) -> str:
            _die()
            return ""

        report.report_html = report_html
    elif moment.startswith("hold:"):  # not a kill: wait mid-trial until a file exists
        import time
        from pathlib import Path

        from dpcdsl.train import proxy

        marker, train = Path(moment.split(":", 1)[1]), proxy.train

        def held(*args: Any, callback: Any = None, **kwargs: Any) -> Any:
            first = nth(1)

            def report(step: int, miou: float) -> None:
                deadline = time.time() + 300
                while first and not marker.exists() and time.time() < deadline:
                    time.sleep(0.1)
                if callback is not None:
                    callback(step, miou)
            return train(*args, callback=report, **kwargs)

        proxy.train = held
    elif moment.startswith("random:"):
        timer = threading.Timer(float(moment.split(":", 1)[1]), _die)
        timer.daemon = True
        timer.start()
    else:
        raise SystemExit(f"unknown moment {moment!r}")


def main() -> None:
    moment, *args = sys.argv[1:]
    _arm(moment)
    from dpcdsl.cli import main as dpcc

    if "--executor" not in args:
        args += ["--executor", "local"]
    sys.argv = ["dpcc", *args]
    dpcc()


if __name__ == "__main__":
    main()
