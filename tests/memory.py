"""A pytest plugin that reports memory: the peak resident memory of each test process
(every xdist worker, or the one pytest process), and the test modules after which the
resident memory grew the most, i.e. where memory accumulates across tests."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from typing import Any

import pytest

#: how many modules the summary names
TOP = 5


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def trim_heap() -> None:
    """Hand the C allocator's free pages back to the system (glibc's ``malloc_trim``),
    so that the resident memory shows what is really held; elsewhere a no-op."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)


def peak_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.growth: dict[str, float] = {}  # module -> MiB its tests left resident
        self.processes: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        before = rss_mib()
        yield
        module = item.nodeid.split("::", 1)[0]
        self.growth[module] = self.growth.get(module, 0.0) + rss_mib() - before

    def _own(self) -> dict[str, Any]:
        return {"peak": peak_mib(), "growth": self.growth}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: hand the figures to the controller
            workeroutput["dpcdsl_memory"] = self._own()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        figures = getattr(node, "workeroutput", {}).get("dpcdsl_memory")
        if figures is not None:
            self.processes[node.gateway.id] = figures

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workeroutput"):
            return
        processes = self.processes or {"pytest": self._own()}
        growth: dict[str, float] = {}
        for figures in processes.values():
            for module, mib in figures["growth"].items():
                growth[module] = growth.get(module, 0.0) + mib
        tr = terminalreporter
        tr.section("memory")
        peaks = ", ".join(f"{name} {f['peak'] / 1024:.2f} GiB"
                          for name, f in sorted(processes.items()))
        tr.write_line(f"peak resident memory per test process: {peaks}")
        top = sorted(growth.items(), key=lambda kv: -kv[1])[:TOP]
        tr.write_line("resident memory left behind, by test module: " + ", ".join(
            f"{module} {mib:+.0f} MiB" for module, mib in top))
