"""The cost model against PyTorch's own FLOP counter, for every op of the registry."""

from __future__ import annotations

import dpcdsl_torch
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpcdsl.analysis import cost
from dpcdsl.ops import OPS
from tests.backends.conformance import IN_CHANNELS, SIZES, probe_cell, probe_inputs


@pytest.mark.parametrize("op", sorted(OPS))
def test_flops_are_twice_the_analytic_multiply_adds(op: str) -> None:
    cell = probe_cell(op)
    module = dpcdsl_torch.build(cell, IN_CHANNELS).eval()
    inputs = [torch.from_numpy(x) for x in probe_inputs(cell)]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    batch = inputs[0].shape[0]
    assert counter.get_total_flops() == 2 * batch * cost(cell, IN_CHANNELS, SIZES).madds
