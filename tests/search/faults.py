"""Fault injection for the search tests, kept out of the package: job handlers of a
pool worker that die the way real workers do (``os._exit``, no answer to the driver)."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from pathlib import Path

from dpcdsl.search.executors import run_in_worker
from dpcdsl.search.messages import Job, Outcome


def exit_always(trial: int, job: Job, number: int, conn: Connection) -> Outcome:
    """The worker that takes ``trial`` dies, on every attempt."""
    if number == trial:
        os._exit(17)
    return run_in_worker(job, number, conn)


def exit_once(trial: int, marker: str, job: Job, number: int, conn: Connection) -> Outcome:
    """The worker that takes ``trial`` dies on its first attempt only (``marker``
    remembers)."""
    if number == trial and not Path(marker).exists():
        Path(marker).touch()
        os._exit(17)
    return run_in_worker(job, number, conn)
