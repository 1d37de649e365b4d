"""scripts/setup.sh refuses to start a new environment on a disk without room for it,
with a message that says how much there is and how much it needs, instead of pip's
"No space left on device" half-way through PyTorch. The real script runs on a copy of
itself, with `df` and the programs it looks for replaced by stand-ins."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def stand_in(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_setup(tmp_path: Path, free_kib: int, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir / "df", "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
             f"echo '/dev/vda 264000000 1000 {free_kib} 100% /'")
    for name in ("dot", "chromium", "chromedriver", "initdb"):
        stand_in(bin_dir / name, "exit 0")
    # past the check, the first thing the script runs is `$PYTHON -m venv .venv`
    stand_in(bin_dir / "python-stand-in", "echo 'venv would be made here'; exit 3")
    return subprocess.run(
        ["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             "PYTHON": str(bin_dir / "python-stand-in"), **env}, timeout=60)


def test_setup_refuses_a_full_disk(tmp_path: Path) -> None:
    done = run_setup(tmp_path, free_kib=281_600)
    assert done.returncode == 1, done.stderr
    assert "275 MiB free" in done.stderr
    assert "needs about 8 GiB" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".venv").exists()


@pytest.mark.parametrize(("free_kib", "need"), [(80 * 1024 * 1024, "8"), (281_600, "0")])
def test_setup_goes_on_with_room(tmp_path: Path, free_kib: int, need: str) -> None:
    done = run_setup(tmp_path, free_kib=free_kib, SETUP_SPACE_GIB=need)
    assert done.returncode == 3, done.stderr
    assert "venv would be made here" in done.stdout
    assert "free on the disk" not in done.stderr
