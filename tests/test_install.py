"""The package as a user installs it: the wheel is built from this tree and installed
into a folder of its own, and the commands run from an empty folder, so nothing is
found through the source tree."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel installed (without its dependencies, which this environment has) into
    a folder of its own, and the environment that runs it from there."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(ROOT)], check=True, capture_output=True,
                   timeout=600)
    [wheel] = (work / "dist").glob("dpcdsl-*.whl")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    empty = work / "elsewhere"
    empty.mkdir()
    # the installed copy first; the source tree is not on the path
    path = [str(target)] + [p for p in sys.path if p and Path(p).resolve() != ROOT
                            and "backends" not in Path(p).parts]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONSAFEPATH": "1"}
    return {"env": env, "cwd": empty, "target": target}


def run(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from dpcdsl.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=300,
                          env=installed["env"], cwd=installed["cwd"])


@pytest.mark.slow
def test_the_installed_package_is_the_wheel(installed):
    r = subprocess.run([sys.executable, "-c", "import dpcdsl; print(dpcdsl.__file__)"],
                       capture_output=True, text=True, env=installed["env"],
                       cwd=installed["cwd"])
    assert Path(r.stdout.strip()).is_relative_to(installed["target"]), r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["count", "dpc_paper"], "418414128120"),  # a packaged example space, by name
    (["count", "decoders"], None),  # one in a subfolder (examples/spaces)
    (["check", "lraspp"], "ok: 1 file"),  # a head of the library
    (["heads"], "smp_fpn"),
])
def test_packaged_examples_and_heads_are_reachable_by_name(installed, args, expected):
    r = run(installed, *args)
    assert r.returncode == 0, r.stderr
    if expected is not None:
        assert expected in r.stdout


@pytest.mark.slow
def test_tour_finds_the_packaged_examples(installed):
    r = run(installed, "tour", "-o", str(installed["cwd"] / "tour"))
    assert r.returncode == 0, r.stderr
    assert "dpc_paper.dpc" in r.stdout and "aspp.dpc" in r.stdout
    assert (installed["cwd"] / "tour" / "dpc_paper.svg").is_file()


@pytest.mark.slow
def test_a_packaged_task_is_reachable_by_name(installed):
    r = run(installed, "proxy", "aspp", "--task", "synthetic_tsak")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Did you mean 'synthetic_task'?" in r.stderr
    r = run(installed, "cache", "--task", "synthetic_task", "--quiet")
    assert r.returncode == 0, r.stderr
    # cached where the command ran, not inside the installed package
    assert (installed["cwd"] / ".dpcdsl-cache").is_dir()
    assert not list(installed["target"].rglob(".dpcdsl-cache"))


def test_weight_files_follow_the_umask(tmp_path):
    from dpcdsl.train import weightfile

    old = os.umask(0o022)
    try:
        weightfile.write({"w": np.zeros(3, np.float32)}, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
