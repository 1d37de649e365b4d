import pytest

from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost, feature_size, reference_window
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES

TOP1 = Space.from_file(EXAMPLES / "dpc_cityscapes.dpc").concrete()


@pytest.mark.parametrize("channels, weights, madds", [
    (2048, 814_080, 6.84e9),  # Table 1, Xception row
    (320, 356_160, 3.00e9),  # Table 1, MobileNet-v2 row
])
def test_table1_dpc_rows(channels, weights, madds):
    r = cost(TOP1, channels, (65, 129))
    assert r.branch_conv_weights == weights
    assert r.branch_madds == weights * 65 * 129
    assert abs(r.branch_madds - madds) / madds < 0.005


def test_projection_and_bn_are_reported_apart():
    r = cost(TOP1, 2048, (65, 129))
    assert r.projection_weights == 5 * 256 * 256
    # every conv has a BN of 2 params per channel: depthwise 2048 + 4 x 256, pointwise
    # 5 x 256, projection 256
    assert r.bn_params == 2 * (2048 + 4 * 256 + 5 * 256 + 256)
    assert r.params == r.branch_conv_weights + r.projection_weights + r.bn_params


def test_aspp_matches_torchvision_layer_sizes():
    aspp = Space.from_file(EXAMPLES / "aspp.dpc").concrete()
    r = cost(aspp, 2048, (33, 33))
    expected = 2048 * 256 + 3 * 9 * 2048 * 256 + 2048 * 256 + 5 * 256 * 256
    assert r.branch_conv_weights + r.projection_weights == expected
    pool = next(n for n in r.nodes if n.op == "pool")
    assert pool.madds == 2048 * 256  # the 1x1 conv runs on the 1x1 pooled map


def test_reference_window_matches_the_deeplab_tests():
    assert reference_window(513, 16, 4) == 9
    assert reference_window(513, 16, 2) == 17 and feature_size(513, 16) == 33
    assert reference_window(257, 16, 1) == 17 == feature_size(257, 16)


def test_reference_pool_cost_uses_the_valid_window():
    cell = Space.from_text("cell p(x) { return pool(x, grid = 2, mode = reference, "
                           "crop = 513) }").concrete()
    node = cost(cell, 320, (33, 33)).nodes[-1]
    assert node.madds == 320 * 256 * (33 - 17 + 1) ** 2


def test_decoder_needs_sizes_per_input_and_checks_them():
    dec = Space.from_file(EXAMPLES / "deeplabv3plus.dpc").concrete()
    r = cost(dec, {"context": 256, "low": 24}, {"context": (33, 33), "low": (129, 129)})
    up = next(n for n in r.nodes if n.op == "upsample")
    assert up.size == (129, 129) and up.channels == 256
    with pytest.raises(DpcError, match="no size given for input 'low'"):
        cost(dec, 256, {"context": (33, 33)})
    bad = Space.from_text("cell c(a, b) { return concat(a, b) }").concrete()
    with pytest.raises(DpcError, match="different sizes"):
        cost(bad, 8, {"a": (4, 4), "b": (8, 8)})


def test_a_pool_grid_finer_than_the_features_is_adaptive_pooling():
    """As nn.AdaptiveAvgPool2d: the 1x1 conv runs on every cell of the grid."""
    cell = Space.from_text("cell p(x) { return pool(x, grid = 8) }").concrete()
    assert cost(cell, 16, (4, 4)).nodes[-1].madds == 16 * 256 * 8 * 8


def test_a_pooling_window_larger_than_the_features_is_an_error():
    cell = Space.from_text("cell p(x) { return pool(x, mode = window, window = 8) }").concrete()
    with pytest.raises(DpcError, match="the pooling window 8x8 is larger than the 4x4"):
        cost(cell, 16, (4, 4))


@pytest.mark.slow
def test_table1_aspp_row_is_deeplabs_separable_aspp():
    """Table 1, MobileNet-v2 row: DeepLab's ASPP (separable convs) at 320 channels and
    65x129 features has 2.82B multiply-adds."""
    aspp = Space.from_file(EXAMPLES / "aspp_deeplab.dpc").concrete()
    r = cost(aspp, 320, (65, 129))
    full_res = 320 * 256 + 3 * (9 * 320 + 320 * 256)  # 1x1 and the separable convs
    assert r.branch_madds == full_res * 65 * 129 + 320 * 256  # + pooling's 1x1 on 1x1
    assert round(r.branch_madds / 1e9, 2) == 2.82
