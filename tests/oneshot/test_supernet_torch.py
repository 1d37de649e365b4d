"""PyTorch supernets: every candidate runs over the bank exactly as its stand-alone
module would, its weights come out under canonical names into a safetensors file that
dpcdsl.compile(cell) loads, and training a candidate through the supernet is training
it alone, on weights it shares with the others."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from dpcdsl_torch import load_weights
from dpcdsl_torch.supernet import Supernet

import dpcdsl
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.train import weightfile
from tests.conftest import EXAMPLES
from tests.oneshot.test_sharing import PAPER_BRANCH

#: the example spaces at small widths and sizes: name -> (file, in_channels, sizes)
SMALL = {
    "dpc_paper": ("dpc_paper.dpc", 24, {"x": (9, 9)}),
    "hierarchical": ("hierarchical.dpc", 16, {"x": (7, 7)}),
    "decoders": ("spaces/decoders.dpc", {"context": 24, "s8": 16, "s4": 8},
                 {"context": (5, 5), "s8": (9, 9), "s4": (17, 17)}),
    "mobile_heads": ("spaces/mobile_heads.dpc", {"low": 8, "high": 16},
                     {"low": (9, 9), "high": (5, 5)}),
}
CANDIDATES = 50


def inputs(space: Space, channels, sizes, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    names = [p.name for p in space.cell_def.inputs]
    return [torch.randn(2, channels if isinstance(channels, int) else channels[n],
                        *sizes[n], generator=g) for n in names]


def scrambled(net: Supernet, seed: int = 1) -> Supernet:
    """Every tensor of the bank away from its initial value, running statistics
    included, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key in net.slots:
            t = net.tensor(key)
            noise = torch.rand(t.shape, generator=g) + 0.5 if "running_var" in key else \
                torch.randn(t.shape, generator=g) * 0.1
            t.copy_(noise if "running_var" in key else t + noise)
    return net


@pytest.mark.parametrize("name", sorted(SMALL))
def test_extracted_candidates_compile_to_the_supernets_outputs(name, tmp_path):
    file, channels, sizes = SMALL[name]
    space = Space.from_file(EXAMPLES / file)
    net = scrambled(dpcdsl.compile_space(space, in_channels=channels)).eval()
    xs = inputs(space, channels, sizes)
    rng = random.Random(0)
    worst = 0.0
    for i in range(CANDIDATES):
        cell, decisions = space.sample(rng)
        with torch.no_grad():
            y = net(*xs, decisions=decisions)
        path = tmp_path / f"{i}.safetensors"
        weightfile.write(net.extract(decisions), path)
        alone = dpcdsl.compile(cell, in_channels=channels, seed=7).eval()
        load_weights(alone, path)
        with torch.no_grad():
            worst = max(worst, float((alone(*xs) - y).abs().max()))
    assert worst <= 1e-5, worst
    assert not net.added  # the bank held every weight these candidates needed


def test_a_step_through_the_supernet_is_a_step_of_the_candidate_alone():
    space = Space.from_text(PAPER_BRANCH)
    net = scrambled(Supernet(space, 16))
    cell, decisions = space.sample(3)
    alone = dpcdsl.compile(cell, in_channels=16)
    from dpcdsl_torch import import_weights

    import_weights(alone, net.extract(decisions))
    xs = inputs(space, 16, {"x": (6, 6)})
    for module, call in ((net, lambda: net(*xs, decisions=decisions)), (alone, lambda: alone(*xs))):
        module.train()
        opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            call().square().mean().backward()
            opt.step()
    after = net.extract(decisions)
    from dpcdsl_torch import export_weights

    for k, v in export_weights(alone).items():  # weights and running statistics alike
        np.testing.assert_allclose(after[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_candidates_share_the_weights_the_rule_says_and_no_others():
    space = Space.from_text(PAPER_BRANCH)
    net = Supernet(space, 16)
    a = {"b0.input": 0, "b0.op": 1, "b0.rate.h": 0, "b0.rate.w": 0, "b1.input": 0, "b1.op": 0}
    b = {**a, "b0.rate.h": 1, "b0.rate.w": 1}  # b0's rates differ: its weights are shared
    c = {**a, "b1.op": 2, "b1.grid.h": 0, "b1.grid.w": 0}  # b1 is another op
    before_b, before_c = net.extract(b), net.extract(c)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(*inputs(space, 16, {"x": (6, 6)}), decisions=a).square().mean().backward()
    opt.step()
    after_b, after_c = net.extract(b), net.extract(c)
    assert all(not np.array_equal(before_b[k], after_b[k]) for k in after_b
               if k.endswith("weight") and "bn" not in k)  # all of b was trained through a
    assert np.array_equal(before_c["b1.conv.weight"], after_c["b1.conv.weight"])


@pytest.mark.parametrize(("decisions", "message"), [
    ({"b0.input": 0, "b0.op": 0, "b1.input": 0, "b1.op": 0, "b9.op": 1},
     "unknown choice point 'b9.op'"),
    ({"b0.input": 0, "b0.op": 5, "b1.input": 0, "b1.op": 0},
     "decision b0.op = 5 is out of range: this choice point has options 0..2"),
    ({"b0.input": 0, "b0.op": 0, "b1.input": 0}, "no decision for the choice point 'b1.op'"),
])
def test_decisions_outside_the_space_are_refused_naming_the_decision(decisions, message):
    net = Supernet(Space.from_text(PAPER_BRANCH), 16)
    with pytest.raises(DpcError) as e:
        net(*inputs(net.space, 16, {"x": (6, 6)}), decisions=decisions)
    assert e.value.diagnostics[0].code == "DPC602"
    assert message in e.value.diagnostics[0].message


def test_compile_space_needs_in_channels_and_names_the_inputs():
    with pytest.raises(DpcError) as e:
        dpcdsl.compile_space(PAPER_BRANCH)
    assert "in_channels is needed: the channels of the input 'x' of cell 'branch'" in \
        e.value.diagnostics[0].message
