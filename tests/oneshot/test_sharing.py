"""The weight-sharing rule of supernets (dpcdsl.compiler.supernet), in the core: which
weights candidates share, the bank a space needs, and its size against a count by hand
from the paper's description of its space."""

from __future__ import annotations

import pytest

from dpcdsl.compiler import supernet as rule
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES

#: every example space, with input channels for each of its inputs
SPACES = {
    "dpc_paper": (EXAMPLES / "dpc_paper.dpc", 2048),
    "hierarchical": (EXAMPLES / "hierarchical.dpc", 320),
    "decoders": (EXAMPLES / "spaces" / "decoders.dpc", {"context": 320, "s8": 64, "s4": 32}),
    "mobile_heads": (EXAMPLES / "spaces" / "mobile_heads.dpc", {"low": 40, "high": 160}),
}

PAPER_BRANCH = """
cell branch(x, channels = 8) {
  repeat 2 as b {
    b = one_of(conv(kernel = 1), sepconv(kernel = 3, rate = ({1, 3}, {1, 3})),
               pool(grid = ({1, 2}, {1, 2})))(one_of(x, earlier))
  }
  return conv(concat(b), kernel = 1)
}
"""


def keys(text_or_space, decisions, channels=16):
    space = text_or_space if isinstance(text_or_space, Space) else Space.from_text(text_or_space)
    return {name: key for name, (key, _) in rule.shares(space.decode(decisions), channels).items()}


def test_rates_and_grids_share_one_weight_and_ops_do_not():
    space = Space.from_text(PAPER_BRANCH)
    # b0 reads x; b1 is a sepconv at rates (1, 1) or (3, 3), reading x
    base = {"b0.input": 0, "b0.op": 0, "b1.input": 0, "b1.op": 1}
    one = keys(space, {**base, "b1.rate.h": 0, "b1.rate.w": 0})
    three = keys(space, {**base, "b1.rate.h": 1, "b1.rate.w": 1})
    assert one == three  # the same weights at every rate
    assert one["b1.depthwise.weight"] == "b1:sepconv:depthwise.weight:16x1x3x3"
    pooled = keys(space, {**base, "b1.op": 2, "b1.grid.h": 1, "b1.grid.w": 0})
    assert pooled["b1.conv.weight"] == "b1:pool:conv.weight:8x16x1x1"
    assert not set(pooled.values()) & {v for k, v in one.items() if k.startswith("b1.")}


def test_a_wider_input_has_weights_of_its_own_and_an_equally_wide_one_shares():
    space = Space.from_text(PAPER_BRANCH)
    base = {"b0.input": 0, "b0.op": 0, "b1.op": 0}
    from_x = keys(space, {**base, "b1.input": 0}, channels=16)  # 16 channels
    from_b0 = keys(space, {**base, "b1.input": 1}, channels=16)  # b0's 8
    assert from_x["b1.conv.weight"] != from_b0["b1.conv.weight"]
    assert from_x["b1.bn.weight"] == from_b0["b1.bn.weight"]  # the same shape: shared
    same = keys(space, {**base, "b1.input": 0}, channels=8)  # x as wide as b0
    other = keys(space, {**base, "b1.input": 1}, channels=8)
    assert same == other  # the input choice costs nothing


@pytest.mark.parametrize("name", ["mobile_heads", "branch"])
def test_walking_a_large_space_finds_the_bank_of_every_candidate(name, monkeypatch):
    path, channels = SPACES.get(name, (None, 16))
    space = Space.from_text(PAPER_BRANCH) if path is None else Space.from_file(path)
    exact = rule.bank_of(space, channels)
    assert exact.exact and exact.walks == space.count()
    monkeypatch.setattr(rule, "ENUMERATE_LIMIT", 0)  # walk it, as a space too large
    walked = rule.bank_of(space, channels)
    assert not walked.exact
    assert walked.shapes() == exact.shapes()


def paper_bank_by_hand(c_in: int, f: int = 256, branches: int = 5) -> int:
    """The paper space's shared parameters, counted from its description: each branch
    is a 1x1 conv, a 3x3 separable conv or a pooling branch's 1x1 conv (each with BN:
    2 parameters per channel), reading the backbone (c_in channels) or, from the
    second branch on, an earlier branch (f channels); BN is shared by both widths.
    Then the 1x1 projection of the concatenated branches."""
    def ops(c: int) -> list[int]:
        return [f * c, c * 9 + f * c, f * c]  # conv, sepconv (its depthwise BN apart), pool
    total = 0
    for i in range(branches):
        widths = [c_in] if i == 0 else [c_in, f]
        total += sum(sum(ops(c)) for c in widths)
        total += sum(2 * c for c in widths)  # the sepconv's depthwise BN, per width
        total += 3 * 2 * f  # each op's output BN, shared across widths
    return total + branches * f * f + 2 * f


@pytest.mark.parametrize("c_in", [2048, 320])
def test_the_paper_spaces_bank_is_the_count_by_hand(c_in):
    bank = rule.bank_of(Space.from_file(SPACES["dpc_paper"][0]), c_in)
    assert bank.params == paper_bank_by_hand(c_in)


def test_initial_values_follow_the_key_whatever_the_order():
    w = rule.Weight((8, 4, 1, 1))
    a = rule.initial_value("b0:conv:conv.weight:8x4x1x1", w, seed=0)
    again = rule.initial_value("b0:conv:conv.weight:8x4x1x1", w, seed=0)
    other = rule.initial_value("b1:conv:conv.weight:8x4x1x1", w, seed=0)
    assert (a == again).all() and not (a == other).all()
    assert abs(float(a.std()) - (2 / 4) ** 0.5) < 0.5  # He-normal over fan-in 4


def test_a_space_too_large_to_share_names_its_size_and_node(monkeypatch):
    monkeypatch.setattr(rule, "MAX_BANK_PARAMS", 100)  # b0's first weight is 8 x 16
    with pytest.raises(DpcError) as e:
        rule.bank_of(Space.from_text(PAPER_BRANCH), 16)
    d = e.value.diagnostics[0]
    assert d.code == "DPC606" and "more than 100 shared weights" in d.message
    assert "(at node 'b0', 128 more for b0:conv:conv.weight:8x16x1x1)" in d.message
    assert (d.span.line, d.span.column) == (2, 1)  # the space's cell


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_example_space_has_a_bank(name):
    path, channels = SPACES[name]
    space = Space.from_file(path)
    bank = rule.bank_of(space, channels)
    for _ in range(20):  # every candidate's weights are in it
        cell, _ = space.sample()
        assert {key for key, _ in rule.shares(cell, channels).values()} <= set(bank.weights)
