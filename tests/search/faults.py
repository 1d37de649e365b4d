"""Fault injection for the search tests, kept out of the package: pool worker entry
points that die the way real workers do (``os._exit``, no answer to the driver)."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from pathlib import Path

from dpcdsl.search.executors import worker_main
from dpcdsl.search.messages import Job


def exit_always(trial: int, job: Job, number: int, conn: Connection, env: dict[str, str],
                threads: int) -> None:
    """The worker of ``trial`` dies on every attempt."""
    if number == trial:
        os._exit(17)
    worker_main(job, number, conn, env, threads)


def exit_once(trial: int, marker: str, job: Job, number: int, conn: Connection,
              env: dict[str, str], threads: int) -> None:
    """The worker of ``trial`` dies on its first attempt only (``marker`` remembers)."""
    if number == trial and not Path(marker).exists():
        Path(marker).touch()
        os._exit(17)
    worker_main(job, number, conn, env, threads)
