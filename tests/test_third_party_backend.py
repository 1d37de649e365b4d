"""A backend from another package, registered as a real one is: an installed
distribution with an entry point in the group ``dpcdsl.backends``. It defines only the
required part of the contract, so it compiles, and each capability it lacks is an error
that names the capability."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dpcdsl import backends
from dpcdsl.errors import DpcError

#: only the required part: its source and modules come from the PyTorch backend's
#: generator, under its own name and priority
MINI = textwrap.dedent('''
    """A minimal dpcdsl backend: the required hooks and nothing else."""
    import dpcdsl_torch

    name = "mini"
    priority = -5
    lowerings = dpcdsl_torch.lowerings


    def emit(cell, in_channels, **options):
        return "# emitted by the mini backend\\n" + dpcdsl_torch.emit(cell, in_channels,
                                                                      **options)


    def build(cell, in_channels, seed=0, **options):
        return dpcdsl_torch.build(cell, in_channels, seed=seed, **options)


    export_weights = dpcdsl_torch.export_weights
    import_weights = dpcdsl_torch.import_weights
''')

CELL = "cell tiny(x, channels = 8) { return conv(x, kernel = 3) }\n"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package ``mini_backend`` and its distribution's metadata on the path, for
    this process and the ones it starts."""
    site = tmp_path / "site"
    (site / "mini_backend").mkdir(parents=True)
    (site / "mini_backend" / "__init__.py").write_text(MINI)
    info = site / "mini_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mini-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dpcdsl.backends]\nmini = mini_backend\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setattr(backends, "_loaded", {})  # what this test loads stays here
    monkeypatch.delitem(sys.modules, "mini_backend", raising=False)
    return site


def test_a_backend_with_only_the_required_part_compiles(installed: Path) -> None:
    import torch

    assert "mini" in backends.available()
    mini = backends.get("mini")
    assert isinstance(mini, backends.Backend)
    assert "# emitted by the mini backend" in backends.emit(CELL, backend="mini",
                                                            in_channels=3)
    head = backends.compile(CELL, backend="mini", in_channels=3)
    assert head(torch.randn(1, 3, 5, 5)).shape == (1, 8, 5, 5)
    # defaults stand in for the hooks that have one; the others are absent
    backends.hook(mini, "set_threads")(2)
    assert backends.hook(mini, "proxy_steps") is None
    # the lowest priority: it is never the default while another backend is installed
    assert backends.default().name != "mini"


@pytest.mark.parametrize("hook_name, title", [
    ("proxy_steps", "proxy training"), ("feature_extractor", "feature extraction"),
    ("train_model", "end-to-end training"), ("forward", "running a module")])
def test_what_it_lacks_is_named_by_capability(installed: Path, hook_name: str,
                                              title: str) -> None:
    with pytest.raises(DpcError, match=f"backend 'mini' has no {title}: it does not define "
                       f"{hook_name}") as e:
        backends.resolve("mini", hook_name)
    assert "backends that do: " in str(e.value) and "mini" not in e.value.diagnostics[0].hint


@pytest.mark.slow
def test_the_command_line_uses_it_and_names_what_it_lacks(installed: Path,
                                                          tmp_path: Path, task_file) -> None:
    (tmp_path / "tiny.dpc").write_text(CELL)

    def dpcc(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dpcdsl.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    r = dpcc("compile", "tiny.dpc", "--in-channels", "3", "--backend", "mini")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# emitted by the mini backend")
    r = dpcc("proxy", "tiny.dpc", "--task", task_file(), "--backend", "mini")
    message = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "backend 'mini' has no proxy training: it does not define proxy_steps" in message
