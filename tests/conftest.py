"""Shared fixtures. Golden files are compared exactly; regenerate them with
``pytest --update-golden`` and review the diff; they are never rewritten silently.

The suite runs in parallel (pytest-xdist, ``scripts/test.sh``). Workers share only what
is built to be shared: the feature caches under :func:`shared_cache`, which are keyed by
content and written atomically, so two workers that need the same cache at once both
end up reading one complete copy. Everything else a test writes goes under its own
``tmp_path``.
"""

from __future__ import annotations

import copy
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dpcdsl.train.data.task import task_toml
from tests.memory import MemoryReport, rss_mib, trim_heap

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"

#: the small synthetic task most tests train on: 64x64 scenes, 4x4 features, 8 steps
SMALL_TASK: dict[str, Any] = {
    "dataset": {"train_size": 16, "val_size": 8, "image_size": 64},
    "train": {"crop": 64, "steps": 8, "batch": 4, "eval_every": 4},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files from the current output")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MemoryReport(config), "dpcdsl-memory")
    _share_the_cores()
    _share_jax_compilations(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_dpcdsl_jax_cache", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _share_jax_compilations(config: pytest.Config) -> None:
    """One persistent JAX compilation cache for the run (its workers and the processes
    the tests start inherit it): the tests build the same cells again and again, each
    time as a new module class, which JAX's in-memory caches do not recognise but the
    compiled program's hash does. A run that names its own cache keeps it."""
    if hasattr(config, "workerinput") or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # a worker inherits the controller's; or the caller chose one
    folder = tempfile.mkdtemp(prefix="dpcdsl-jax-cache-")
    config._dpcdsl_jax_cache = folder  # type: ignore[attr-defined]
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")


def _share_the_cores() -> None:
    """Each xdist worker gets its share of the cores for the thread pools of PyTorch and
    BLAS (set before they load), so that N workers run N x 1 threads on N cores rather
    than N x N threads that wait on each other. Processes the tests start inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, threads)


#: a test process releases what it holds once its resident memory has grown by this
#: many MiB since it last did (or since it started)
RELEASE_AFTER_MIB = 1024
_held = {"after_release": 0.0}


@pytest.fixture(autouse=True)
def _release_memory_when_it_grows():
    """JAX keeps every function it compiled, for each shape it met, for the life of the
    process: about 40 MB a test where each test meets new shapes (3 GB over the atrous
    tests alone). Clearing after every test would compile again what the next test
    shares, so a test process releases them, its garbage and the allocator's free pages
    when its resident memory has grown by :data:`RELEASE_AFTER_MIB` since the last
    release; what it cannot release does not trigger another."""
    yield
    if rss_mib() > _held["after_release"] + RELEASE_AFTER_MIB:
        jax = sys.modules.get("jax")
        if jax is not None:
            jax.clear_caches()
        gc.collect()
        trim_heap()
        _held["after_release"] = rss_mib()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (scripts/test.sh), the tests marked with an
    ``xdist_group`` share an expensive fixture or server and must run on one worker:
    refuse to run if pytest-xdist did not group them, rather than build it once per
    worker unnoticed."""
    if not getattr(config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(
            f"pytest-xdist did not group {len(lost)} tests marked xdist_group (e.g. "
            f"{lost[0]}): this pytest and pytest-xdist do not work together under "
            "--dist loadgroup; install the versions pyproject.toml asks for")


@pytest.fixture(autouse=True, scope="module")
def _release_memory_after_each_module():
    """What a test module leaves behind is released before the next one: its objects,
    and the allocator's free pages."""
    yield
    gc.collect()
    trim_heap()


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    update = request.config.getoption("--update-golden")

    def compare(name: str, actual: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual)
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        assert actual == path.read_text(), f"output differs from {path}"

    return compare


def without_layers(source: str, layers: Mapping[str, Callable[[], str]]) -> str:
    """Emitted source as its golden file keeps it: each layer class copied verbatim
    from the backend's layer library becomes one line that names it. The goldens then
    hold what the compiler generates; the library is checked where it lives, and the
    emitted files' own tests run them whole."""
    for name, text in layers.items():
        source = source.replace(text(), f"# layer {name}: copied from the layer library\n")
    return source


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature-cache folder shared by every test of the run, across xdist workers (the
    run's common temporary folder). Caches are named by a content hash of what they
    hold, so tests that train on the same task build it once between them."""
    base = tmp_path_factory.getbasetemp()
    if base.name.startswith("popen-gw"):  # an xdist worker's folder: share the run's
        base = base.parent
    path = base / "shared-cache"
    path.mkdir(exist_ok=True)
    return path


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied table by table; a value of None removes a key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def task_file(tmp_path: Path, shared_cache: Path):
    """Write a task file and return its path: :data:`SMALL_TASK` with ``changes``
    merged in (``train={"steps": 40}``), its features in the shared cache unless
    ``cache_dir`` names another folder (a test about building caches)."""

    def write(name: str = "task.toml", **changes: Any) -> Path:
        settings = merged({"cache_dir": shared_cache, **SMALL_TASK}, changes)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(task_toml(settings))
        return path

    return write
