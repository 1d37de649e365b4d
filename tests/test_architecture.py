"""The layering of the code, checked from its imports: no cycles, no upward imports
from the backends, and no deep-learning framework in the core."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"dpcdsl": ROOT / "dpcdsl", "dpcdsl_torch": ROOT / "backends" / "dpcdsl_torch",
            "dpcdsl_jax": ROOT / "backends" / "dpcdsl_jax"}
#: the orchestration layer of the core, which calls the backends: they may not import it
ABOVE_BACKENDS = ("dpcdsl", "dpcdsl.backends", "dpcdsl.train.proxy", "dpcdsl.search",
                  "dpcdsl.deploy", "dpcdsl.cli")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, path in PACKAGES.items():
        for file in path.rglob("*.py"):
            parts = file.relative_to(path).with_suffix("").parts
            name = ".".join((pkg, *parts))
            out[name.removesuffix(".__init__")] = file
    return out


MODULES = _modules()


def _imports(name: str, file: Path) -> set[str]:
    """Every project module ``file`` imports, at any depth of the file."""
    package = name if file.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name, file in MODULES.items():
        g.add_node(name)
        g.add_edges_from((name, target) for target in _imports(name, file))
    return g


def test_the_walk_sees_the_imports() -> None:
    g = import_graph()
    assert g.has_edge("dpcdsl.lang.analysis", "dpcdsl.ops")
    assert g.has_edge("dpcdsl_torch._emit", "dpcdsl.compiler.codegen")
    assert g.number_of_edges() > 100


def test_no_import_cycles() -> None:
    g = import_graph()
    # a package's __init__ re-exports its own modules: that is not a cycle of the code
    g.remove_edges_from([(a, b) for a, b in g.edges if b.startswith(a + ".")])
    assert list(nx.simple_cycles(g)) == []


def test_a_cycle_would_be_found() -> None:
    g = import_graph()
    g.add_edge("dpcdsl.errors", "dpcdsl.lang.ir")
    assert list(nx.simple_cycles(g))


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not m.startswith("dpcdsl.")
                                        and m != "dpcdsl"))
def test_backends_import_no_layer_above_them(name: str) -> None:
    upward = {t for t in _imports(name, MODULES[name])
              if t in ABOVE_BACKENDS or t.startswith(("dpcdsl.search.", "dpcdsl.deploy."))}
    assert upward == set()


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.split(".")[0] == "dpcdsl"))
@pytest.mark.slow
def test_the_core_names_no_framework_and_no_backend(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & {"torch", "jax", "flax"}
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in {"torch", "jax", "flax",
                                                              "dpcdsl_torch", "dpcdsl_jax"}
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            assert node.value not in ("torch", "jax"), f"line {node.lineno} names a backend"


def documented_layers() -> dict[str, int]:
    """The layers of docs/architecture.md ("## Layers", a numbered list): each name in
    backticks, with its layer's number."""
    import re

    docs = (ROOT / "docs" / "architecture.md").read_text()
    section = docs.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for number, text in re.findall(r"^(\d)\. (.*?)(?=^\d\. |\Z)", section, re.M | re.S):
        for name in re.findall(r"`([a-z_.]+)`", text):
            layers.setdefault(name, int(number))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    if module == "dpcdsl":  # the package's facade re-exports the top layer
        return max(layers.values())
    parts = module.split(".")
    if parts[0] != "dpcdsl":  # a backend
        return layers.get(parts[0])
    # the most specific documented name: `train.proxy` before `train`
    for end in range(len(parts), 1, -1):
        layer = layers.get(".".join(parts[1:end]))
        if layer is not None:
            return layer
    return None


def test_every_module_has_a_documented_layer() -> None:
    layers = documented_layers()
    assert len(set(layers.values())) == 5
    assert [m for m in MODULES if layer_of(m, layers) is None] == []


def test_imports_go_to_the_same_layer_or_below() -> None:
    layers, g = documented_layers(), import_graph()
    upward = [(a, b) for a, b in g.edges
              if layer_of(b, layers) > layer_of(a, layers)]  # type: ignore[operator]
    assert upward == []


def test_an_upward_import_would_be_found() -> None:
    layers = documented_layers()
    assert layer_of("dpcdsl.lang.checker", layers) < layer_of("dpcdsl.search.driver", layers)
