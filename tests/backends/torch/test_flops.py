"""The cost model against PyTorch's own FLOP counter, for every op of the registry."""

from __future__ import annotations

import dpcdsl_torch
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpcdsl.lang.analysis import cost
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
    report = cost(cell, IN_CHANNELS, SIZES)
    assert report.computed_madds == report.madds  # the examples' rates fit the probe map
    assert counter.get_total_flops() == 2 * batch * report.madds


@pytest.mark.parametrize("op", sorted(op for op, spec in OPS.items()
                                      if spec.computed_madds is not None))
@pytest.mark.parametrize(("kernel", "rate"), [(3, (7, 2)), (3, (9, 12)), (5, (3, 4)),
                                              (3, (1, 1))])
def test_flops_are_twice_the_computed_multiply_adds(op: str, kernel: int,
                                                   rate: tuple[int, int]) -> None:
    """On the 6x8 probe map the module skips the taps that read only padding; the cost
    model's computed multiply-adds say what it runs, its nominal ones what a plain
    conv would."""
    from dpcdsl.lang.space import Space

    cell = Space.from_text(f"cell probe(x, small) {{ return {op}(x, kernel = {kernel}, "
                           f"rate = ({rate[0]}, {rate[1]}), channels = 6) }}").concrete()
    module = dpcdsl_torch.build(cell, IN_CHANNELS).eval()
    inputs = [torch.from_numpy(x) for x in probe_inputs(cell)]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    report = cost(cell, IN_CHANNELS, SIZES)
    assert counter.get_total_flops() == 2 * inputs[0].shape[0] * report.computed_madds
    skips = rate[0] >= 6 or rate[1] >= 8 or (kernel == 5 and rate != (1, 1))
    assert (report.computed_madds < report.madds) == skips
