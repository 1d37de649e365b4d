"""Executors run trials; they hold no search state (the driver alone talks to Optuna).

- ``local``: in this process, one trial at a time; a trial past its timeout stops at its
  next step (SIGALRM stops one that reaches no step, a grace period later).
- ``ray``: Ray core tasks with a GPU fraction and CPUs per trial (``dpcdsl[ray]``).
- ``pool``: N worker slots, each a persistent process (spawned, so a crash takes
  nothing else down) that imports the framework once and takes trial after trial,
  pinned to one GPU with ``CUDA_VISIBLE_DEVICES`` or given its share of the CPU
  threads. A worker that dies is replaced and its trial run once more; a trial past its
  timeout is terminated with its worker, and a fresh worker takes the slot.

Every trial runs with an explicit number of CPU threads (:func:`place`): its share of
the CPUs this process may use. ``auto`` (the command line's default) is the pool with
one single-threaded worker per CPU on a multi-core CPU, or one worker per GPU given,
and ``local`` otherwise: benchmarks/bench_load.py measured it faster idle, and far
steadier when other work shares the machine (a multi-threaded trial stalls at every
parallel region whose threads are descheduled).

Jobs, progress and outcomes are the typed messages of :mod:`dpcdsl.search.messages`.
``make_executor`` takes a name, or an executor object itself (tests give a pool whose
``handle`` of one job injects faults).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

import optuna

from dpcdsl.search.config import EXECUTORS, ExecutionOptions
from dpcdsl.search.contract import Executor
from dpcdsl.search.messages import Job, Outcome, Progress
from dpcdsl.search.worker import Report, run_job


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: taskset, a container's cpuset),
    which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Placement:
    """Where a search's trials run: the executor, its worker slots and each trial's
    CPU threads."""

    executor: str
    workers: int
    threads: int


def place(executor: str, workers: int | None = None, threads: int | None = None,
          device: str = "cpu", gpus: list[str] | None = None,
          cpus_per_trial: float = 1.0, cpus: int | None = None) -> Placement:
    """The placement for a search; None leaves a choice to the policy.

    ``auto`` is the pool when GPUs are given (one worker each) or when the task runs on
    a CPU with at least two usable CPUs (one worker per CPU), else ``local``. Threads
    default to each slot's share of the usable CPUs (``cpus``, default
    :func:`usable_cpus`): all of them for ``local``, one per worker for a pool of one
    worker per CPU, and Ray's ``cpus_per_trial``."""
    cpus = cpus or usable_cpus()
    on_cpu = not gpus and not device.startswith("cuda")
    if executor == "auto":
        executor = "pool" if gpus or (on_cpu and cpus >= 2) else "local"
    if executor == "local":
        workers = 1
    elif workers is None:
        workers = len(gpus) if gpus else cpus if executor == "pool" else 2
    if threads is None:
        threads = (max(1, int(cpus_per_trial)) if executor == "ray"
                   else max(1, cpus // workers))
    return Placement(executor, workers, threads)


class _Expired(BaseException):
    """A trial's time is up (a BaseException, so the trial's own handlers pass it on)."""


class LocalExecutor(Executor):
    name = "local"
    slots = 1
    GRACE_S = 5.0

    def __init__(self, timeout: float | None = None, threads: int | None = None) -> None:
        self.timeout = timeout
        self.threads = threads or place("local").threads  # a job's own threads win
        self.done: list[tuple[int, Outcome]] = []

    def submit(self, number: int, job: Job, report: Report | None = None,
               on_step: Callable[[int], None] | None = None) -> None:
        job = replace(job, threads=job.threads or self.threads)
        if self.timeout is None:
            self.done.append((number, run_job(job, report, on_step)))
            return
        start = time.perf_counter()
        deadline = start + self.timeout

        def step(k: int) -> None:  # the trial stops between steps, where nothing is half-done
            if on_step is not None:
                on_step(k)
            if time.perf_counter() > deadline:
                raise _Expired

        def expire(signum: int, frame: Any) -> None:
            raise _Expired

        # the alarm is the hard stop for a trial that never reaches a step boundary
        # (a hang while loading); it fires a grace period after the deadline
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.timeout + max(self.GRACE_S, self.timeout))
        try:
            outcome = run_job(job, report, step)
        except _Expired:
            outcome = Outcome.failed(f"timeout after {self.timeout:g} s",
                                     time.perf_counter() - start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        self.done.append((number, outcome))

    @property
    def busy(self) -> int:
        return len(self.done)  # a finished trial waits here until the driver tells it

    def collect(self) -> list[tuple[int, Outcome]]:
        done, self.done = self.done, []
        return done

    def close(self) -> None:
        pass


def run_in_worker(job: Job, number: int, conn: Connection) -> Outcome:
    """One job in a pool worker, asking the driver at every evaluation whether to go
    on (when the job is prunable)."""

    def report(step: int, miou: float, part: int = 0) -> None:
        try:
            conn.send(Progress(step, miou, part))
            prune = conn.recv()
        except (EOFError, OSError):  # the driver is gone (killed): stop, and say nothing
            raise SystemExit(0) from None
        if prune:
            raise optuna.TrialPruned(f"pruned at step {step} (mIOU {miou:.1f})")

    start = time.perf_counter()
    try:
        return run_job(job, report if job.prunable else None)
    except optuna.TrialPruned as e:
        return Outcome.failed(str(e), time.perf_counter() - start, pruned=True)


def worker_main(conn: Connection, env: dict[str, str],
                handle: Callable[[Job, int, Connection], Outcome] = run_in_worker) -> None:
    """A pool worker's process: it imports the framework once and runs job after job
    (``(number, job)`` messages, each answered by its :class:`Outcome`) until the
    driver sends None or goes away. ``handle`` runs one job (tests inject faults)."""
    os.environ.update(env)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        number, job = message
        outcome = handle(job, number, conn)
        try:
            conn.send(outcome)
        except (EOFError, OSError):  # the driver went away while the job ran
            break
    conn.close()


@dataclass
class _Worker:
    process: Any
    conn: Connection


@dataclass
class _Running:
    number: int
    job: Job
    started: float
    attempts: int = 1
    report: Report | None = None


class PoolExecutor(Executor):
    """N worker slots, each a persistent process (spawned) that takes trial after
    trial; a worker that dies or runs past the timeout is replaced by a fresh one."""

    name = "pool"

    def __init__(self, workers: int, timeout: float | None = None,
                 gpus: list[str] | None = None,
                 handle: Callable[[Job, int, Connection], Outcome] = run_in_worker,
                 threads: int | None = None) -> None:
        """``handle`` runs one job inside a worker (a picklable function with
        :func:`run_in_worker`'s signature); ``threads`` is each worker's CPU threads
        (default: its share of the usable CPUs). A job's own ``threads`` wins."""
        self.slots = workers
        self.handle = handle
        self.timeout = timeout
        self.gpus = gpus
        self.ctx = mp.get_context("spawn")
        self.workers: dict[int, _Worker] = {}  # slot -> its process, while it lives
        self.running: dict[int, _Running] = {}  # slot -> trial
        self.threads = threads or place("pool", workers).threads
        self.started_workers = 0

    @property
    def busy(self) -> int:
        return len(self.running)

    def _env(self, slot: int) -> dict[str, str]:
        # read when the framework starts: XLA sizes its pool once (torch's is set per job)
        env = {"OMP_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    def _worker(self, slot: int) -> _Worker:
        """The slot's worker, started when it has none."""
        if slot not in self.workers:
            parent, child = self.ctx.Pipe(duplex=True)
            proc = self.ctx.Process(target=worker_main, daemon=True,
                                    args=(child, self._env(slot), self.handle))
            proc.start()
            child.close()
            self.workers[slot] = _Worker(proc, parent)
            self.started_workers += 1
        return self.workers[slot]

    def _drop(self, slot: int) -> int | None:
        """Kill the slot's worker (if alive) and forget it; its exit code."""
        w = self.workers.pop(slot)
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5)
        w.conn.close()
        return w.process.exitcode

    def _start(self, slot: int, r: _Running) -> None:
        try:
            self._worker(slot).conn.send((r.number, r.job))
        except (BrokenPipeError, OSError):  # died between trials: a fresh one takes it
            self._drop(slot)
            self._worker(slot).conn.send((r.number, r.job))
        self.running[slot] = r

    def submit(self, number: int, job: Job, report: Report | None = None,
               on_step: Callable[[int], None] | None = None) -> None:
        # on_step: a trial in another process moves the search's bar when it ends
        slot = next(s for s in range(self.slots) if s not in self.running)
        job = replace(job, prunable=report is not None, threads=job.threads or self.threads)
        self._start(slot, _Running(number, job,
                                   time.monotonic(), 1, report))

    def collect(self) -> list[tuple[int, Outcome]]:
        """Wait until at least one trial ends; its outcome (a death is retried once)."""
        done: list[tuple[int, Outcome]] = []
        while not done and self.running:
            workers = [self.workers[slot] for slot in self.running]
            wait([w.conn for w in workers] + [w.process.sentinel for w in workers],
                 timeout=1.0)
            now = time.monotonic()
            for slot, r in list(self.running.items()):
                w = self.workers[slot]
                outcome: Outcome | None = None
                while outcome is None and w.conn.poll():
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        break
                    if isinstance(message, Progress):  # answer whether to prune
                        w.conn.send(self._should_prune(r, message))
                    else:
                        outcome = message
                if outcome is None and w.process.is_alive():
                    if self.timeout is None or now - r.started <= self.timeout:
                        continue
                    self._drop(slot)
                    outcome = Outcome.failed(f"timeout after {self.timeout:g} s",
                                             now - r.started)
                del self.running[slot]
                if outcome is None:  # the worker died without an answer
                    code = self._drop(slot)
                    if r.attempts == 1:
                        self._start(slot, replace(r, attempts=2, started=time.monotonic()))
                        continue
                    outcome = Outcome.failed(f"worker died twice (exit code {code})",
                                             now - r.started)
                done.append((r.number, outcome.but(attempts=r.attempts)))
        return done

    @staticmethod
    def _should_prune(r: _Running, progress: Progress) -> bool:
        if r.report is None:
            return False
        try:
            r.report(progress.step, progress.miou, progress.part)
        except optuna.TrialPruned:  # the driver's pruner said stop
            return True
        return False

    def close(self) -> None:
        """Idle workers are told to stop, all at once, so that they end together; busy
        ones (an interrupted search) are killed."""
        for slot, w in self.workers.items():
            if slot not in self.running:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        deadline = time.monotonic() + 5
        for slot in list(self.workers):
            if slot not in self.running:
                self.workers[slot].process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._drop(slot)
        self.running.clear()


def _ray_job(job: Job, number: int, progress: Any = None) -> Outcome:
    """A trial as a Ray task; each evaluation goes to the driver through ``progress``
    (a Ray queue), without waiting for an answer: the driver cancels a pruned task."""
    import ray

    def report(step: int, miou: float, part: int = 0) -> None:
        try:
            progress.put_nowait((number, Progress(step, miou, part)))
        except Exception:  # noqa: BLE001 - the driver is gone or its queue full: train on
            pass

    return run_job(job, report if progress is not None else None).but(
        device=",".join(str(g) for g in ray.get_gpu_ids()))


class RayExecutor(Executor):
    """Ray core tasks, each asking for ``gpus_per_trial`` (a fraction is fine) and
    ``cpus_per_trial``; on the cluster at ``address``, or on a local Ray started for the
    run (and stopped after it). A task whose worker dies is retried once by Ray."""

    name = "ray"

    def __init__(self, workers: int, timeout: float | None = None, address: str | None = None,
                 gpus_per_trial: float = 0.0, cpus_per_trial: float = 1.0,
                 threads: int | None = None) -> None:
        from dpcdsl.errors import DpcError

        try:
            import ray
        except ImportError:
            raise DpcError.at(None, "the ray executor needs Ray",
                              hint="pip install 'dpcdsl[ray]'", code="DPC902") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.slots, self.timeout = workers, timeout
        self.threads = threads or place("ray", workers,
                                        cpus_per_trial=cpus_per_trial).threads
        self.remote = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial,
                                 max_retries=1)(_ray_job)
        # the trials' evaluations, on their way to the driver's progress and pruner
        from ray.util.queue import Queue

        self.progress = Queue(maxsize=10_000)
        self.running: dict[Any, tuple[int, float, Report | None]] = {}

    @property
    def busy(self) -> int:
        return len(self.running)

    def submit(self, number: int, job: Job, report: Report | None = None,
               on_step: Callable[[int], None] | None = None) -> None:
        # on_step: a trial in another process moves the search's bar when it ends
        job = replace(job, threads=job.threads or self.threads)
        ref = self.remote.remote(job, number, self.progress if report is not None else None)
        self.running[ref] = (number, time.monotonic(), report)

    def _evaluations(self) -> set[int]:
        """Hand the evaluations that arrived to their trials' reports; the trials whose
        pruner said stop."""
        pruned: set[int] = set()
        reports = {number: report for number, _, report in self.running.values()}
        while not self.progress.empty():
            number, progress = self.progress.get_nowait()
            report = reports.get(number)
            if report is None or number in pruned:
                continue
            try:
                report(progress.step, progress.miou, progress.part)
            except optuna.TrialPruned:
                pruned.add(number)
        return pruned

    def collect(self) -> list[tuple[int, Outcome]]:
        ray = self.ray
        done: list[tuple[int, Outcome]] = []
        while not done and self.running:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=1.0)
            pruned = self._evaluations()
            now = time.monotonic()
            for ref in list(self.running):
                number, started, _ = self.running[ref]
                if number in pruned and ref not in ready:
                    ray.cancel(ref, force=True)
                    outcome = Outcome.failed("pruned by the driver's pruner", now - started,
                                             pruned=True)
                elif ref in ready:
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
                        outcome = Outcome.failed(f"worker died: {type(e).__name__}: {text}",
                                                 now - started)
                elif self.timeout is not None and now - started > self.timeout:
                    ray.cancel(ref, force=True)
                    outcome = Outcome.failed(f"timeout after {self.timeout:g} s",
                                             now - started)
                else:
                    continue
                del self.running[ref]
                done.append((number, outcome))
        return done

    def close(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        self.running.clear()
        self.progress.shutdown()
        if self.started:
            self.ray.shutdown()


def make_executor(options: ExecutionOptions | Any, workers: int = 2,
                  threads: int | None = None) -> Executor:
    """The executor ``options`` names (``auto`` is resolved by :func:`place` first),
    with ``workers`` slots and ``threads`` per trial (default: the options'); an
    executor name alone stands for options with that executor, and an executor object
    is itself. With ``fuse`` > 1, it is wrapped to train up to that many trials fused
    in each job (:class:`dpcdsl.search.fusion.FusingExecutor`), the timeout per trial
    scaled to the job."""
    ex = options if isinstance(options, ExecutionOptions) else \
        ExecutionOptions(executor=options)
    if ex.fuse > 1:
        from dpcdsl.search.fusion import FusingExecutor

        timeout = None if ex.timeout is None else ex.timeout * ex.fuse
        return FusingExecutor(make_executor(replace(ex, fuse=1, timeout=timeout), workers,
                                            threads), ex.fuse)
    from dpcdsl.errors import DpcError, did_you_mean

    name, timeout, threads = ex.executor, ex.timeout, threads or ex.threads
    if not isinstance(name, str):  # an executor object itself
        if not isinstance(name, Executor):
            lacks = [a for a in ("name", "slots", "busy", "submit", "collect", "close")
                     if not hasattr(name, a)]
            raise DpcError.at(None, f"{type(name).__name__} is not an executor: it lacks "
                              f"{', '.join(lacks)}",
                              hint="see dpcdsl.search.contract.Executor", code="DPC801")
        return name
    if name == "local":
        return LocalExecutor(timeout, threads)
    if name == "pool":
        return PoolExecutor(workers, timeout, ex.gpus, threads=threads)
    if name == "ray":
        return RayExecutor(workers, timeout, ex.ray_address, ex.gpus_per_trial,
                           ex.cpus_per_trial, threads)
    raise DpcError.at(None, f"unknown executor '{name}'."
                      f"{did_you_mean(name, EXECUTORS)}".rstrip("."),
                      hint="executors: " + ", ".join(EXECUTORS), code="DPC801")

