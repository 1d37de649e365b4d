"""What the search tests share: the space and task files most of them search, and one
real Ray cluster for every test that runs on Ray (they are one xdist group, so one
worker runs them all against it)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from dpcdsl.search.study import STUDY, storage_url
from tests.plugins import install_scale_plugin
from tests.waiting import wait_until

SPACE = """
cell small(x, channels = 16) {
  a = one_of(conv(x, kernel = {1, 3}), sepconv(x, rate = {1, 2}), pool(x, grid = {1, 2}))
  return conv(concat(a, x), kernel = 1)
}
"""

#: the xdist group of the tests that use :func:`ray_cluster`
RAY = pytest.mark.xdist_group("ray")


@pytest.fixture
def files(tmp_path, task_file):
    """A space file and a task file (the small task; ``changes`` as ``task_file`` takes
    them), its features in the run's shared cache."""
    def make(space: str = SPACE, **changes) -> tuple[Path, Path]:
        (tmp_path / "space.dpc").write_text(space)
        return tmp_path / "space.dpc", task_file(**changes)
    return make


def trials_of(run: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the search in the run folder ``run`` (its SQLite study)."""
    return optuna.load_study(study_name=STUDY, storage=storage_url(run, None)).get_trials()


def dpcc(*args: object, timeout: float = 600,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``dpcc`` command line in a new process."""
    return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict[str, str]  # the environment of a process that connects to it


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A Ray cluster started for the run (``ray start --head``) with token
    authentication, as Ray starts clusters by default, and two fake GPUs: Ray only hands
    out their ids, which is what the tests check. A process connects with its address
    and ``env`` (the token). It is stopped, and its files removed, when the run ends."""
    ray = str(Path(sys.executable).parent / "ray")
    # a short folder: Ray's socket paths must fit in 107 characters
    temp = tempfile.mkdtemp(prefix="dpcray")
    port = free_port()
    # the cluster's Python has the op plugin `scale` installed, as a user installs a
    # plugin on every node (tests/search/test_op_plugins.py searches with its op)
    site = install_scale_plugin(Path(tempfile.mkdtemp(prefix="dpcsite")))
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "PYTHONPATH": path}
    cluster = RayCluster(f"127.0.0.1:{port}", env)
    # --block: the cluster's processes belong to this one, and end with it
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
         "--num-gpus", "2", "--include-dashboard", "false", "--temp-dir", temp,
         "--disable-usage-stats"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=env)

    def ready() -> bool:
        if head.poll() is not None:
            return True  # it failed: said below
        status = subprocess.run([ray, "status", "--address", cluster.address],
                                capture_output=True, text=True, env=env)
        return status.returncode == 0 and "Active:" in status.stdout and "GPU" in status.stdout

    try:
        wait_until(ready, "the Ray cluster to start", timeout=180, poll=0.5)
        assert head.poll() is None, head.communicate()[1]
        yield cluster
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.communicate()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(site, ignore_errors=True)
