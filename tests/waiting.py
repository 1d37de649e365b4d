"""Waiting for an event instead of sleeping a fixed time: the test goes on as soon as
what it waits for has happened, and fails with a message when it never does."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(happened: Callable[[], object], what: str, timeout: float = 60.0,
               poll: float = 0.02) -> None:
    """Return once ``happened()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not happened():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(poll)
