import json

import pytest

from dpcdsl.errors import DpcError
from dpcdsl.interop import deeplab
from dpcdsl.space import Space
from tests.conftest import EXAMPLES

JSON = EXAMPLES / "deeplab" / "dense_prediction_cell_branch5_top1_cityscapes.json"


def test_top1_json_is_the_cityscapes_example():
    _, cell = deeplab.read(JSON, "dpc_cityscapes")
    assert cell == Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()


def test_round_trip_gives_equal_json(tmp_path):
    _, cell = deeplab.read(JSON)
    out = deeplab.write(cell, tmp_path / "out.json")
    assert json.loads(out.read_text()) == json.loads(JSON.read_text())


def test_samples_with_pooling_round_trip():
    space = Space.from_file(EXAMPLES / "dpc_paper.dpc")
    for seed in range(30):
        cell, _ = space.sample(seed)
        text = deeplab.to_dpc_text(deeplab.to_json(cell), "dpc_paper")
        assert deeplab.from_text(text) == cell


@pytest.mark.parametrize("data, message", [
    ([], "non-empty JSON list"),
    ([{"op": "conv", "kernel": 3, "rate": [1, 1], "input": 0}], "earlier branch"),
    ([{"op": "conv", "kernel": 5, "rate": [1, 1], "input": -1}], "must be 1 or 3"),
    ([{"op": "magic", "input": -1}], "unknown op 'magic'"),
    ([{"op": "pyramid_pooling", "grid_size": [0, 2], "input": -1}], "grid_size"),
])
def test_bad_json_is_named(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DpcError, match=message):
        deeplab.read(path)


def test_aspp_cannot_be_exported():
    aspp = Space.from_file(EXAMPLES / "aspp.dpc").concrete()
    with pytest.raises(DpcError, match="no DeepLab JSON form"):
        deeplab.to_json(aspp)
