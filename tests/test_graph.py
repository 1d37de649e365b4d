import shutil
import xml.etree.ElementTree as ET

import pytest

from dpcdsl.compiler.graph import OUTPUT, render, to_dot, to_networkx
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES

TOP1 = Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()


def test_networkx_follows_the_data_flow():
    g = to_networkx(TOP1)
    assert set(g.successors("b0")) == {"b1", "b3", "b4", "out_dropout_concat"}
    assert g.nodes["b1"]["label"] == "sepconv 3x3 r(18,15)"
    assert list(g.predecessors(OUTPUT)) == ["out"]
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
    assert nx.has_path(g, "x", OUTPUT)


def test_dot_labels_ops_and_rates():
    dot = to_dot(TOP1)
    assert "sepconv 3x3 r(6,21)" in dot and "b0 -> b4" in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is installed by .ci/run")
def test_svg_is_valid(tmp_path):
    path = render(TOP1, tmp_path / "cell.svg")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = "".join(root.itertext())
    assert "b4" in texts and "sepconv 3x3 r(6,21)" in texts


def test_png_has_png_magic(tmp_path):
    assert render(TOP1, tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_picture_format(tmp_path):
    with pytest.raises(DpcError, match=r"use a \.dot, \.svg"):
        render(TOP1, tmp_path / "c.bmp")
