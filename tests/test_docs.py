"""The README and the docs stay true: their Python examples run verbatim, and their
quick `$ dpcc ...` examples print what the page shows ("..." stands for lines left
out). A listing of output is fenced as ```python output and not run; commands that
train (cache, proxy, search, train, rerank) are run by the tests of those commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK = {"count", "cost", "check", "heads", "compile", "sample", "fmt"}
FENCE = re.compile(r"^```(\S*)(.*)$")


def blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """(line, info string, lines) of every fenced block of a page."""
    out, current, start, info = [], None, 0, ""
    for n, line in enumerate(page.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if m and current is None:
            current, start, info = [], n, (m.group(1) + m.group(2)).strip()
        elif m and line.strip() == "```" and current is not None:
            out.append((start, info, current))
            current = None
        elif current is not None:
            current.append(line)
    return out


def workdir(tmp_path: Path) -> Path:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


@pytest.mark.parametrize("page", [p for p in PAGES if any(i == "python" for _, i, _ in
                                                          blocks(p))], ids=lambda p: p.name)
@pytest.mark.slow
def test_python_examples_run_verbatim(page, tmp_path):
    code = "\n\n".join("\n".join(lines) for _, info, lines in blocks(page) if info == "python")
    # a file, as a user's script is: layer classes defined there have a source to copy
    script = tmp_path / f"{page.stem}_examples.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       cwd=workdir(tmp_path), timeout=600)
    assert r.returncode == 0, f"{page.name}: {r.stderr[-2000:]}"


def commands(page: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line, dpcc arguments, expected output lines) of the quick commands shown."""
    out = []
    for start, _, lines in blocks(page):
        for k, line in enumerate(lines):
            if not line.startswith("$ dpcc ") or line.endswith("\\"):
                continue
            args = shlex.split(line[len("$ dpcc "):].split(" #")[0])
            if args[0] not in QUICK:
                continue
            expected = []
            for follow in lines[k + 1:]:
                if follow.startswith("$ "):
                    break
                expected.append(follow)
            out.append((start + k + 1, args, expected))
    return out


CASES = [(page, n, args, expected) for page in PAGES for n, args, expected in commands(page)]


@pytest.mark.parametrize("page, line, args, expected", CASES,
                         ids=[f"{p.name}:{n}" for p, n, _, _ in CASES])
@pytest.mark.slow
def test_quick_commands_print_what_the_page_shows(page, line, args, expected, tmp_path):
    assert len(CASES) >= 5
    r = subprocess.run([sys.executable, "-m", "dpcdsl.cli", *args], capture_output=True,
                       text=True, cwd=workdir(tmp_path), timeout=300)
    assert r.returncode == 0, f"{page.name}:{line}: {r.stderr}"
    actual = [" ".join(x.split()) for x in (r.stdout + r.stderr).splitlines()]
    at = 0
    for want in (" ".join(x.split()) for x in expected):
        if want in ("", "..."):
            continue
        while at < len(actual) and actual[at] != want:
            at += 1
        assert at < len(actual), f"{page.name}:{line}: {want!r} not in order in {actual}"
        at += 1
