"""JAX supernets: the same bank as PyTorch's for the same seed, the same outputs for the
same candidate, its weights extracted under canonical names, and compilations bounded
by the space's node computations, not by its candidates."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from dpcdsl_jax import import_weights

import dpcdsl
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES
from tests.oneshot.test_supernet_torch import CANDIDATES, SMALL, inputs, scrambled


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_jax_supernet_computes_what_the_torch_one_does(name):
    file, channels, sizes = SMALL[name]
    space = Space.from_file(EXAMPLES / file)
    torch_net = scrambled(dpcdsl.compile_space(space, in_channels=channels)).eval()
    jax_net = dpcdsl.compile_space(space, in_channels=channels, backend="jax")
    jax_net.load_state(torch_net.state())  # the trained bank, by key
    xs = inputs(space, channels, sizes)
    nhwc = [x.numpy().transpose(0, 2, 3, 1) for x in xs]
    rng = random.Random(1)
    for _ in range(CANDIDATES):
        _, decisions = space.sample(rng)
        with torch.no_grad():
            want = torch_net(*xs, decisions=decisions).numpy()
        got = np.asarray(jax_net(*nhwc, decisions=decisions)).transpose(0, 3, 1, 2)
        # float32 in two frameworks, through up to 8 nodes of a recursive space
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(decisions))


def test_both_backends_start_from_the_same_bank_and_extract_alike():
    space = Space.from_file(EXAMPLES / "dpc_paper.dpc")
    torch_net = dpcdsl.compile_space(space, in_channels=24, seed=3)
    jax_net = dpcdsl.compile_space(space, in_channels=24, seed=3, backend="jax")
    cell, decisions = space.sample(4)
    a, b = torch_net.extract(decisions), jax_net.extract(decisions)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # and the extracted weights load into the cell compiled alone, in JAX's layout
    module = dpcdsl.compile(cell, in_channels=24, backend="jax")
    import_weights(module, b)
    x = np.random.default_rng(0).standard_normal((1, 9, 9, 24)).astype(np.float32)
    module.eval()
    np.testing.assert_allclose(np.asarray(module(x)),
                               np.asarray(jax_net(x, decisions=decisions)), atol=1e-5)


def test_compilations_are_bounded_by_node_computations_not_candidates():
    space = Space.from_text("""
cell branch(x, channels = 8) {
  repeat 3 as b {
    b = one_of(conv(kernel = 1), sepconv(kernel = 3, rate = ({1, 3}, {1, 3})),
               pool(grid = {1, 2}))(one_of(x, earlier))
  }
  return conv(concat(b), kernel = 1)
}
""")
    net = dpcdsl.compile_space(space, in_channels=16, backend="jax")
    x = np.zeros((1, 6, 6, 16), np.float32)
    rng = random.Random(0)
    before = net.compiled
    seen_cells, counts = set(), []
    for _ in range(120):
        cell, decisions = space.sample(rng)
        seen_cells.add(cell.hash)
        net(x, decisions=decisions)
        counts.append(net.compiled - before)
    # 1x1 conv, 4 rate pairs, 2 grids, each reading 16 or 8 channels; concat; projection
    assert counts[-1] <= (1 + 4 + 2) * 2 + 2
    assert len(seen_cells) > 3 * counts[-1]  # far more candidates than compilations
    assert counts[-1] == counts[-40]  # none in the last 40 candidates
