"""Diagnostic codes by phase: every place the project makes a diagnostic names its code
there, the code is in the table, and the table's codes fall in the hundreds of their
phase. Read from the source, so a new raise site without a code fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dpcdsl.errors import CODES, PHASES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "dpcdsl").rglob("*.py"), *(ROOT / "backends").rglob("*.py")])


def error_classes(trees: list[ast.Module]) -> set[str]:
    """DpcError and every class of the project derived from it."""
    found = {"DpcError"}
    while True:
        more = {n.name for t in trees for n in ast.walk(t) if isinstance(n, ast.ClassDef)
                and any(ast.unparse(b) in found for b in n.bases)} - found
        if not more:
            return found
        found |= more


def sites() -> list[tuple[str, ast.Call]]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in SOURCES}
    makers = {"Diagnostic"} | {f"{c}.at" for c in error_classes(list(trees.values()))}
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in makers:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return found


SITES = sites()


def test_the_sites_are_found() -> None:
    assert len(SITES) > 100
    assert any("Diverged.at" in ast.unparse(call.func) for _, call in SITES)


@pytest.mark.parametrize("where, call", SITES, ids=[w for w, _ in SITES])
def test_every_site_names_its_code(where: str, call: ast.Call) -> None:
    code = next((k.value for k in call.keywords if k.arg == "code"), None)
    assert code is not None, f"{where}: a diagnostic without code="
    if isinstance(code, ast.Constant):  # else passed on from a diagnostic or a caller
        assert code.value in CODES, f"{where}: {code.value} is not in dpcdsl.errors.CODES"


def test_no_catch_all_code_is_left() -> None:
    assert "DPC900" not in CODES
    for path in SOURCES:
        assert "DPC900" not in path.read_text(), path


def test_every_code_belongs_to_its_phase() -> None:
    for code in CODES:
        assert code.startswith("DPC") and len(code) == 6 and code[3:].isdigit(), code
        assert int(code[3]) in PHASES, code
    assert {int(c[3]) for c in CODES} == set(PHASES)


def test_a_diagnostic_cannot_be_made_without_a_code() -> None:
    from pydantic import ValidationError

    from dpcdsl.errors import Diagnostic, DpcError, Span

    with pytest.raises(ValidationError):
        Diagnostic(span=Span(), message="m")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        DpcError.at(None, "m")  # type: ignore[call-arg]


def test_the_docs_list_the_phases_as_the_table_has_them() -> None:
    docs = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| DPC")]
    assert rows == [f"| DPC{n}xx | {text} |" for n, text in PHASES.items()]
