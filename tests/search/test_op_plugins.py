"""Ops from an installed package: a distribution with an entry point in the group
``dpcdsl.ops`` adds its ops to the language, to both backends and to every process of a
search (the command line's, a pool's workers, a Ray cluster's workers)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

from dpcdsl import backends, ops
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.ops import OPS, unregister
from tests.backends.conformance import IN_CHANNELS, probe_cell, probe_inputs
from tests.plugins import SCALED_SPACE, install, install_scale_plugin
from tests.search.conftest import dpcc, trials_of

SPACE = SCALED_SPACE


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plugin installed on the path of this process and of the ones it starts; the
    registry and backends as they were once the test ends."""
    folder = install_scale_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.delitem(sys.modules, "dpcdsl_scale", raising=False)
    monkeypatch.setattr(ops._plugins, "_loaded", None)
    monkeypatch.setattr(backends, "_loaded", {})
    yield folder
    for name in backends.available():
        backends.get(name).lowerings.pop("scale", None)
    if "scale" in OPS:
        unregister("scale")


def test_the_plugin_op_reaches_the_language_and_both_backends(site: Path) -> None:
    assert "scale" not in OPS  # nothing loads plugins until a program is read
    space = Space.from_text(SPACE)
    assert "scale" in OPS and space.count() == 8
    cell = probe_cell("scale")
    x = probe_inputs(cell)
    for name in ("torch", "jax"):
        backend = backends.get(name)
        assert "* 0.5" in backend.emit(cell, IN_CHANNELS)
        y = backend.forward(backend.build(cell, IN_CHANNELS), x)
        np.testing.assert_allclose(y, x[0] * 0.5, rtol=1e-6)


def test_the_command_line_knows_the_plugin_op(site: Path, tmp_path: Path) -> None:
    r = dpcc("ops")
    assert r.returncode == 0, r.stderr
    # the op's own row, not a wrapped line of another op's text that starts with "scale"
    row = next(line for line in r.stdout.splitlines() if line.lstrip().startswith("scale ")
               and len(line) - len(line.lstrip()) <= 1)
    assert "plugin scale" in row and "factor" in row
    (tmp_path / "s.dpc").write_text(SPACE)
    assert dpcc("check", tmp_path / "s.dpc").returncode == 0
    r = dpcc("count", tmp_path / "s.dpc")
    assert r.returncode == 0 and r.stdout.split()[0] == "8", r.stdout
    (tmp_path / "c.dpc").write_text("cell c(x) { return scale(x, factor = 3.0) }\n")
    r = dpcc("compile", tmp_path / "c.dpc", "--backend", "torch", "--in-channels", 4)
    assert r.returncode == 0 and "* 3.0" in r.stdout, r.stderr


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('the plugin is broken')",
     "op plugin 'bad' (dpcdsl_bad) cannot be loaded: RuntimeError: the plugin is broken"),
    ("OPS = []", "op plugin 'bad' (dpcdsl_bad) defines no ops"),
    ("from dpcdsl.ops import OPS as _ALL\nOPS = [_ALL['conv']]",
     "op plugin 'bad' (dpcdsl_bad) defines the op 'conv', which exists already"),
])
def test_a_bad_plugin_is_named_without_a_traceback(tmp_path: Path, source: str,
                                                   message: str) -> None:
    folder = install(tmp_path / "site", "dpcdsl_bad", source, "dpcdsl.ops", "bad")
    (tmp_path / "c.dpc").write_text("cell c(x) { return conv(x) }\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = dpcc("check", tmp_path / "c.dpc", env=env)
    assert r.returncode == 1 and message in " ".join(r.stderr.split()), r.stderr
    assert "DPC906" in r.stderr and "Traceback" not in r.stderr


def test_lowerings_for_ops_a_plugin_does_not_define_are_refused(tmp_path: Path,
                                                                 monkeypatch) -> None:
    source = textwrap.dedent('''
        from dpcdsl.ops import Arg, OpSpec
        OPS = [OpSpec("twice", 1, 1, (), "doubles")]
        def lowerings(backend):
            return {"conv": None}
    ''')
    folder = install(tmp_path / "site", "dpcdsl_twice", source, "dpcdsl.ops", "twice")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(ops._plugins, "_loaded", None)
    try:
        with pytest.raises(DpcError, match="lowerings of ops it does not define: conv"):
            ops.plugin_lowerings("torch")
    finally:
        unregister("twice")


def _trained(run: Path) -> list:
    return [t for t in trials_of(run) if t.state == TrialState.COMPLETE
            and "duplicate_of" not in t.user_attrs]


@pytest.mark.slow
def test_a_pool_search_runs_the_plugin_op_in_its_workers(site: Path, files, tmp_path):
    space, task = files(SPACE)
    run = tmp_path / "run"
    r = dpcc("search", space, "--task", task, "--trials", 4, "--executor", "pool",
             "--workers", 2, "--run-dir", run, "--quiet")
    assert r.returncode == 0, r.stderr
    trained = _trained(run)
    assert trained and all("scale(" in t.user_attrs["cell"] for t in trained)


# a Ray search with the plugin's op on the cluster: tests/search/test_driver.py::
# test_ray_executor_gives_each_trial_its_own_device searches SCALED_SPACE
