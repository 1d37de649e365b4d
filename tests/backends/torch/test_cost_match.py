"""The analytic cost model against the real modules: parameters and FLOPs."""

from __future__ import annotations

import random

import pytest
import torch
from dpcdsl_torch import build
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from dpcdsl.lang.analysis import cost
from dpcdsl.lang.space import Space
from tests.backends.torch.conftest import Example, load_example
from tests.conftest import EXAMPLES

PAPER = Space.from_file(EXAMPLES / "dpc_paper.dpc")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(module: torch.nn.Module, xs: list[torch.Tensor]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*xs)
    return int(counter.get_total_flops())


def test_params_and_flops_match_the_cost_model(example: Example) -> None:
    module = build(example.cell, example.in_channels).eval()
    report = cost(example.cell, example.in_channels, example.sizes)
    assert n_params(module) == report.params
    # one multiply-add is two FLOPs; batch 1 so the counts compare directly (the module
    # runs the computed multiply-adds: atrous taps over padding are skipped)
    assert flops(module, example.inputs(batch=1)) == 2 * report.computed_madds


def test_top1_cell_at_2048_channels() -> None:
    ex = load_example("dpc_cityscapes")
    module = build(ex.cell, 2048)
    report = cost(ex.cell, 2048, (65, 129))
    assert report.branch_conv_weights == 814_080
    assert n_params(module) == report.params
    branch = sum(p.numel() for name, p in module.named_parameters()
                 if name.startswith("b") and "bn" not in name)
    assert branch == 814_080


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cin=st.integers(1, 40))
@pytest.mark.slow
def test_random_paper_cells_compile_run_and_match(seed: int, cin: int) -> None:
    cell, _ = PAPER.sample(random.Random(seed))
    module = build(cell, cin).eval()
    x = torch.randn(1, cin, 9, 11)
    report = cost(cell, cin, (9, 11))
    assert module(x).shape == (1, 256, 9, 11)
    assert n_params(module) == report.params
    assert flops(module, [x]) == 2 * report.computed_madds


def test_reference_pool_window_flops() -> None:
    cell = Space.from_text("cell c(x, channels = 8) { return pool(x, grid = 2, mode = "
                           "reference, crop = (257, 513)) }").concrete()
    module = build(cell, 4).eval()
    x = torch.randn(1, 4, 17, 33)
    report = cost(cell, 4, (17, 33))
    assert flops(module, [x]) == 2 * report.computed_madds
    assert module(x).shape == (1, 8, 17, 33)
